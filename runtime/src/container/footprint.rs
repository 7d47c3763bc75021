//! Everything one container id can leave on the host, known in one place: `create`'s
//! failure path, `run`, `restore` (a failed attempt and the end of a foreground one),
//! `delete` and `delete --force` all remove a container through [`Footprint`], and the
//! spec tests' "nothing left" checker looks for the same things.
//!
//! What a container leaves:
//! - its state directory `<root>/<id>` (state.json, the saved config, the exec fifo,
//!   exec's process files and console sockets, restore's `criu-root` mount under it);
//! - the id's lock file `<root>/.<id>.lock` (removed last: while it exists, `delete -f`
//!   knows there is something to remove);
//! - the console socket `run` and `restore` listen on, `<root>/.<id>.console`;
//! - its cgroup in every hierarchy (cgroup v1, v2, or a systemd scope): the path recorded
//!   in the saved config (`youki_config.json`, written before libcontainer clones
//!   anything: no cgroup exists before it) and libcontainer's default name for the id,
//!   which an interrupted `exec` leaves; the processes in them, found through the cgroup
//!   and SIGKILLed. A process cloned before it joined its cgroup dies with the runtime
//!   (libcontainer sets PR_SET_PDEATHSIG on it, patch 0502), so a killed runtime leaves
//!   none outside; and a removal first waits until no such process is still in flight
//!   (one finishing a cgroup `mkdir` as it dies), see [`Footprint::wait_for_clones`].
//!
//! The CVE-2019-5736 protection (`exe_protect`) makes no file: its read-only copy of the
//! binary is a detached mount held only by the processes running it.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::container::Container;

use super::cgroup_mounts;

/// How long to wait for killed processes to leave their cgroup.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// How long to wait for a process cloned for the container to reach its cgroup or die
/// (it dies within milliseconds of its runtime; a live create holds the id's lock, which
/// a delete takes first).
const CLONE_WAIT: Duration = Duration::from_secs(10);

/// The cgroup libcontainer gives a container whose config names none (runc's default
/// since fork patch 0300: `/<id>` on cgroup v1, `<id>` below the caller's parent on v2).
/// The one place the runtime spells that scheme: libcontainer's own function is asked, so
/// a change of the default in the fork changes it here too.
pub fn libcontainer_default_cgroup(id: &str) -> PathBuf {
    libcontainer::utils::get_cgroup_path(&None, id, false)
}

/// What one container id has, or may have, left on the host under a state root.
pub struct Footprint {
    root: PathBuf,
    id: String,
    /// Leave the cgroups alone (they existed before the create that failed).
    keep_cgroups: bool,
}

/// Whether the cgroup a create of `id` with `spec` would use exists already (cgroupfs
/// driver; in any hierarchy). Such a cgroup belongs to whoever made it: a create that
/// fails (refused because it is frozen or busy, as runc refuses) must not remove it.
pub fn cgroup_exists(
    spec: &libcontainer::oci_spec::runtime::Spec,
    id: &str,
    systemd: bool,
) -> bool {
    if systemd {
        return false;
    }
    let given = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
    let path = libcontainer::utils::get_cgroup_path(&given, id, false);
    let Ok(path) = libcgroups::common::resolve_cgroupfs_path(&path) else {
        return false;
    };
    let rel = path.strip_prefix("/").unwrap_or(&path);
    if rel.as_os_str().is_empty() {
        return false;
    }
    cgroup_mounts::all()
        .iter()
        .any(|m| m.path.join(rel).is_dir())
}

impl Footprint {
    pub fn new(root: &Path, id: &str) -> Self {
        Self {
            root: root.to_path_buf(),
            id: id.to_string(),
            keep_cgroups: false,
        }
    }

    /// The same footprint, but [`Footprint::remove`] leaves the cgroups (and their
    /// processes) alone: for a create that failed on a cgroup someone else made.
    pub fn keeping_cgroups(mut self) -> Self {
        self.keep_cgroups = true;
        self
    }

