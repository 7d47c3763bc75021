//! Starting the grace period a cgroup attach waits for, early and off the critical path.
//!
//! Moving a process into a cgroup (a write to `cgroup.procs`, v1 or v2) takes the kernel's
//! global `cgroup_threadgroup_rwsem` for writing. That lock is a per-CPU rwsem: its writer
//! first waits for a full RCU grace period (`rcu_sync_enter`), unless another writer did
//! so less than about one grace period ago. A grace period is several scheduler ticks:
//! 4–12 ms on a 250 Hz kernel, more than everything else a `create` does. Every runtime
//! pays it once per create, run and exec (runc and crun write the pid from the parent
//! while the child waits; the container init here writes itself); back-to-back commands
//! share one, which is why a shell loop of runs looks faster than runs spaced apart.
//!
//! So as soon as a command that will attach a process starts, a thread writes `0` (the
//! writer itself) to the `cgroup.procs` of the cgroup the runtime is already in: nothing
//! moves, but the grace period starts now and elapses while the main thread reads the
//! bundle, writes the state and clones the init; the init's own attach then finds it
//! (mostly) passed. Writing a process into the cgroup it is in changes nothing: the kernel
//! migrates no task and calls no controller's attach hook. A failure (no permission, no
//! cgroup file system, a cgroup that refuses processes) is ignored: the attach later then
//! simply waits as it would have.
//!
//! The thread must not disturb the main thread's `clone3` of the container processes
//! (libcontainer calls the system call directly, so glibc's fork handlers do not run): a
//! lock held by this thread at that instant would stay locked forever in the child. It
//! therefore only makes system calls whose glibc wrappers take no lock, on data built
//! beforehand and never freed (no malloc or free), runs with every signal blocked
//! (signals go to the main thread), is a bare pthread without Rust's thread bookkeeping,
//! and never ends: it sleeps in `pause()` until the process exits. An ending thread would
//! take glibc's thread-stack lock on its way out, which the init needs for its
//! `setresuid` (glibc applies it to every thread it knows of). Only root starts it: an
//! unprivileged runtime cannot write there, and the rootless path needs a
//! single-threaded process (`unshare(CLONE_NEWUSER)`).

use std::ffi::CString;

/// Set to anything: do not start the thread (to measure what it gains).
const DISABLE: &str = "_RUNTIME_TEST_NO_ATTACH_WARMUP";

/// cgroup v1 and v2 file system magic numbers (statfs f_type).
const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Starts the thread if the runtime is root; returns at once.
pub fn start() {
    // SAFETY: geteuid has no arguments and cannot fail.
    if unsafe { libc::geteuid() } != 0 || std::env::var_os(DISABLE).is_some() {
        return;
    }
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let files = candidates(&text);
    if files.is_empty() {
        return;
    }
    // Never freed: the thread reads it without ever calling free (see the module doc).
    let files: &'static [CString] = Box::leak(files.into_boxed_slice());
    spawn(files);
}

/// The `cgroup.procs` files of the cgroups this process is in, where the usual mount
/// points put them: one for the v2 line (a hybrid host's /sys/fs/cgroup/unified, else
/// /sys/fs/cgroup), then the first v1 hierarchies'. The thread takes the first that opens
/// on a cgroup file system; which one does not matter (the lock is global).
fn candidates(proc_self_cgroup: &str) -> Vec<CString> {
    let mut out = Vec::new();
    for line in proc_self_cgroup.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !path.starts_with('/') || path.contains("/..") {
            continue;
        }
        let path = path.trim_end_matches('/');
        let dirs: Vec<String> = if controllers.is_empty() {
            vec![
                format!("/sys/fs/cgroup/unified{path}"),
                format!("/sys/fs/cgroup{path}"),
            ]
        } else {
            let first = controllers.split(',').next().unwrap_or_default();
            let name = first.strip_prefix("name=").unwrap_or(first);
            if name.is_empty() || name.contains('/') {
                continue;
            }
            vec![format!("/sys/fs/cgroup/{name}{path}")]
        };
        out.extend(
            dirs.into_iter()
                .filter_map(|d| CString::new(format!("{d}/cgroup.procs")).ok()),
        );
        if out.len() >= 4 {
            break;
        }
    }
    out
}

/// Creates the detached thread with all signals blocked.
fn spawn(files: &'static [CString]) {
    // SAFETY: plain pthread and sigset calls on local, initialised structures; the thread
    // gets a pointer to a 'static slice, which outlives it.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let mut attr: libc::pthread_attr_t = std::mem::zeroed();
        libc::pthread_attr_init(&mut attr);
        libc::pthread_attr_setdetachstate(&mut attr, libc::PTHREAD_CREATE_DETACHED);
        // It runs a handful of system calls: a small stack is enough.
        libc::pthread_attr_setstacksize(&mut attr, 64 * 1024);
        let mut thread: libc::pthread_t = 0;
        let arg = files as *const [CString] as *const CString as *mut libc::c_void;
        // The slice's length travels in a second leaked word: [ptr, len].
        let packed: &'static [usize; 2] = Box::leak(Box::new([arg as usize, files.len()]));
        libc::pthread_create(
            &mut thread,
            &attr,
            warm_up,
            packed as *const [usize; 2] as *mut libc::c_void,
        );
        libc::pthread_attr_destroy(&mut attr);
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
    }
}

/// The thread: the first candidate that opens on a cgroup file system gets a `0`.
extern "C" fn warm_up(packed: *mut libc::c_void) -> *mut libc::c_void {
    // SAFETY: `packed` is the leaked [ptr, len] of a leaked slice of CString (see spawn);
    // only system calls follow, on those NUL-terminated strings and a local buffer.
    unsafe {
        let [ptr, len] = *(packed as *const [usize; 2]);
        let files = std::slice::from_raw_parts(ptr as *const CString, len);
        for file in files {
            let fd = libc::open(file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 {
                continue;
            }
            let mut fs: libc::statfs = std::mem::zeroed();
            let on_cgroupfs = libc::fstatfs(fd, &mut fs) == 0
                && matches!(fs.f_type, CGROUP_SUPER_MAGIC | CGROUP2_SUPER_MAGIC);
            if on_cgroupfs {
                libc::write(fd, b"0".as_ptr() as *const libc::c_void, 1);
            }
            libc::close(fd);
            if on_cgroupfs {
                break;
            }
        }
        // Never return (see the module doc); exit_group ends the thread with the process.
        loop {
            libc::pause();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> Vec<String> {
        candidates(text)
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect()
    }

    #[test]
    fn hybrid_host_lines() {
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/a/b\n1:cpu,cpuacct:/x\n0::/\n";
        assert_eq!(
            names(text),
            [
                "/sys/fs/cgroup/systemd/cgroup.procs",
                "/sys/fs/cgroup/pids/cgroup.procs",
                "/sys/fs/cgroup/memory/a/b/cgroup.procs",
                "/sys/fs/cgroup/cpu/x/cgroup.procs",
            ]
        );
    }

    #[test]
    fn unified_host_line() {
        assert_eq!(
            names("0::/user.slice/session-1.scope\n"),
            [
                "/sys/fs/cgroup/unified/user.slice/session-1.scope/cgroup.procs",
                "/sys/fs/cgroup/user.slice/session-1.scope/cgroup.procs",
            ]
        );
    }

    #[test]
    fn odd_lines_are_skipped() {
        assert!(names("garbage\n3:cpu:relative\n4:memory:/../x\n5:name=:/\n").is_empty());
    }
}
