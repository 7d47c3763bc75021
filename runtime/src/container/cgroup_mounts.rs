//! Where this host mounts its cgroup hierarchies, read from /proc/self/mountinfo, for the
//! corrections that rename, adopt or mirror cgroups outside libcontainer.

use std::path::PathBuf;

/// A mounted cgroup hierarchy.
pub struct CgroupMount {
    pub path: PathBuf,
    /// cgroup v1 (`cgroup`) rather than the unified v2 (`cgroup2`).
    pub v1: bool,
}

/// Every cgroup v1 and v2 mount point visible to this process.
pub fn all() -> Vec<CgroupMount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let v1 = match post.split_whitespace().next()? {
                "cgroup" => true,
                "cgroup2" => false,
                _ => return None,
            };
            let path = PathBuf::from(pre.split_whitespace().nth(4)?);
            Some(CgroupMount { path, v1 })
        })
        .collect()
}
