//! PATCH (runtime, see third_party/README.md): nothing but procfs on the container's
//! /proc, judged on the descriptors the mount actually uses (CVE-2019-16884,
//! CVE-2019-19921 and their races).
//!
//! A check of the destination *path* before mounting loses to anyone who can change the
//! rootfs meanwhile (a volume shared with another container): swap a directory for a
//! symlink to `../proc` between the check and the mount and a fake procfs lands on /proc.
//! Here the destination is judged through the descriptor the mount is moved onto (found
//! with `openat2(RESOLVE_IN_ROOT)`), and what is mounted through the descriptor of the new
//! mount (`fstatfs`): a descriptor keeps naming the same inode whatever happens to the
//! path. After all the mounts, /proc is checked once more: it must be procfs's root.
//!
//! In debug builds `_RUNTIME_TEST_UNSAFE=proc-handle-check` turns these checks off, so a
//! test can show its race detector sees a hit without them (a negative control).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::Mount as SpecMount;

/// procfs's statfs magic.
const PROC_SUPER_MAGIC: libc::c_long = 0x9fa0;
/// The inode number of a procfs root.
const PROC_ROOT_INO: u64 = 1;

/// Files under /proc that may be mounted over (what lxcfs emulates), as runc allows.
const PROC_FILES_ALLOWED: &[&str] = &[
    "/proc/cpuinfo",
    "/proc/diskstats",
    "/proc/meminfo",
    "/proc/stat",
    "/proc/swaps",
    "/proc/uptime",
    "/proc/loadavg",
    "/proc/slabinfo",
    "/proc/sys/kernel/ns_last_pid",
    "/proc/sys/crypto/fips_enabled",
];

