//! `run`: create and start a container, then (unless `-d`) wait for it, forwarding signals,
//! and exit with its status (128+N when killed by signal N).
//!
//! The wait never hangs: the signal handlers, SIGCHLD's among them, are installed before
//! the container init is forked, so an init that exits at once still wakes us, and every
//! wake-up reaps with `waitpid(WNOHANG)` rather than trusting one signal per child.

use anyhow::{Context, Result};
use clap::Args;
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use signal_hook::consts::signal::*;
use signal_hook::iterator::Signals;

use crate::cli::Cli;
use crate::commands::create::{create_container, CreateOpts};
use crate::container;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// Detach from the container: print nothing and return once it is started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Keep the container's state after it exits (default: delete it).
    #[arg(long)]
    pub keep: bool,
    /// Do not make the runtime a subreaper for the container's orphans.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// The container id.
    pub id: String,
}

/// Signals passed on to the container init while we wait for it.
const FORWARDED: &[i32] = &[
    SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM, SIGWINCH, SIGCONT, SIGTSTP,
    SIGTTIN, SIGTTOU, SIGPIPE,
];

/// Returns the exit status the runtime itself should exit with.
pub fn run(cli: &Cli, args: RunArgs) -> Result<i32> {
    if args.detach {
        let mut c = create_container(cli, &args.opts, &args.id, true)?;
        if let Err(err) = container::start::start(&mut c) {
            let _ = c.delete(true);
            return Err(err).with_context(|| format!("cannot start container {}", args.id));
        }
        return Ok(0);
    }

    if !args.no_subreaper {
        // SAFETY: prctl with integer arguments; it only changes this process's attributes.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
    }
    let mut wanted = FORWARDED.to_vec();
    wanted.push(SIGCHLD);
    let mut signals = Signals::new(&wanted).context("cannot install signal handlers")?;

    let mut c = create_container(cli, &args.opts, &args.id, false)?;
    let root = container::state_root(cli);
    let cleanup = |keep: bool| {
        if !keep {
            container::rootless_cgroups::clear_mirror();
            if let Ok(mut c) = container::load(&root, &args.id) {
                let _ = c.delete(true);
            }
            let _ = std::fs::remove_file(container::lock_path(&root, &args.id));
        }
    };
    if let Err(err) = container::start::start(&mut c) {
        cleanup(false);
        return Err(err).with_context(|| format!("cannot start container {}", args.id));
    }
    let init = c.pid().context("the container has no init pid")?;

    let status = 'wait: loop {
        if let Some(code) = reap(init) {
            break 'wait code;
        }
        for sig in signals.wait() {
            if sig == SIGCHLD {
                continue;
            }
            // SAFETY: kill(2) with a pid and signal number; no memory is involved.
            unsafe { libc::kill(init.as_raw(), sig) };
        }
    };
    cleanup(args.keep);
    Ok(status)
}

/// Reaps every exited child; returns the init's exit status once it has exited.
fn reap(init: Pid) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(pid, code)) if pid == init => result = Some(code),
            Ok(WaitStatus::Signaled(pid, sig, _)) if pid == init => result = Some(128 + sig as i32),
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}
