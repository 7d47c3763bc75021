//! PATCH (runtime, see third_party/README.md): opening files under `/proc/self` in two
//! system calls instead of about fifteen.
//!
//! libpathrs' `ProcfsHandle::new()` hands out its cached private procfs mount (made with
//! `fsopen`, `subset=pid`, detached from every mount namespace), but re-verifies it on
//! every call (fstatfs, fstat, statx, two faccessat2, an openat of `..`, ...), and its
//! `open` then resolves the base and the subpath separately, checking the mount of each
//! result again. libcontainer and libcgroups open a `/proc/self` file a few dozen times
//! per container start, so that verification was about a tenth of all system calls of a
//! `run`.
//!
//! Here the handle that libpathrs verified is remembered once per process by its identity
//! (device, mount id, inode 1), and each open is:
//! - one `statx` of the remembered descriptor, proving it is still that same procfs root
//!   (a descriptor number closed and reused for something else fails the check, and the
//!   handle is fetched from libpathrs again), then
//! - one `openat2` of `self/<subpath>` beneath it with `RESOLVE_BENEATH |
//!   RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS`: the lookup cannot leave that procfs root,
//!   cannot cross onto any other mount (so no overmount of a `/proc` file is ever
//!   followed, the attack of CVE-2019-16884 and CVE-2019-19921), and cannot follow a magic
//!   link.
//!
//! That is the property libpathrs' checks establish, with the kernel enforcing it in the
//! lookup itself. Whenever the fast path is not available (no `openat2`, libpathrs could
//! only give an attached or unrestricted handle, any error at all) the call falls back to
//! libpathrs' own `ProcfsHandle::new()?.open(...)`, so errors and fallbacks (such as the
//! retry on an unmasked procfs for a file that `subset=pid` hides) are libpathrs'.

use std::ffi::CString;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, RawFd};
use std::path::Path;
use std::sync::Mutex;

use pathrs::flags::OpenFlags;
use pathrs::procfs::{ProcfsBase, ProcfsHandle};

/// The identity of libpathrs' verified, cached procfs root descriptor.
#[derive(Clone, Copy, PartialEq, Eq)]
struct ProcRoot {
    fd: RawFd,
    dev: (u32, u32),
    mnt_id: u64,
}

static CACHED_ROOT: Mutex<Option<ProcRoot>> = Mutex::new(None);

/// The inode number of the root directory of every procfs instance.
const PROC_ROOT_INO: u64 = 1;

/// `(device, mount id)` of `fd` if it is the root directory of a procfs mount.
fn identity(fd: RawFd) -> Option<((u32, u32), u64)> {
    // SAFETY: statx is given a valid empty C string, flags, and a zeroed struct that it
    // fills in; it does not keep any pointer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            fd,
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            libc::STATX_INO | libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if rc != 0 || stx.stx_mask & libc::STATX_MNT_ID == 0 || stx.stx_ino != PROC_ROOT_INO {
        return None;
    }
    Some(((stx.stx_dev_major, stx.stx_dev_minor), stx.stx_mnt_id))
}

/// libpathrs' cached procfs root, if it has one that is private (detached) and
/// restricted (`subset=pid`): only such a handle is cached there, and only that one
/// lives as long as the process, so remembering its descriptor number is sound.
fn fetch_root() -> Option<ProcRoot> {
    let handle = ProcfsHandle::new().ok()?;
    let fd = handle.as_fd().as_raw_fd();
    // An owned handle is a fresh, uncached one (not detached or not subset=pid, or the
    // cache was found bad): it is closed when dropped here, so it cannot be remembered.
    if handle.into_owned_fd().is_some() {
        return None;
    }
    let (dev, mnt_id) = identity(fd)?;
    Some(ProcRoot { fd, dev, mnt_id })
}

/// The remembered procfs root, checked to still be the same mount (one statx).
fn checked_root() -> Option<ProcRoot> {
    let mut cached = CACHED_ROOT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(root) = *cached {
        if identity(root.fd) == Some((root.dev, root.mnt_id)) {
            return Some(root);
        }
    }
    *cached = fetch_root();
    *cached
}

fn open_fast(subpath: &Path, flags: OpenFlags) -> Option<File> {
    use std::os::unix::ffi::OsStrExt;
    let root = checked_root()?;
    let mut path = b"self/".to_vec();
    path.extend_from_slice(subpath.as_os_str().as_bytes());
    let path = CString::new(path).ok()?;
    // SAFETY: open_how is a plain C struct; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags.bits() | (libc::O_CLOEXEC | libc::O_NOFOLLOW) as u64;
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_XDEV | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads the path and the open_how of the given size; it returns a new
    // descriptor or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.fd,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return None;
    }
    // SAFETY: fd is a descriptor openat2 just returned to us, owned by nobody else.
    Some(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Opens `/proc/self/<subpath>` like `ProcfsHandle::new()?.open(ProcfsBase::ProcSelf,
/// subpath, flags)` (the same result and the same errors), in two system calls when the
/// kernel and libpathrs' cached handle allow it (see the module documentation).
pub fn open(subpath: impl AsRef<Path>, flags: OpenFlags) -> Result<File, pathrs::error::Error> {
    let subpath = subpath.as_ref();
    if let Some(file) = open_fast(subpath, flags) {
        return Ok(file);
    }
    ProcfsHandle::new()?.open(ProcfsBase::ProcSelf, subpath, flags)
}