/// What is about to be mounted.
pub(crate) enum Mounted<'a> {
    /// A new filesystem of this type (fsopen).
    NewFs(Option<&'a str>),
    /// A copy of an existing tree (open_tree), judged by its filesystem.
    Tree(BorrowedFd<'a>),
}

/// Whether a test switched these checks off (debug builds only).
fn switched_off() -> bool {
    #[cfg(debug_assertions)]
    {
        static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OFF.get_or_init(|| {
            let off = std::env::var("_RUNTIME_TEST_UNSAFE")
                .is_ok_and(|v| v.split(',').any(|c| c == "proc-handle-check"));
            if off {
                eprintln!("runtime: TEST-ONLY: protection proc-handle-check is off");
            }
            off
        })
    }
    #[cfg(not(debug_assertions))]
    {
        false
    }
}

/// (device, inode) of a descriptor.
fn identity(fd: BorrowedFd<'_>) -> std::io::Result<(u64, u64)> {
    // SAFETY: fstat fills a zeroed stat struct for a live descriptor (O_PATH ones too).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino))
}

/// The filesystem magic of a descriptor's filesystem.
fn fs_magic(fd: BorrowedFd<'_>) -> std::io::Result<libc::c_long> {
    // SAFETY: fstatfs fills a zeroed statfs struct for a live descriptor.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstatfs(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st.f_type as libc::c_long)
}

/// `path` opened `O_PATH` under `root` without following any symlink.
fn open_no_symlinks(root: BorrowedFd<'_>, path: &str) -> Option<OwnedFd> {
    let c = std::ffi::CString::new(path.trim_start_matches('/')).ok()?;
    // SAFETY: open_how is a plain C struct; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (libc::O_PATH | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the NUL-terminated path and the open_how of the given size and
    // returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            c.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    // SAFETY: a descriptor openat2 just returned, owned by nobody else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Where a destination descriptor is, relative to the container's /proc.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Elsewhere,
    Proc,
    /// Under /proc, at one of lxcfs's files.
    ProcFileAllowed,
    UnderProc,
}

fn place(root: BorrowedFd<'_>, dest: BorrowedFd<'_>) -> std::io::Result<Place> {
    let dest_id = identity(dest)?;
    let Some(proc) = open_no_symlinks(root, "proc") else {
        // No /proc directory (or a symlink, which procfs is never mounted through):
        // nothing can be under it.
        return Ok(Place::Elsewhere);
    };
    let proc_id = identity(proc.as_fd())?;
    if dest_id == proc_id {
        return Ok(Place::Proc);
    }
    // Under the procfs mounted on /proc: the same filesystem instance.
    if fs_magic(dest)? == PROC_SUPER_MAGIC && dest_id.0 == proc_id.0 {
        let allowed = PROC_FILES_ALLOWED.iter().any(|f| {
            open_no_symlinks(root, f)
                .and_then(|fd| identity(fd.as_fd()).ok())
                .is_some_and(|id| id == dest_id)
        });
        return Ok(if allowed {
            Place::ProcFileAllowed
        } else {
            Place::UnderProc
        });
    }
    Ok(Place::Elsewhere)
}

/// Refuses to move `mounted` onto `dest` (found inside `root`) when `dest` is the
/// container's /proc and `mounted` is not procfs, or `dest` is inside /proc and not one of
/// lxcfs's files. The error names the mount and what its destination turned out to be.
pub(crate) fn check(
    root: BorrowedFd<'_>,
    dest: BorrowedFd<'_>,
    mounted: Mounted<'_>,
    m: &SpecMount,
) -> Result<(), String> {
    if switched_off() {
        return Ok(());
    }
    let what = m
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .or_else(|| m.typ().clone())
        .unwrap_or_default();
    let named = m.destination().display();
    let here = place(root, dest)
        .map_err(|e| format!("cannot check the destination {named} of {what}: {e}"))?;
    let via = if Path::new("/proc") == m.destination() {
        String::new()
    } else {
        format!(" (the destination {named} resolves to it)")
    };
    match here {
        Place::Elsewhere | Place::ProcFileAllowed => Ok(()),
        Place::Proc => {
            let procfs = match mounted {
                Mounted::NewFs(typ) => typ == Some("proc"),
                Mounted::Tree(fd) => {
                    fs_magic(fd)
                        .map_err(|e| format!("cannot check the filesystem of {what}: {e}"))?
                        == PROC_SUPER_MAGIC
                }
            };
            if procfs {
                Ok(())
            } else {
                Err(format!(
                    "{what} cannot be mounted on /proc{via}: only procfs may be"
                ))
            }
        }
        Place::UnderProc => Err(format!(
            "{named} is not a valid mount destination: it is inside /proc, where only lxcfs's files may be mounted over"
        )),
    }
}

/// After the config's mounts: when procfs was to be mounted on /proc, /proc (reached
/// without following symlinks) must be a procfs root.
pub(crate) fn check_final(rootfs: &Path, mounts: &[SpecMount]) -> Result<(), String> {
    let procfs_on_proc = mounts.iter().any(|m| {
        m.destination() == Path::new("/proc")
            && m.typ().as_deref() == Some("proc")
            && !super::utils::is_bind(m)
    });
    if !procfs_on_proc || switched_off() {
        return Ok(());
    }
    let root = std::fs::File::open(rootfs)
        .map_err(|e| format!("cannot open the rootfs {}: {e}", rootfs.display()))?;
    let root = root.as_fd();
    let proc = open_no_symlinks(root, "proc").ok_or_else(|| {
        format!(
            "/proc in the container cannot be opened without following a symlink: {}",
            std::io::Error::last_os_error()
        )
    })?;
    let magic = fs_magic(proc.as_fd()).map_err(|e| format!("fstatfs /proc: {e}"))?;
    let (_, ino) = identity(proc.as_fd()).map_err(|e| format!("fstat /proc: {e}"))?;
    if magic != PROC_SUPER_MAGIC || ino != PROC_ROOT_INO {
        return Err(format!(
            "/proc in the container is not a procfs root after the mounts (filesystem {magic:#x}, inode {ino}): something was mounted over it"
        ));
    }
    Ok(())
}
