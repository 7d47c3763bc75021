//! PATCH (runtime): a single-threaded process joining a v1 cgroup itself, without the
//! grace period of a `cgroup.procs` write.
//!
//! Writing a pid to `cgroup.procs` takes the kernel's global `cgroup_threadgroup_rwsem`
//! for writing, and that per-CPU rwsem's writer first waits for a full RCU grace period
//! (unless another writer did so less than about one period ago): 4-17 ms on a 250 Hz
//! kernel, the longest single wait of a container's create, and of an exec. Since the
//! kernel change "cgroup: Optimize single thread migration" (2019) a write of `0` (the
//! writer itself) to a v1 hierarchy's `tasks` file moves only the calling thread and skips
//! that lock: for a process with one thread it is the same move, about 0.2 ms. A `tasks`
//! write never moves the other threads of a process, hence the single-thread check. The container init and
//! an exec'd process join their cgroups this way (PATCH (runtime): the exec'd process
//! since patch 0900); they are single-threaded clones of the runtime. On older kernels
//! the same write takes the lock as before.

use std::path::Path;

use nix::unistd::Pid;

use crate::common::{self, CGROUP_PROCS, WrappedIoError};

/// The v1 file that lists the threads of a cgroup.
const CGROUP_TASKS: &str = "tasks";

/// Moves `pid` into the v1 cgroup at `cgroup_path`: through `tasks` when `pid` is the
/// calling process and it has one thread, else (or if that write fails) through
/// `cgroup.procs`.
pub(super) fn add_task(pid: Pid, cgroup_path: &Path) -> Result<(), WrappedIoError> {
    if pid == nix::unistd::getpid()
        && single_threaded()
        && common::write_cgroup_file_str(cgroup_path.join(CGROUP_TASKS), "0").is_ok()
    {
        return Ok(());
    }
    common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)
}

/// Whether the calling process has exactly one thread: procfs gives a task directory
/// two links plus one per thread.
fn single_threaded() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/task").is_ok_and(|m| m.nlink() == 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_test_thread_is_not_alone() {
        // The test harness runs tests on threads of one process.
        let _other = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(1)));
        assert!(!single_threaded());
    }

    #[test]
    fn another_process_goes_through_cgroup_procs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CGROUP_TASKS), "").unwrap();
        std::fs::write(dir.path().join(CGROUP_PROCS), "").unwrap();
        add_task(Pid::from_raw(4242), dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CGROUP_PROCS)).unwrap(),
            "4242"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CGROUP_TASKS)).unwrap(),
            ""
        );
    }

    #[test]
    fn a_multithreaded_caller_goes_through_cgroup_procs() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CGROUP_TASKS), "").unwrap();
        std::fs::write(dir.path().join(CGROUP_PROCS), "").unwrap();
        let _other = std::thread::spawn(|| std::thread::sleep(std::time::Duration::from_secs(1)));
        let me = nix::unistd::getpid();
        add_task(me, dir.path()).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CGROUP_PROCS)).unwrap(),
            me.to_string()
        );
    }

    #[test]
    fn a_single_threaded_caller_writes_zero_to_tasks() {
        // A child process of this (multi-threaded) test is single-threaded.
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CGROUP_TASKS), "").unwrap();
        std::fs::write(dir.path().join(CGROUP_PROCS), "").unwrap();
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let ok = add_task(nix::unistd::getpid(), dir.path()).is_ok();
                // SAFETY: _exit ends the forked child without running the parent's
                // destructors.
                unsafe { libc::_exit(if ok { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => {
                let status = nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(status, nix::sys::wait::WaitStatus::Exited(child, 0));
            }
        }
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CGROUP_TASKS)).unwrap(),
            "0"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join(CGROUP_PROCS)).unwrap(),
            ""
        );
    }
}
