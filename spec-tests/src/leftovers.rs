//! The one "nothing left" checker: after a container (or a pod, or a failed attempt) is
//! gone, nothing of it may remain on the host. It looks for the id everywhere a container
//! can leave something, without knowing any runtime's naming scheme (so it holds for ours,
//! runc, crun, and for whatever names a cgroupsPath, systemd or containerd chooses):
//!
//! - processes: any whose cgroup (any hierarchy, v1 or v2) or command line names the id
//!   (a runtime clone not yet in its cgroup is still `runtime create ... ID`), and any of
//!   the pids the test gives (a snapshot of the container's processes); they get a
//!   deadline to finish dying, and a zombie counts as gone;
//! - cgroups: any directory whose name contains the id, at any depth, in every mounted
//!   cgroup v1 hierarchy and the cgroup v2 tree (so `<id>`, `:youki:<id>`, a systemd
//!   `<prefix>-<id>.scope` and a cgroupsPath ending in the id are all seen);
//! - systemd units naming the id, where systemd runs;
//! - mounts: any line of /proc/self/mountinfo naming the id or one of the test's paths
//!   (its bundle, its state root);
//! - state: any entry naming the id under the state roots given (the state directory, the
//!   id's lock, the console socket, the shadow bundle), and any path the test says must be
//!   gone.
//!
//! The CVE-2019-5736 copy of the runtime binary is a detached mount only a process can
//! hold: the process checks cover it.
//!
//! Ids must be unique to the test (`container::unique_id`): the checker reports anything
//! that names the id, whoever made it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long processes get to finish dying.
const PROCESS_DEADLINE: Duration = Duration::from_secs(10);

/// What to look for, and where.
#[derive(Clone, Debug)]
pub struct Probe {
    id: String,
    state_roots: Vec<PathBuf>,
    gone: Vec<PathBuf>,
    mount_needles: Vec<String>,
    pids: Vec<i32>,
}

impl Probe {
    /// Looks for `id` in processes, cgroups, systemd units and mounts.
    pub fn new(id: &str) -> Self {
        assert!(
            id.len() >= 6,
            "an id this short ({id:?}) would match unrelated things"
        );
        Self {
            id: id.to_string(),
            state_roots: Vec::new(),
            gone: Vec::new(),
            mount_needles: vec![id.to_string()],
            pids: Vec::new(),
        }
    }

    /// Also looks for entries naming the id under `root` (a runtime's state root).
    pub fn state_root(mut self, root: &Path) -> Self {
        self.state_roots.push(root.to_path_buf());
        self
    }

    /// Also requires `path` not to exist.
    pub fn gone(mut self, path: &Path) -> Self {
        self.gone.push(path.to_path_buf());
        self
    }

    /// Also looks for mounts naming `path` (a bundle, a daemon's directory).
    pub fn mounts_naming(mut self, path: &Path) -> Self {
        self.mount_needles.push(path.to_string_lossy().into_owned());
        self
    }

    /// Also requires these processes to be gone.
    pub fn processes(mut self, pids: impl IntoIterator<Item = i32>) -> Self {
        self.pids.extend(pids);
        self
    }

