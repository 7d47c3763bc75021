//! Overlay mounts: how a bundle's rootfs stacks the cached layers (read-only lowers) under
//! a writable upper directory, and how each layer's cache is built on its parents.

pub mod users;

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("cannot mount an overlay at {target}: {errno}")]
    Mount { target: PathBuf, errno: nix::Error },
    #[error("cannot unmount {target}: {errno}")]
    Unmount { target: PathBuf, errno: nix::Error },
    #[error("overlay options for {layers} layers are too long for one mount ({len} bytes)")]
    TooManyLayers { layers: usize, len: usize },
}

/// The most a mount's option string may hold (one page).
const MAX_OPTIONS: usize = 4095;

/// Mounts an overlay at `target`: `lowers` from the TOP layer down (overlayfs order),
/// `upper` and `work` on the same filesystem as each other. Directory renames and
/// metadata-only copy-ups are turned off, so every upper directory is a self-contained
/// changeset: what a later layer build or commit reads from it is the whole truth.
pub fn mount_overlay(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    mount_overlay_with(lowers, upper, work, target, "")
}

/// [`mount_overlay`] for the scratch mount a layer's cache is built through, with
/// overlayfs's `volatile` option (Linux 5.10+; older kernels get a plain mount): the
/// overlay then skips syncing its upper filesystem, which it otherwise does on every
/// unmount, whole: each layer's build waited for everything written to that filesystem
/// so far (the layers below it, the other layers' downloads) to reach the disk, 0.1 to
/// several seconds a layer on this VM. The cache is built like the first layer always
/// was, through the page cache without a sync (the blobs it comes from are fsynced).
/// Never for a bundle's rootfs: a container's own fsync must reach the disk.
pub fn mount_overlay_unsynced(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
) -> Result<(), MountError> {
    match mount_overlay_with(lowers, upper, work, target, ",volatile") {
        Err(MountError::Mount {
            errno: nix::Error::EINVAL,
            ..
        }) => mount_overlay(lowers, upper, work, target),
        other => other,
    }
}

fn mount_overlay_with(
    lowers: &[PathBuf],
    upper: &Path,
    work: &Path,
    target: &Path,
    extra: &str,
) -> Result<(), MountError> {
    let join = |dirs: &[PathBuf]| {
        dirs.iter()
            .map(|d| escape(&d.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(":")
    };
    let options = format!(
        "lowerdir={},upperdir={},workdir={},index=off,redirect_dir=off,metacopy=off{extra}",
        join(lowers),
        escape(&upper.to_string_lossy()),
        escape(&work.to_string_lossy())
    );
    if options.len() > MAX_OPTIONS {
        return Err(MountError::TooManyLayers {
            layers: lowers.len(),
            len: options.len(),
        });
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::empty(),
        Some(options.as_str()),
    )
    .map_err(|errno| MountError::Mount {
        target: target.to_path_buf(),
        errno,
    })
}

/// Overlay splits its options on `,` and lower dirs on `:`; escape both.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

/// Mounts a read-only overlay of `lowers` (top first) at `target`.
pub fn mount_overlay_readonly(lowers: &[PathBuf], target: &Path) -> Result<(), MountError> {
    let options = format!(
        "lowerdir={}",
        lowers
            .iter()
            .map(|d| escape(&d.to_string_lossy()))
            .collect::<Vec<_>>()
            .join(":")
    );
    if options.len() > MAX_OPTIONS {
        return Err(MountError::TooManyLayers {
            layers: lowers.len(),
            len: options.len(),
        });
    }
    mount(
        Some("overlay"),
        target,
        Some("overlay"),
        MsFlags::MS_RDONLY,
        Some(options.as_str()),
    )
    .map_err(|errno| MountError::Mount {
        target: target.to_path_buf(),
        errno,
    })
}

/// Unmounts `target`; a target that is not mounted is fine.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => Ok(()),
        Err(nix::Error::EBUSY) => {
            umount2(target, MntFlags::MNT_DETACH).map_err(|errno| MountError::Unmount {
                target: target.to_path_buf(),
                errno,
            })
        }
        Err(errno) => Err(MountError::Unmount {
            target: target.to_path_buf(),
            errno,
        }),
    }
}

/// True when `path` is a mount point (per /proc/self/mountinfo).
pub fn is_mount_point(path: &Path) -> bool {
    let Ok(canon) = std::fs::canonicalize(path) else {
        return false;
    };
    let want = canon.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| unescape_mountinfo(m) == want)
}

fn unescape_mountinfo(s: &str) -> String {
    s.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
}

/// Whether overlay mounts can be made here: root, and overlayfs known to the kernel.
pub fn overlay_supported() -> bool {
    nix::unistd::geteuid().is_root()
        && std::fs::read_to_string("/proc/filesystems")
            .map(|f| f.lines().any(|l| l.trim_end().ends_with("\toverlay")))
            .unwrap_or(false)
}
