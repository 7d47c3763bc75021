//! Protection against CVE-2019-5736: a container process that can reach the runtime's
//! `/proc/PID/exe` (the init before it execs the user program, or a process joining with
//! `exec`) could open the host's runtime binary for writing and replace it.
//!
//! Before a command that puts a process into a container, the runtime re-executes itself
//! from a private, read-only bind mount of its own binary, made detached with
//! `open_tree(OPEN_TREE_CLONE)` and `mount_setattr(MOUNT_ATTR_RDONLY)`: no mount namespace
//! is touched and nothing is copied, so `/proc/PID/exe` then resolves to a read-only mount
//! and opening it for writing fails with EROFS. The cost is one `execveat` (well under a
//! millisecond), paid only by create, run and exec. Where the kernel lacks these calls
//! (< 5.12) a sealed memfd copy is executed instead (slower, but still safe).

use std::ffi::{CString, OsString};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;

use anyhow::{bail, Context, Result};

/// Marks the re-executed process so it does not re-execute again.
const REEXEC_MARK: &str = "_RUNTIME_EXE_PROTECTED";

/// Re-executes the runtime from a read-only copy of itself unless this process already
/// is one. Only root can make the mount; an unprivileged caller cannot write the
/// installed binary anyway, so there is nothing to protect then.
pub fn ensure_protected() -> Result<()> {
    if std::env::var_os(REEXEC_MARK).is_some() {
        // SAFETY: called before any thread is spawned, so nothing reads the environment
        // concurrently.
        unsafe { std::env::remove_var(REEXEC_MARK) };
        return Ok(());
    }
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let exe = match readonly_mount_of_self() {
        Ok(fd) => fd,
        Err(_) => sealed_memfd_copy_of_self().context("cannot protect the runtime binary")?,
    };
    // SAFETY: as above, no other thread exists yet.
    unsafe { std::env::set_var(REEXEC_MARK, "1") };
    let err = exec_fd(&exe);
    // SAFETY: as above.
    unsafe { std::env::remove_var(REEXEC_MARK) };
    Err(err).context("cannot re-execute the runtime from its read-only copy")
}

/// A detached read-only bind mount of /proc/self/exe, as an O_PATH descriptor.
fn readonly_mount_of_self() -> Result<OwnedFd> {
    let path = CString::new("/proc/self/exe")?;
    // SAFETY: open_tree takes a NUL-terminated path and flags; it returns a new fd or -1.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    if fd < 0 {
        bail!("open_tree: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let attr = libc::mount_attr {
        attr_set: libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NODEV,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    let empty = CString::new("")?;
    // SAFETY: mount_setattr reads `attr` (size passed) and the empty path relative to fd.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            empty.as_ptr(),
            libc::AT_EMPTY_PATH,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if rc < 0 {
        bail!("mount_setattr: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// A sealed in-memory copy of the binary: the fallback for kernels without open_tree.
fn sealed_memfd_copy_of_self() -> Result<OwnedFd> {
    let name = CString::new("runtime")?;
    // SAFETY: memfd_create takes a NUL-terminated name and flags; returns an fd or -1.
    let fd =
        unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING) };
    if fd < 0 {
        bail!("memfd_create: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut src = std::fs::File::open("/proc/self/exe").context("open /proc/self/exe")?;
    let mut dst = std::fs::File::from(fd.try_clone()?);
    std::io::copy(&mut src, &mut dst).context("copy the runtime binary")?;
    let seals = libc::F_SEAL_SEAL | libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE;
    // SAFETY: fcntl on an fd we own with an integer argument.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        bail!("sealing the copy: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

/// execveat(fd, "", argv, environ, AT_EMPTY_PATH); returns only on failure.
fn exec_fd(fd: &OwnedFd) -> anyhow::Error {
    let to_c = |s: OsString| CString::new(s.into_vec()).ok();
    let args: Vec<CString> = std::env::args_os().filter_map(to_c).collect();
    let env: Vec<CString> = std::env::vars_os()
        .filter_map(|(k, v)| {
            let mut kv = k.into_vec();
            kv.push(b'=');
            kv.extend(v.into_vec());
            CString::new(kv).ok()
        })
        .collect();
    let mut argv: Vec<*const libc::c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    envp.push(std::ptr::null());
    let empty = c"";
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings that
    // outlive the call; on success the call does not return.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            empty.as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    anyhow::anyhow!("execveat: {}", std::io::Error::last_os_error())
}
