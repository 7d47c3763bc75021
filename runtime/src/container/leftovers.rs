//! Removing everything a container may have left, whatever state it is in: used by
//! `delete --force` after libcontainer's delete (or instead of it, when the state cannot be
//! read because a runtime was killed half-way through create, exec or delete).
//!
//! What a container can leave: processes in its cgroup (the default `<id>`, or the
//! config's `cgroupsPath` recorded in `youki_config.json`), the cgroup
//! directories themselves, mounts under its state directory (restore's `criu-root`), the
//! state directory, its lock file and a console socket of `run`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroup_mounts;

/// How long to wait for killed processes to leave their cgroup.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Kills the container's processes, removes its cgroups, mounts, state directory, lock and
/// console socket. Returns what could not be removed (empty when all is gone).
pub fn sweep(root: &Path, id: &str) -> Vec<String> {
    let dir = super::container_dir(root, id);
    let mut problems = Vec::new();
    for rel in cgroup_names(&dir, id) {
        for mount in cgroup_mounts::all() {
            let cg = mount.path.join(&rel);
            if cg.is_dir() {
                if let Err(e) = kill_and_remove(&cg) {
                    problems.push(e);
                }
            }
        }
    }
    for target in mounts_under(&dir) {
        if let Ok(c) = std::ffi::CString::new(target.as_os_str().as_encoded_bytes()) {
            // SAFETY: umount2 takes a NUL-terminated path and flags.
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
    if dir.exists() {
        if let Err(e) = std::fs::remove_dir_all(&dir) {
            problems.push(format!("cannot remove {}: {e}", dir.display()));
        }
    }
    let _ = std::fs::remove_file(super::lock_path(root, id));
    let _ = std::fs::remove_file(root.join(format!(".{id}.console")));
    problems
}

/// The cgroup paths (relative to a hierarchy's mount point) the container may have used.
fn cgroup_names(dir: &Path, id: &str) -> Vec<PathBuf> {
    let mut names = vec![PathBuf::from(id)];
    // The recorded cgroup path, when the saved config can still be read (it may not be,
    // e.g. if a runtime was killed while writing it).
    let recorded = std::fs::read(dir.join("youki_config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| v["cgroup_path"].as_str().map(PathBuf::from));
    if let Some(p) = recorded {
        let rel = p.strip_prefix("/").unwrap_or(&p).to_path_buf();
        // Never the root cgroup, nor anything that climbs out of a hierarchy.
        let sane = !rel.as_os_str().is_empty()
            && rel
                .components()
                .all(|c| matches!(c, std::path::Component::Normal(_)));
        if sane && !names.contains(&rel) {
            names.push(rel);
        }
    }
    names
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
