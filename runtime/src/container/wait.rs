//! Waiting for a container process the runtime started in the foreground (`run`, `exec`),
//! forwarding the signals the runtime receives and reaping every child.
//!
//! It never hangs: the handlers, SIGCHLD's among them, are installed before the process is
//! forked, so a process that exits at once still wakes us, and every wake-up reaps with
//! `waitpid(WNOHANG)` rather than trusting one signal per child.

use anyhow::{Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

/// Signals passed on to the container process while we wait for it: runc's set (every
/// signal but SIGCHLD and those that cannot be caught), SIGPIPE among them.
const FORWARDED: &[i32] = &[
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT, SIGTSTP,
    SIGTTIN, SIGTTOU, SIGPIPE,
];

/// The handlers of the forwarded signals and the self-pipe they report to, kept until the
/// runtime exits.
///
/// signal-hook's handler reports a signal by a `send` on a socket pair whose read end is
/// the `Signals`. Dropping a `Signals` closes that read end first and unregisters the
/// handlers only after it; a signal that lands in between (the SIGCHLD of an exec that
/// failed) makes the send fail with EPIPE, which raises SIGPIPE, whose handler sends
/// again: with SIGPIPE forwarded the runtime spun in that loop forever at 100% CPU. The
/// read end is therefore never closed while the handlers live: this is never dropped
/// (the runtime exits soon after waiting; a signal that comes later fills the socket's
/// buffer, where a non-blocking send fails with EAGAIN, quietly).
pub struct ForwardedSignals(std::mem::ManuallyDrop<Signals>);

impl Drop for ForwardedSignals {
    fn drop(&mut self) {
        if super::test_switches::unsafe_enabled("signal-pipe-closed") {
            shut_sockets_then_signal();
        }
    }
}

/// Negative control (debug builds): the sequence that made the runtime spin, done on
/// purpose instead of by a signal that lands in a window of a few instructions: the
/// self-pipe shut (every socket of the runtime, which is about to exit) while the
/// handlers are registered, then a signal.
fn shut_sockets_then_signal() {
    use std::os::unix::fs::FileTypeExt;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    for entry in fds.flatten() {
        let is_socket = std::fs::metadata(entry.path()).is_ok_and(|m| m.file_type().is_socket());
        if let (true, Ok(fd)) = (
            is_socket,
            entry.file_name().to_string_lossy().parse::<i32>(),
        ) {
            // SAFETY: shutdown(2) on a descriptor of this process; no memory involved.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
        }
    }
    // SAFETY: raise(3) sends a signal to the calling thread.
    unsafe { libc::raise(libc::SIGCHLD) };
}

/// Installs the handlers; call before forking the process to wait for.
pub fn install_signal_handlers(subreaper: bool) -> Result<ForwardedSignals> {
    if subreaper {
        // SAFETY: prctl with integer arguments; it only changes this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let mut wanted = FORWARDED.to_vec();
    wanted.push(SIGCHLD);
    let signals = Signals::new(&wanted).context("cannot install signal handlers")?;
    Ok(ForwardedSignals(std::mem::ManuallyDrop::new(signals)))
}

/// Waits for `pid`, forwarding signals to it; returns its exit status, 128+N when it was
/// killed by signal N. With `terminal` (a pty master the runtime relays), a window change
/// resizes that terminal instead, and the kernel tells the container's foreground group.
pub fn wait_forwarding(signals: &mut ForwardedSignals, pid: Pid, terminal: Option<i32>) -> i32 {
    loop {
        if let Some(code) = reap(pid) {
            return code;
        }
        for sig in signals.0.wait() {
            if sig == SIGCHLD {
                continue;
            }
            if let (SIGWINCH, Some(master)) = (sig, terminal) {
                super::tty_proxy::copy_window_size(master);
                continue;
            }
            // SAFETY: kill(2) with a pid and signal number; no memory is involved.
            unsafe { libc::kill(pid.as_raw(), sig) };
        }
    }
}

/// Reaps every exited child; returns the status of `pid` once it has exited.
fn reap(pid: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, code)) if p == pid => result = Some(code),
            Ok(WaitStatus::Signaled(p, sig, _)) if p == pid => result = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}
