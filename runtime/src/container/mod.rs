//! Our layer over libcontainer's `Container`: where state lives, loading a container by id,
//! and the corrections libcontainer leaves to its caller (true status, default cgroup).

pub mod cgroup_default;
pub mod cgroup_mounts;
pub mod cgroup_visit;
pub mod criu;
pub mod criu_restore;
pub mod exe_protect;
pub mod exec_cgroup;
pub mod exec_seccomp;
pub mod path_lookup;
pub mod rootless_cgroups;
pub mod send_fd;
pub mod shadow_bundle;
pub mod start;
pub mod status;
pub mod tty_proxy;
pub mod wait;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use libcontainer::container::Container;
use nix::unistd::geteuid;

use crate::cli::Cli;

/// The state root: `--root`, else `/run/runtime` for root and
/// `$XDG_RUNTIME_DIR/runtime` for anyone else (as runc does with /run/runc).
pub fn state_root(cli: &Cli) -> PathBuf {
    if let Some(root) = &cli.root {
        return root.clone();
    }
    if geteuid().is_root() {
        return PathBuf::from("/run/runtime");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir).join("runtime"),
        _ => PathBuf::from(format!("/tmp/runtime-{}", geteuid())),
    }
}

/// Refuses ids that would escape the state root or confuse tools, as runc does.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id != "."
        && id != ".."
        && id.len() <= 1024
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if !ok {
        bail!("invalid container id {id:?}: use letters, digits, '_', '+', '-' and '.'");
    }
    Ok(())
}

/// The directory holding one container's state.
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    root.join(id)
}

/// Loads an existing container, with an error that names it when it does not exist.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    validate_id(id)?;
    let dir = container_dir(root, id);
    if !dir.join("state.json").exists() {
        bail!("container {id} does not exist");
    }
    let mut container =
        Container::load(dir).with_context(|| format!("cannot load the state of container {id}"))?;
    status::refresh(&mut container)
        .with_context(|| format!("cannot read the status of container {id}"))?;
    Ok(container)
}

/// An exclusive claim on a container id while it is being created (an flock on
/// `<root>/.<id>.lock`, released when dropped, gone with the process if it is killed).
pub struct IdClaim {
    _file: std::fs::File,
}

/// Claims `id` under `root`, failing at once if another process is creating it.
pub fn claim_id(root: &Path, id: &str) -> Result<IdClaim> {
    use std::os::fd::AsRawFd;
    let path = lock_path(root, id);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    // SAFETY: flock on an fd we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        bail!("container {id} already exists (another process is creating it)");
    }
    Ok(IdClaim { _file: file })
}

/// The lock file `claim_id` uses; `delete` removes it with the container.
pub fn lock_path(root: &Path, id: &str) -> PathBuf {
    root.join(format!(".{id}.lock"))
}
