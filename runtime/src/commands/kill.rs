//! `kill`: send a signal to the container init, or with `--all` to every process in its
//! cgroup. The recorded status is left to the processes themselves: a container whose init
//! survives the signal stays `running` (libcontainer would mark it stopped at once).

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;
use nix::errno::Errno;

use crate::cli::Cli;
use crate::container::{self, client_errors, status};
use crate::signals::parse_signal;
use libcontainer::error::chain;

#[derive(Args, Debug)]
pub struct KillArgs {
    /// Send the signal to all processes in the container.
    #[arg(short = 'a', long)]
    pub all: bool,
    /// The container id.
    pub id: String,
    /// The signal: a name (KILL, SIGKILL) or a number (9). Default SIGTERM.
    #[arg(default_value = "SIGTERM")]
    pub signal: String,
}

pub fn run(cli: &Cli, args: KillArgs) -> Result<()> {
    let signal = parse_signal(&args.signal)?;
    let root = container::state_root(cli);
    let mut c = container::load(&root, &args.id)?;
    let before = c.status();
    match before {
        ContainerStatus::Created | ContainerStatus::Running | ContainerStatus::Paused => {}
        ContainerStatus::Stopped if args.all => {}
        ContainerStatus::Stopped => bail!(client_errors::NOT_RUNNING),
        ContainerStatus::Creating => bail!("container {} is still being created", args.id),
    }
    if signal == 0 {
        // Signal 0 sends nothing: the status check above is the whole answer (runc
        // succeeds while the init lives and says "container not running" once it is gone).
        return Ok(());
    }
    if args.all {
        let sig = nix::sys::signal::Signal::try_from(signal)
            .with_context(|| format!("signal {signal} cannot be sent with --all"))?;
        c.kill(sig, true)
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("cannot signal container {}", args.id))?;
    } else {
        let pid = c.pid().context("container has no init pid")?;
        // SAFETY: kill(2) with a pid and a signal number; no memory is involved.
        if unsafe { libc::kill(pid.as_raw(), signal) } != 0 {
            let err = Errno::last();
            if err != Errno::ESRCH {
                bail!("cannot signal container {}: {err}", args.id);
            }
        }
    }
    // Put back the status the processes really have (libcontainer's kill records stopped).
    c.set_status(before);
    status::refresh(&mut c)?;
    if let Err(e) = c.save() {
        // The signal may have ended the container and `run` (or a `delete`) removed it
        // before this save: the kill itself succeeded, as runc's would.
        if !c.root.join("state.json").exists() {
            return Ok(());
        }
        return Err(e).with_context(|| format!("cannot save the state of container {}", args.id));
    }
    Ok(())
}
