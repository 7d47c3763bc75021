//! Starting the grace period a `cgroup.procs` attach waits for, early and off the critical path.
//!
//! Moving a process into a cgroup by writing its pid to `cgroup.procs` takes the kernel's
//! global `cgroup_threadgroup_rwsem` for writing. That lock is a per-CPU rwsem: its writer
//! first waits for a full RCU grace period (`rcu_sync_enter`), unless another writer did
//! so less than about one period ago. A grace period is several scheduler ticks: 4-17 ms
//! on this 250 Hz kernel, more than everything else a `create` does. runc and crun pay it
//! once per create, run and exec (they write the pid from the parent while the child
//! waits); back-to-back commands share one, which is why a shell loop of runs looks faster
//! than runs spaced apart.
//!
//! The container init and an exec'd process join their v1 hierarchies through the v1
//! `tasks` file instead, which skips that lock (third_party patches 0702 and 0900), so on a
//! host with only cgroup v1 a create, run or exec writes no `cgroup.procs` at all. One
//! write remains: the init's in the v2 hierarchy, on a unified host and on a hybrid one
//! (the init joins /sys/fs/cgroup/unified too, as runc's, patch 0304); an exec'd process
//! is cloned straight into its v2 cgroup (clone3 CLONE_INTO_CGROUP, patch 0900) and
//! writes `cgroup.procs` only where the kernel refuses that. So exec starts no thread:
//! the thread's own write would take the lock for writing, and while its writer waits
//! out the grace period every fork (the exec'd process's clone3 included) waits for it
//! too, which made a spaced exec slower with the thread than without (an exec into a
//! container with a user namespace, whose exec'd process the main process still moves,
//! patch 0310, pays the period as runc and crun do). For the init's write, as soon as such a command starts, a thread writes `0` (the writer itself) to the
//! `cgroup.procs` of a cgroup the runtime is already in: nothing moves, but the grace
//! period starts now and elapses while the main thread reads the bundle, writes the state
//! and clones the process; the real attach then finds it (mostly) passed. Writing a
//! process into the cgroup it is in changes nothing: the kernel migrates no task and calls
//! no controller's attach hook. A failure (no permission, a cgroup that refuses processes)
//! is ignored: the attach later then simply waits as it would have. Not on a v1-only
//! host: there the thread's wait would be the only one, and a command ending before it
//! would wait for the thread at exit.
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

/// Where the v2 hierarchy is mounted: /sys/fs/cgroup on a unified host,
/// /sys/fs/cgroup/unified on a hybrid one.
const V2_MOUNTS: [&str; 2] = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"];

/// Starts the thread if the runtime is root, the host has a v2 hierarchy, whose
/// `cgroup.procs` the container's init will write, and the command is not an exec (see
/// the module doc); returns at once.
pub fn start(exec: bool) {
    // SAFETY: geteuid has no arguments and cannot fail.
    if exec || unsafe { libc::geteuid() } != 0 || std::env::var_os(DISABLE).is_some() {
        return;
    }
    let Some(v2) = v2_mount() else {
        return;
    };
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        return;
    };
    let files = candidates(&text, v2);
    if files.is_empty() {
        return;
    }
    // Never freed: the thread reads it without ever calling free (see the module doc).
    let files: &'static [CString] = Box::leak(files.into_boxed_slice());
    spawn(files);
}

/// The mount point of the v2 hierarchy, if there is one.
fn v2_mount() -> Option<&'static str> {
    V2_MOUNTS.into_iter().find(|m| {
        nix::sys::statfs::statfs(*m)
            .is_ok_and(|fs| fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC)
    })
}

/// The `cgroup.procs` file of this process's cgroup in the v2 hierarchy mounted at `v2`
/// (the `0::` line of /proc/self/cgroup). The thread checks that the file is on a cgroup
/// file system before it writes.
fn candidates(proc_self_cgroup: &str, v2: &str) -> Vec<CString> {
    proc_self_cgroup
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            if !path.starts_with('/') || path.contains("/..") {
                return None;
            }
            let path = path.trim_end_matches('/');
            if !controllers.is_empty() {
                return None;
            }
            CString::new(format!("{v2}{path}/cgroup.procs")).ok()
        })
        .take(1)
        .collect()
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

    fn names(text: &str, v2: &str) -> Vec<String> {
        candidates(text, v2)
            .into_iter()
            .map(|c| c.into_string().unwrap())
            .collect()
    }

    #[test]
    fn the_v2_line_names_the_file_on_a_unified_host() {
        assert_eq!(
            names("0::/user.slice/session-1.scope\n", "/sys/fs/cgroup"),
            ["/sys/fs/cgroup/user.slice/session-1.scope/cgroup.procs"]
        );
        assert_eq!(
            names("0::/\n", "/sys/fs/cgroup"),
            ["/sys/fs/cgroup/cgroup.procs"]
        );
    }

    #[test]
    fn a_hybrid_host_uses_its_unified_mount() {
        let text = "9:name=systemd:/\n8:pids:/\n4:memory:/a/b\n0::/x\n";
        assert_eq!(
            names(text, "/sys/fs/cgroup/unified"),
            ["/sys/fs/cgroup/unified/x/cgroup.procs"]
        );
    }

    #[test]
    fn v1_lines_name_nothing() {
        // (On a v1-only host the thread is not started at all: every join there goes
        // through `tasks`, see the module doc.)
        assert!(names(
            "9:name=systemd:/s\n8:pids:/\n4:memory:/a/b\n",
            "/sys/fs/cgroup"
        )
        .is_empty());
    }

    #[test]
    fn odd_lines_are_skipped() {
        let odd = "garbage\n0::relative\n0::/../x\n3:cpu:relative\n5:name=:/\n";
        assert!(names(odd, "/sys/fs/cgroup").is_empty());
    }
}
