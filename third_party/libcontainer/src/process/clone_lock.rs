//! PATCH (runtime, see third_party/README.md): a process the runtime clones for a
//! container is "in flight" from the clone until it is inside the container's cgroup: if
//! the runtime is killed then, the child dies with it (PR_SET_PDEATHSIG, see
//! `container_main_process::die_with_parent`), but a system call the child was in (a
//! cgroup `mkdir`, waiting on the kernel's cgroup mutex under load) still completes after
//! the runtime has been reaped, and could recreate the container's cgroup after a
//! `delete --force` had looked for it (the random-kill test saw this once in 300 kills).
//!
//! So every such child holds a shared `flock` on the container's state directory, taken
//! by the runtime before the clone and inherited through it (a flock belongs to the open
//! file description, which the clone shares), and closes its copy once it is in its
//! cgroup. A delete first takes the lock exclusively (`wait_for_clones_in_flight`): it
//! is granted once no child is in flight, dead or in its cgroup, where the delete finds
//! it.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::{Duration, Instant};

/// The descriptor of the lock taken for the clone in progress (-1: none). A cloned child
/// sees the value it had at the clone.
static IN_FLIGHT_FD: AtomicI32 = AtomicI32::new(-1);

/// The runtime's side: holds the lock for the clones it makes while it lives.
pub struct CloneLock {
    fd: OwnedFd,
}

impl CloneLock {
    /// Takes the shared lock on `state_dir` (None where it cannot be opened or locked:
    /// a delete then does not wait, as before).
    pub fn take(state_dir: &Path) -> Option<Self> {
        let dir = std::fs::File::open(state_dir).ok()?;
        let fd = OwnedFd::from(dir);
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) } != 0 {
            return None;
        }
        IN_FLIGHT_FD.store(fd.as_raw_fd(), Ordering::SeqCst);
        Some(Self { fd })
    }
}

impl Drop for CloneLock {
    fn drop(&mut self) {
        IN_FLIGHT_FD.store(-1, Ordering::SeqCst);
        let _ = &self.fd;
    }
}

/// The child's side, once it is inside the container's cgroup: closes its copy of the
/// lock's descriptor (so that it is not inherited further and a delete need not wait).
pub fn release_in_child() {
    let fd = IN_FLIGHT_FD.swap(-1, Ordering::SeqCst);
    if fd >= 0 {
        // SAFETY: the child's copy of the runtime's descriptor, used by nothing else here.
        unsafe { libc::close(fd) };
    }
}

/// A delete's side: waits (up to `timeout`) until no process cloned for the container
/// with the state directory `state_dir` is in flight. Returns whether it had to give up.
pub fn wait_for_clones_in_flight(state_dir: &Path, timeout: Duration) -> bool {
    let Ok(dir) = std::fs::File::open(state_dir) else {
        return false;
    };
    let deadline = Instant::now() + timeout;
    loop {
        // SAFETY: flock on a descriptor we own; released when `dir` is closed.
        if unsafe { libc::flock(dir.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
            return false;
        }
        if Instant::now() > deadline {
            return true;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}
