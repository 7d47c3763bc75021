//! PATCH (runtime): waiting for the processes of a cgroup to exit, with pidfds.
//!
//! Removing a cgroup right after its processes were sent SIGKILL fails with EBUSY until
//! the last of them has gone through the kernel's `cgroup_exit()`, which `do_exit()` runs
//! before it makes the process's exit known (`exit_notify()`): a pidfd of the process
//! turns readable after its cgroup membership is gone. Waiting on pidfds therefore ends
//! exactly when an rmdir can succeed, where the retry loop it replaces slept 10 ms
//! whatever the process was doing.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

/// Waits until every process listed in `cgroup_dir`'s `cgroup.procs` has exited, at most
/// `limit`. Returns false when it could not wait that way (no process listed, the file
/// unreadable, pidfds not supported) or the limit passed: the caller falls back to
/// sleeping. A pid that has already gone (or been reaped and reused: the wait then ends
/// at the limit) is harmless: the caller retries its rmdir either way.
pub fn wait_for_cgroup_procs(cgroup_dir: &Path, limit: Duration) -> bool {
    let Ok(procs) = std::fs::read_to_string(cgroup_dir.join(crate::common::CGROUP_PROCS)) else {
        return false;
    };
    let mut fds = Vec::new();
    for pid in procs
        .lines()
        .filter_map(|l| l.trim().parse::<libc::pid_t>().ok())
    {
        match pidfd_open(pid) {
            Ok(fd) => fds.push(fd),
            Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
            Err(_) => return false,
        }
    }
    if fds.is_empty() {
        return false;
    }
    wait_readable(&fds, limit)
}

/// Waits until the process behind `pid` has exited, at most `limit`; false if it could not
/// wait (pidfds not supported) or the limit passed. A process that is already gone counts
/// as exited.
pub fn wait_for_pid(pid: libc::pid_t, limit: Duration) -> bool {
    match pidfd_open(pid) {
        Ok(fd) => wait_readable(&[fd], limit),
        Err(e) => e.raw_os_error() == Some(libc::ESRCH),
    }
}

fn pidfd_open(pid: libc::pid_t) -> std::io::Result<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Polls the pidfds until all are readable (their processes have exited) or `limit`.
fn wait_readable(fds: &[OwnedFd], limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut pending: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    while !pending.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let timeout = left.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `pending` is a valid array of pollfd of the length passed.
        let n = unsafe { libc::poll(pending.as_mut_ptr(), pending.len() as libc::nfds_t, timeout) };
        if n < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                continue;
            }
            return false;
        }
        pending.retain(|p| p.revents == 0);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_once_the_process_has_exited() {
        let mut child = std::process::Command::new("sleep")
            .arg("0.2")
            .spawn()
            .unwrap();
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child is still running"
        );
        // The child is not reaped while we wait: a zombie's pidfd is readable too.
        assert!(wait_for_pid(child.id() as i32, Duration::from_secs(30)));
        assert!(child.try_wait().unwrap().is_some(), "the child has exited");
    }

    #[test]
    fn gives_up_at_the_limit_while_the_process_runs() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        assert!(!wait_for_pid(child.id() as i32, Duration::from_millis(50)));
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child is still running"
        );
        child.kill().unwrap();
        child.wait().unwrap();
    }

    #[test]
    fn a_process_that_is_gone_counts_as_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert!(wait_for_pid(pid, Duration::from_secs(1)));
    }

    #[test]
    fn no_procs_file_means_no_wait() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!wait_for_cgroup_procs(dir.path(), Duration::from_secs(1)));
    }

    #[test]
    fn listed_processes_are_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = std::process::Command::new("sleep")
            .arg("0.1")
            .spawn()
            .unwrap();
        let mut b = std::process::Command::new("sleep")
            .arg("0.3")
            .spawn()
            .unwrap();
        std::fs::write(
            dir.path().join("cgroup.procs"),
            format!("{}\n{}\n", a.id(), b.id()),
        )
        .unwrap();
        assert!(wait_for_cgroup_procs(dir.path(), Duration::from_secs(30)));
        assert!(a.try_wait().unwrap().is_some() && b.try_wait().unwrap().is_some());
    }
}
