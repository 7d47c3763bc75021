//! Where this host mounts its cgroup hierarchies, read from /proc/self/mountinfo, for the
//! corrections that rename, adopt or mirror cgroups outside libcontainer.

use std::path::{Path, PathBuf};

/// A mounted cgroup hierarchy.
pub struct CgroupMount {
    pub path: PathBuf,
    /// cgroup v1 (`cgroup`) rather than the unified v2 (`cgroup2`).
    pub v1: bool,
    /// The cgroup this mount shows at `path` (mountinfo's root field, usually `/`).
    pub root: PathBuf,
    /// The superblock options: the controllers of a v1 hierarchy (`memory`,
    /// `name=systemd`) among flags such as `rw`.
    pub options: Vec<String>,
}

/// Every cgroup v1 and v2 mount point visible to this process.
pub fn all() -> Vec<CgroupMount> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let mut post = post.split_whitespace();
            let v1 = match post.next()? {
                "cgroup" => true,
                "cgroup2" => false,
                _ => return None,
            };
            let options = post
                .nth(1)
                .unwrap_or_default()
                .split(',')
                .map(str::to_string)
                .collect();
            let mut pre = pre.split_whitespace();
            let root = PathBuf::from(pre.nth(3)?);
            let path = PathBuf::from(pre.next()?);
            Some(CgroupMount {
                path,
                v1,
                root,
                options,
            })
        })
        .collect()
}

/// One line of /proc/self/cgroup: the hierarchy's controllers (empty for cgroup v2) and
/// this process's cgroup in it.
pub struct OwnCgroup {
    pub controllers: Vec<String>,
    pub path: PathBuf,
}

/// This process's cgroup in every hierarchy, from /proc/self/cgroup.
pub fn own_cgroups() -> Vec<OwnCgroup> {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, ':');
            let _id = fields.next()?;
            let controllers = fields
                .next()?
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect();
            let path = PathBuf::from(fields.next()?);
            Some(OwnCgroup { controllers, path })
        })
        .collect()
}

/// The directory of `cgroup` under `mount` when the mount shows that hierarchy (its
/// controllers are the mount's, or both are cgroup v2) and the cgroup lies under its root.
pub fn dir_of(mount: &CgroupMount, cgroup: &OwnCgroup) -> Option<PathBuf> {
    let same_hierarchy = if mount.v1 {
        !cgroup.controllers.is_empty()
            && cgroup
                .controllers
                .iter()
                .all(|c| mount.options.iter().any(|o| o == c))
    } else {
        cgroup.controllers.is_empty()
    };
    if !same_hierarchy {
        return None;
    }
    let inside = cgroup.path.strip_prefix(&mount.root).ok()?;
    Some(join_below(&mount.path, inside))
}

fn join_below(base: &Path, rel: &Path) -> PathBuf {
    rel.components()
        .filter(|c| matches!(c, std::path::Component::Normal(_)))
        .fold(base.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(path: &str, v1: bool, root: &str, options: &[&str]) -> CgroupMount {
        CgroupMount {
            path: PathBuf::from(path),
            v1,
            root: PathBuf::from(root),
            options: options.iter().map(|o| o.to_string()).collect(),
        }
    }

    fn own(controllers: &[&str], path: &str) -> OwnCgroup {
        OwnCgroup {
            controllers: controllers.iter().map(|c| c.to_string()).collect(),
            path: PathBuf::from(path),
        }
    }

    #[test]
    fn a_cgroup_is_found_under_the_mount_of_its_hierarchy() {
        let cpu = mount(
            "/sys/fs/cgroup/cpu,cpuacct",
            true,
            "/",
            &["rw", "cpu", "cpuacct"],
        );
        let unified = mount("/sys/fs/cgroup/unified", false, "/", &["rw", "nsdelegate"]);
        let mine = own(&["cpu", "cpuacct"], "/a/b");
        assert_eq!(
            dir_of(&cpu, &mine),
            Some(PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/a/b"))
        );
        assert_eq!(dir_of(&unified, &mine), None);
        assert_eq!(
            dir_of(&unified, &own(&[], "/x")),
            Some(PathBuf::from("/sys/fs/cgroup/unified/x"))
        );
        assert_eq!(dir_of(&cpu, &own(&["memory"], "/a")), None);
    }

    #[test]
    fn a_mount_of_a_sub_cgroup_shows_paths_relative_to_its_root() {
        let mem = mount("/sys/fs/cgroup/memory", true, "/outer", &["rw", "memory"]);
        assert_eq!(
            dir_of(&mem, &own(&["memory"], "/outer/inner")),
            Some(PathBuf::from("/sys/fs/cgroup/memory/inner"))
        );
        assert_eq!(dir_of(&mem, &own(&["memory"], "/elsewhere")), None);
    }
}