    /// The container's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(&self.id)
    }

    /// The lock file that claims the id while it is created or deleted.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join(format!(".{}.lock", self.id))
    }

    /// The socket on which `run` and `restore` receive the terminal they relay.
    pub fn console_socket(&self) -> PathBuf {
        self.root.join(format!(".{}.console", self.id))
    }

    /// Whether anything of the id may be left: its state directory or its lock file.
    pub fn may_exist(&self) -> bool {
        self.state_dir().exists() || self.lock_file().exists()
    }

    /// The cgroups the container may have, each relative to a hierarchy's root (or a
    /// systemd `slice:prefix:name`), with whether systemd manages them: the recorded path
    /// first, then libcontainer's default name (an interrupted exec's process starts
    /// there). Never the root cgroup, nor a path that climbs out of a hierarchy.
    fn cgroups(&self) -> (Vec<PathBuf>, bool) {
        let dir = self.state_dir();
        let recorded = YoukiConfig::load(&dir).ok().map(|c| c.cgroup_path);
        let systemd = Container::load(dir).is_ok_and(|c| c.systemd());
        let mut paths: Vec<PathBuf> = Vec::new();
        for p in recorded
            .into_iter()
            .chain([libcontainer_default_cgroup(&self.id)])
        {
            if !paths.contains(&p) {
                paths.push(p);
            }
        }
        (paths, systemd)
    }

    /// Waits until no process cloned for the container (its init, libcontainer's
    /// intermediate process, an exec'd process) is between its clone and its cgroup: such
    /// a process dies with a killed runtime, but may first finish a system call that
    /// creates the cgroup again. Before anything is removed.
    pub fn wait_for_clones(&self) {
        let dir = self.state_dir();
        if libcontainer::process::clone_lock::wait_for_clones_in_flight(&dir, CLONE_WAIT) {
            tracing::warn!(
                id = %self.id,
                "a process cloned for the container held its state directory's lock for {}s",
                CLONE_WAIT.as_secs()
            );
        }
    }

    /// The runtime-side delete of a container in any state, then [`Footprint::remove`]:
    /// libcontainer's delete (it kills the processes, removes the recorded cgroup and
    /// runs the poststop hooks) where the state can be read, our sweep for the rest.
    pub fn delete_forcibly(&self) -> Result<()> {
        self.wait_for_clones();
        super::rootless_cgroups::clear_mirror();
        if let Ok(mut c) = Container::load(self.state_dir()) {
            match c.delete(true) {
                Ok(poststop_failures) => {
                    super::hook_warnings::report("poststop", &poststop_failures)
                }
                Err(err) => {
                    tracing::warn!(%err, id = %self.id, "libcontainer's delete failed; sweeping")
                }
            }
        }
        self.remove()
    }

    /// Kills every process found through the container's cgroups, removes the cgroups
    /// (deepest first), lazily unmounts anything under the state directory, and removes
    /// the state directory, the console socket and, last, the lock
    /// file. An error names everything that could not be removed.
    pub fn remove(&self) -> Result<()> {
        let mut problems = Vec::new();
        let (cgroups, systemd) = if self.keep_cgroups {
            (Vec::new(), false)
        } else {
            self.cgroups()
        };
        for path in &cgroups {
            if systemd && path.to_string_lossy().contains(':') {
                if let Err(e) = self.remove_systemd_cgroup(path) {
                    problems.push(e);
                }
                continue;
            }
            let rel = path.strip_prefix("/").unwrap_or(path);
            let sane = !rel.as_os_str().is_empty()
                && rel
                    .components()
                    .all(|c| matches!(c, std::path::Component::Normal(_)));
            if !sane {
                continue;
            }
            for mount in cgroup_mounts::all() {
                let cg = mount.path.join(rel);
                if cg.is_dir() {
                    if let Err(e) = kill_and_remove(&cg) {
                        problems.push(e);
                    }
                }
            }
        }
        let dir = self.state_dir();
        for target in mounts_under(&dir) {
            if let Ok(c) = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2 takes a NUL-terminated path and flags.
                unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
            }
        }
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                problems.push(format!("cannot remove {}: {e}", dir.display()));
            }
        }
        for f in [self.console_socket(), self.lock_file()] {
            if let Err(e) = std::fs::remove_file(&f) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    problems.push(format!("cannot remove {}: {e}", f.display()));
                }
            }
        }
        if !problems.is_empty() {
            bail!("{}", problems.join("; "));
        }
        Ok(())
    }

    /// A systemd-managed cgroup (`slice:prefix:name`): its processes are killed and its
    /// scope stopped through libcgroups' systemd manager, which knows where systemd put it.
    fn remove_systemd_cgroup(&self, path: &Path) -> Result<(), String> {
        use libcgroups::common::CgroupManager;
        let manager = libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
            cgroup_path: path.to_path_buf(),
            systemd_cgroup: true,
            container_name: self.id.clone(),
        })
        .map_err(|e| format!("cannot reach the systemd cgroup {}: {e}", path.display()))?;
        let deadline = Instant::now() + KILL_WAIT;
        loop {
            let pids = manager.get_all_pids().unwrap_or_default();
            if pids.is_empty() {
                break;
            }
            for pid in pids {
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "processes of {} did not exit after SIGKILL",
                    path.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        manager
            .remove()
            .map_err(|e| format!("cannot remove the systemd cgroup {}: {e}", path.display()))
    }
}

