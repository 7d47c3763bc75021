//! Readiness, never a fixed sleep: a test waits for a condition it can observe (a line a
//! container wrote, a state, a file) with a deadline, polling briefly. A sleep "long
//! enough" races under load and wastes time when idle.

use std::path::Path;
use std::time::{Duration, Instant};

/// The deadline tests use for things that happen at once when the machine is idle.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// Polls `ready` every 10 ms until it returns Some, and returns that; panics naming `what`
/// after `timeout`.
pub fn until<T>(what: &str, timeout: Duration, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Polls `cond` until it holds (see [`until`]).
pub fn until_true(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    until(what, timeout, || cond().then_some(()))
}

/// Waits until the file at `path` holds a line equal to `line` (a container's readiness
/// mark, e.g. `echo ready > /ready` in its rootfs); returns the whole text.
pub fn for_line(path: &Path, line: &str) -> String {
    until(
        &format!("the line {line:?} in {}", path.display()),
        DEADLINE,
        || {
            let text = std::fs::read_to_string(path).ok()?;
            text.lines().any(|l| l.trim_end() == line).then_some(text)
        },
    )
}

/// Waits until the file at `path` has at least `n` lines; returns them.
pub fn for_lines(path: &Path, n: usize) -> Vec<String> {
    until(
        &format!("{n} lines in {}", path.display()),
        DEADLINE,
        || {
            let text = std::fs::read_to_string(path).ok()?;
            let lines: Vec<String> = text.lines().map(str::to_string).collect();
            (lines.len() >= n).then_some(lines)
        },
    )
}

/// Whether process `pid` is blocked waiting for a file lock (flock, POSIX or OFD): the
/// kernel lists each waiter in /proc/locks as a `->` line naming its pid.
pub fn blocked_on_a_lock(pid: u32) -> bool {
    let locks = std::fs::read_to_string("/proc/locks").unwrap_or_default();
    locks.lines().any(|l| {
        let mut f = l.split_whitespace().skip(1);
        f.next() == Some("->") && f.nth(3).is_some_and(|p| p == pid.to_string())
    })
}

/// Waits until `child` is blocked on a file lock; panics if it exits first (it did not
/// wait) or after the deadline.
pub fn until_blocked_on_a_lock(child: &mut std::process::Child, what: &str) {
    until_true(&format!("{what} to wait for a lock"), DEADLINE, || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} did not wait for the lock: it exited ({status})");
        }
        blocked_on_a_lock(child.id())
    });
}
