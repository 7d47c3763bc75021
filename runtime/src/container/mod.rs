//! Our layer over libcontainer's `Container`: where state lives, loading a container by id,
//! and the corrections libcontainer leaves to its caller (true status).

pub mod attach_warmup;
pub mod cgroup_mounts;
pub mod cgroup_visit;
pub mod client_errors;
pub mod config_check;
#[cfg(test)]
mod config_fuzz;
pub mod criu;
pub mod criu_restore;
pub mod exe_protect;
pub mod footprint;
pub mod hook_warnings;
pub mod path_lookup;
pub mod rootless_cgroups;
pub mod runc_stats;
pub mod send_fd;
pub mod start;
pub mod status;
pub mod test_switches;
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

/// Makes the state root (and its missing parents) as runc does: mode 0700, so only its
/// owner can look into it. An existing root keeps its mode. The container directories in
/// it are 0711 and their state files 0600 (libcontainer, third_party patch 0104).
pub fn make_state_root(root: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("cannot create the state root {}", root.display()))
}

/// Makes one container's state directory, mode 0711 as runc (whatever the umask): others
/// may pass through it, not list or read it.
pub fn make_container_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .mode(0o711)
        .create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o711))
        .with_context(|| format!("cannot set the mode of {}", dir.display()))
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

/// The directory holding one container's state (`footprint::Footprint` knows every path
/// of a container).
pub fn container_dir(root: &Path, id: &str) -> PathBuf {
    footprint::Footprint::new(root, id).state_dir()
}

/// Loads an existing container, with an error that names it when it does not exist.
pub fn load(root: &Path, id: &str) -> Result<Container> {
    validate_id(id)?;
    let dir = container_dir(root, id);
    if !dir.join("state.json").exists() {
        bail!(client_errors::does_not_exist(id));
    }
    let mut container =
        Container::load(dir).with_context(|| format!("cannot load the state of container {id}"))?;
    status::refresh(&mut container)
        .with_context(|| format!("cannot read the status of container {id}"))?;
    Ok(container)
}

/// An exclusive claim on a container id while it is being created or deleted (a POSIX
/// record lock on `<root>/.<id>.lock`, released when dropped, gone with the process if it
/// is killed, never held by the processes it forks).
pub struct IdClaim {
    _file: std::fs::File,
}

/// Claims `id` under `root` for create, failing at once if another process is creating or
/// deleting it.
pub fn claim_id(root: &Path, id: &str) -> Result<IdClaim> {
    match lock_id(root, id, None)? {
        Some(claim) => Ok(claim),
        None => bail!("container {id} already exists (another process is creating or deleting it)"),
    }
}

/// Claims `id` under `root` for delete, waiting up to `wait` for a create or delete in
/// progress to finish.
pub fn claim_id_waiting(root: &Path, id: &str, wait: std::time::Duration) -> Result<IdClaim> {
    match lock_id(root, id, Some(wait))? {
        Some(claim) => Ok(claim),
        None => bail!(
            "container {id} is busy: another process has been creating or deleting it for {}s",
            wait.as_secs()
        ),
    }
}

/// Takes the id's lock; `None` when another process holds it (after `wait`, if given). The
/// lock is only valid on the file the path names: `delete` removes the file, so a lock taken
/// on a file that was removed meanwhile is dropped and taken again.
fn lock_id(root: &Path, id: &str, wait: Option<std::time::Duration>) -> Result<Option<IdClaim>> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let path = footprint::Footprint::new(root, id).lock_file();
    let deadline = wait.map(|w| std::time::Instant::now() + w);
    loop {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        // A POSIX record lock, not flock: it belongs to this process only, so the container
        // init libcontainer forks (which shares our descriptors until it execs) does not
        // keep holding it after we are done or killed.
        // SAFETY: a zeroed flock struct is valid; fcntl reads it and returns 0 or -1.
        let mut lock: libc::flock = unsafe { std::mem::zeroed() };
        lock.l_type = libc::F_WRLCK as libc::c_short;
        lock.l_whence = libc::SEEK_SET as libc::c_short;
        // SAFETY: fcntl(F_SETLK) on an fd we own with a pointer to a live flock struct.
        if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLK, &lock) } != 0 {
            match deadline {
                Some(d) if std::time::Instant::now() < d => {
                    std::thread::sleep(std::time::Duration::from_millis(5));
                    continue;
                }
                _ => return Ok(None),
            }
        }
        let locked = file.metadata().map(|m| m.ino()).ok();
        let current = std::fs::metadata(&path).map(|m| m.ino()).ok();
        if locked.is_some() && locked == current {
            return Ok(Some(IdClaim { _file: file }));
        }
    }
}
