//! libcontainer's `exec` re-reads config.json and, when it has no cgroupsPath, puts the new
//! process into `:youki:<id>`, not the `<id>` cgroup our create renamed it to (see
//! `cgroup_default`). Right after the exec'd process is running we move every process of
//! that stray cgroup into the container's real one and remove the stray directories, so
//! exec'd processes are limited, frozen and killed with the rest of the container.

use std::path::Path;

use anyhow::{Context, Result};

/// Moves the processes of `:youki:<id>` into `target` (the container's cgroup path, as
/// recorded in its saved config) in every hierarchy, then removes the stray cgroup.
pub fn adopt_stray(id: &str, target: &Path) -> Result<()> {
    let stray_name = super::footprint::libcontainer_default_cgroup(id);
    if target == stray_name {
        return Ok(());
    }
    let rel = target.strip_prefix("/").unwrap_or(target);
    for mount in super::cgroup_mounts::all() {
        let mount = mount.path;
        let stray = mount.join(stray_name.strip_prefix("/").unwrap_or(&stray_name));
        let dest = mount.join(rel);
        if !stray.is_dir() || !dest.is_dir() {
            continue;
        }
        // A process may fork while we move: repeat until the stray cgroup is empty.
        for _ in 0..100 {
            let procs = std::fs::read_to_string(stray.join("cgroup.procs")).unwrap_or_default();
            if procs.trim().is_empty() {
                break;
            }
            for pid in procs.lines() {
                let _ = std::fs::write(dest.join("cgroup.procs"), pid);
            }
        }
        std::fs::remove_dir(&stray)
            .with_context(|| format!("cannot remove the stray cgroup {}", stray.display()))?;
    }
    Ok(())
}
