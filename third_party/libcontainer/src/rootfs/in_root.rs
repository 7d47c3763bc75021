//! PATCH (runtime, see third_party/README.md): finding or creating a mount destination
//! inside the container's rootfs with plain `openat2(RESOLVE_IN_ROOT)` lookups.
//!
//! libpathrs' `Root::mkdir_all` re-opens each directory handle through procfs and
//! re-verifies its procfs handle every time (about 70 system calls for one missing
//! directory, 40 for an existing one), and a failed `Root::resolve` reads the root's
//! path back through procfs to name it in the error (9 more). Mounting the default
//! spec's filesystems took over a thousand system calls that way.
//!
//! The lookups here give the same guarantees with the kernel doing the work:
//! - the existing part of the path is resolved with `RESOLVE_IN_ROOT |
//!   RESOLVE_NO_MAGICLINKS`, as libpathrs' openat2 resolver does: `..` and absolute
//!   symlinks cannot leave the rootfs;
//! - each missing component is made with `mkdirat` relative to its parent's descriptor
//!   and then opened with `O_NOFOLLOW | O_DIRECTORY`, so a symlink or file swapped in
//!   between (the CVE-2021-30465 race) makes the open fail instead of being followed.
//!
//! Every function returns `None` on anything unusual (`..` in the path, a kernel without
//! `openat2`, `EAGAIN` from a concurrent rename, a component that is not a directory, ...)
//! and the caller then takes libpathrs' original path, which reports the error.

use std::ffi::{CString, OsStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

/// The last OS error number.
fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// `openat2(dirfd, path, flags, resolve)`, as an owned descriptor or the errno.
fn openat2(dirfd: BorrowedFd<'_>, path: &OsStr, flags: i32, resolve: u64) -> Result<OwnedFd, i32> {
    let path = CString::new(path.as_bytes()).map_err(|_| libc::EINVAL)?;
    // SAFETY: open_how is a plain C struct; all-zero is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // SAFETY: openat2 reads the NUL-terminated path and the open_how of the given size and
    // returns a new descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dirfd.as_raw_fd(),
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: fd was just returned by openat2 and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `path` resolved inside `root` (an `O_PATH` descriptor), or the errno.
// PATCH (runtime, see third_party/README.md): also opens bind-mount sources for the init
// (process::bind_sources).
pub(crate) fn resolve(root: BorrowedFd<'_>, path: &Path) -> Result<OwnedFd, i32> {
    openat2(
        root,
        path.as_os_str(),
        libc::O_PATH,
        libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS,
    )
}

fn is_dir(fd: &OwnedFd) -> bool {
    // SAFETY: fstat fills in a zeroed stat struct for a descriptor we own (O_PATH
    // descriptors can be fstat'ed).
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(fd.as_raw_fd(), &mut st) };
    rc == 0 && st.st_mode & libc::S_IFMT == libc::S_IFDIR
}

/// An existing `path` inside `root`, of any type (`O_PATH`), or `None`.
pub(crate) fn existing(root: BorrowedFd<'_>, path: &Path) -> Option<OwnedFd> {
    resolve(root, path).ok()
}

/// The directory `path` inside `root` (`O_PATH`), made with its missing parents (mode
/// `mode`, less the umask) if it does not exist; `None` when the caller should fall back.
pub(crate) fn dir_all(root: BorrowedFd<'_>, path: &Path, mode: u32) -> Option<OwnedFd> {
    match resolve(root, path) {
        Ok(fd) => return is_dir(&fd).then_some(fd),
        Err(libc::ENOENT) => {}
        Err(_) => return None,
    }
    let mut parts = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(p) => parts.push(p),
            Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    // The deepest existing ancestor (the full path is known to be missing).
    let mut have = parts.len();
    let mut cur = loop {
        if have == 0 {
            break root.try_clone_to_owned().ok()?;
        }
        have -= 1;
        let prefix: std::path::PathBuf = parts[..have].iter().collect();
        match resolve(root, &Path::new("/").join(prefix)) {
            Ok(fd) => break fd,
            Err(libc::ENOENT) => continue,
            Err(_) => return None,
        }
    };
    for part in &parts[have..] {
        let name = CString::new(part.as_bytes()).ok()?;
        // SAFETY: mkdirat takes a directory descriptor (O_PATH is allowed), a
        // NUL-terminated name and a mode.
        if unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), mode as libc::mode_t) } != 0
            && errno() != libc::EEXIST
        {
            return None;
        }
        cur = openat2(
            cur.as_fd(),
            part,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW,
            libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_XDEV | libc::RESOLVE_BENEATH,
        )
        .ok()?;
    }
    Some(cur)
}