/// SIGKILLs every process in `cg` and its sub-cgroups until they are empty, then removes
/// the directories, deepest first.
fn kill_and_remove(cg: &Path) -> Result<(), String> {
    let dirs = subtree(cg);
    let deadline = Instant::now() + KILL_WAIT;
    loop {
        let mut any = false;
        for d in &dirs {
            let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
            for pid in procs.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                any = true;
                // SAFETY: kill takes a pid and a signal number.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        if !any {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "processes of {} did not exit after SIGKILL",
                cg.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    for d in dirs.iter().rev() {
        // A just-killed process may still be leaving; retry briefly on EBUSY.
        let mut tries = 0;
        while let Err(e) = std::fs::remove_dir(d) {
            if e.kind() == std::io::ErrorKind::NotFound {
                break;
            }
            tries += 1;
            if tries > 200 {
                return Err(format!("cannot remove cgroup {}: {e}", d.display()));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    Ok(())
}

/// `cg` and every directory beneath it, parents before children.
fn subtree(cg: &Path) -> Vec<PathBuf> {
    let mut out = vec![cg.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        if let Ok(entries) = std::fs::read_dir(&out[i]) {
            for e in entries.flatten() {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    out.push(e.path());
                }
            }
        }
        i += 1;
    }
    out
}

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(dir))
        .collect();
    found.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_name_is_the_id() {
        // Whatever libcontainer's scheme is, it names the id and stays one component.
        let lib = libcontainer_default_cgroup("c1");
        assert!(lib.to_string_lossy().ends_with("c1"), "{lib:?}");
    }

    #[test]
    fn the_paths_under_the_root_are_the_documented_ones() {
        let f = Footprint::new(Path::new("/run/runtime"), "c1");
        assert_eq!(f.state_dir(), PathBuf::from("/run/runtime/c1"));
        assert_eq!(f.lock_file(), PathBuf::from("/run/runtime/.c1.lock"));
        assert_eq!(
            f.console_socket(),
            PathBuf::from("/run/runtime/.c1.console")
        );
    }

    #[test]
    fn an_unknown_id_has_only_libcontainer_s_default_cgroup_to_look_at() {
        let root = tempfile::tempdir().unwrap();
        let f = Footprint::new(root.path(), "nothing-here");
        let (paths, systemd) = f.cgroups();
        assert_eq!(paths, vec![libcontainer_default_cgroup("nothing-here")]);
        assert!(!systemd);
        assert!(!f.may_exist());
        f.remove().unwrap();
    }
}