    /// Everything left, one line each (empty: nothing). Waits for processes to finish
    /// dying first.
    pub fn find(&self) -> Vec<String> {
        let mut left = Vec::new();
        let deadline = Instant::now() + PROCESS_DEADLINE;
        loop {
            let procs = self.live_processes();
            if procs.is_empty() {
                break;
            }
            if Instant::now() > deadline {
                left.extend(procs);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for dir in cgroup_dirs_containing(&self.id) {
            left.push(format!("cgroup {}", dir.display()));
        }
        left.extend(self.systemd_units());
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for line in mounts.lines() {
            if self.mount_needles.iter().any(|n| names(line, n)) {
                left.push(format!("mount {line}"));
            }
        }
        for root in &self.state_roots {
            for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
                if names(&e.file_name().to_string_lossy(), &self.id) {
                    left.push(format!("state {}", e.path().display()));
                }
            }
        }
        for p in &self.gone {
            if p.exists() {
                left.push(format!("path {}", p.display()));
            }
        }
        left
    }

    /// Panics with everything left, if anything is.
    pub fn assert_nothing_left(&self, what: &str) {
        let left = self.find();
        assert!(left.is_empty(), "{what}: left behind: {left:#?}");
    }

    /// Removes what `find` would report, as far as the test can: SIGKILLs the processes,
    /// unmounts the mounts, removes the cgroups (deepest first) and the state entries. For
    /// negative controls and for comparisons with other runtimes, whose leftovers must not
    /// pollute the tests that follow.
    pub fn clean_up(&self) {
        for _ in 0..50 {
            let pids: Vec<i32> = self
                .live_processes()
                .iter()
                .filter_map(|l| l.split_whitespace().nth(1)?.parse().ok())
                .collect();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                // SAFETY: kill takes a pid and a signal.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter(|l| self.mount_needles.iter().any(|n| names(l, n)))
            .filter_map(|l| l.split_whitespace().nth(4))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = std::process::Command::new("umount")
                .args(["-l", t])
                .status();
        }
        let mut dirs = cgroup_dirs_containing(&self.id);
        dirs.sort_by_key(|d| std::cmp::Reverse(d.components().count()));
        for d in dirs {
            let _ = std::fs::remove_dir(d);
        }
        for root in &self.state_roots {
            for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
                if names(&e.file_name().to_string_lossy(), &self.id) {
                    let _ = std::fs::remove_dir_all(e.path())
                        .or_else(|_| std::fs::remove_file(e.path()));
                }
            }
        }
    }

    /// Live (not zombie) processes of the id: listed, in a cgroup naming it, or naming it
    /// on their command line. Never this test process.
    fn live_processes(&self) -> Vec<String> {
        let me = std::process::id() as i32;
        let mut found = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if pid == me || !alive(pid) {
                continue;
            }
            let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            let why = if self.pids.contains(&pid) {
                "of the container"
            } else if names(&cgroup, &self.id) {
                "in its cgroup"
            } else if names(&cmdline, &self.id) {
                "naming it"
            } else {
                continue;
            };
            found.push(format!("process {pid} {why} ({})", cmdline.trim()));
        }
        found
    }

    fn systemd_units(&self) -> Vec<String> {
        crate::cgroups::unit_lines()
            .iter()
            .filter(|l| names(l, &self.id))
            .map(|l| format!("systemd unit {l}"))
            .collect()
    }
}

/// Whether `text` names `needle`: contains it, not followed by a letter or digit (so the
/// id `st-x-7-5` is not found in `st-x-7-55`, another container of the same test).
pub fn names(text: &str, needle: &str) -> bool {
    text.match_indices(needle).any(|(i, m)| {
        !text[i + m.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Alive and not a zombie.
pub fn alive(pid: i32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or("");
    state != "Z" && state != "X"
}

/// The mount points of every cgroup hierarchy (v1 and v2), from /proc/self/mountinfo.
pub fn cgroup_mounts() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let fstype = post.split_whitespace().next()?;
            let path = pre.split_whitespace().nth(4)?.replace("\\040", " ");
            (fstype == "cgroup" || fstype == "cgroup2").then(|| PathBuf::from(path))
        })
        .collect()
}

/// Every cgroup directory, in every hierarchy, whose name contains `needle` (see [`names`]).
pub fn cgroup_dirs_containing(needle: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for mount in cgroup_mounts() {
        let mut stack = vec![mount];
        while let Some(dir) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                if !e.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                if names(&e.file_name().to_string_lossy(), needle) {
                    found.push(e.path());
                }
                stack.push(e.path());
            }
        }
    }
    found.sort();
    found
}

#[cfg(test)]
mod tests {
    use super::names;

    #[test]
    fn an_id_is_not_found_inside_a_longer_one() {
        assert!(names(":youki:st-x-7-5", "st-x-7-5"));
        assert!(names("prefix-st-x-7-5.scope", "st-x-7-5"));
        assert!(names(
            "runtime create --bundle /b st-x-7-5 --pid-file f",
            "st-x-7-5"
        ));
        assert!(!names("st-x-7-55", "st-x-7-5"));
        assert!(!names("st-x-7-5a", "st-x-7-5"));
        assert!(names("st-x-7-55 and st-x-7-5/", "st-x-7-5"));
    }
}
