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

/// Signals passed on to the container process while we wait for it.
///
/// Not SIGPIPE: signal-hook's handler reports a signal by a send on its self-pipe, and once
/// the waiting is over (an exec that failed drops the `Signals`) that send fails with
/// EPIPE, which raises SIGPIPE again: the runtime spun in that loop forever (100% CPU,
/// seen as a hung `exec` of a program that cannot run). A SIGPIPE the runtime gets is about
/// its own output, not the container's.
const FORWARDED: &[i32] = &[
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT, SIGTSTP,
    SIGTTIN, SIGTTOU,
];

/// Installs the handlers; call before forking the process to wait for.
pub fn install_signal_handlers(subreaper: bool) -> Result<Signals> {
    if subreaper {
        // SAFETY: prctl with integer arguments; it only changes this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let mut wanted = FORWARDED.to_vec();
    wanted.push(SIGCHLD);
    Signals::new(&wanted).context("cannot install signal handlers")
}

/// Waits for `pid`, forwarding signals to it; returns its exit status, 128+N when it was
/// killed by signal N. With `terminal` (a pty master the runtime relays), a window change
/// resizes that terminal instead, and the kernel tells the container's foreground group.
pub fn wait_forwarding(signals: &mut Signals, pid: Pid, terminal: Option<i32>) -> i32 {
    loop {
        if let Some(code) = reap(pid) {
            return code;
        }
        for sig in signals.wait() {
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
