//! `run`: create and start a container, then (unless `-d`) wait for it, forwarding signals,
//! and exit with its status (128+N when killed by signal N).
//!
//! The wait is `container::wait`'s: it never hangs and forwards signals.

use anyhow::{Context, Result};
use clap::Args;

use crate::cli::Cli;
use crate::commands::create::{
    create_loaded_container, load_bundle_spec, spec_wants_terminal, CreateOpts,
};
use crate::container;
use crate::container::footprint::Footprint;
use crate::container::test_switches::phase;
use crate::container::tty_proxy::{ConsoleReceiver, Relay};

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

/// Returns the exit status the runtime itself should exit with.
pub fn run(cli: &Cli, args: RunArgs) -> Result<i32> {
    // config.json is read and checked once here and handed on (the same checks, in the
    // same order, as `create`).
    container::validate_id(&args.id)?;
    let loaded = load_bundle_spec(&args.opts.bundle)?;
    if !args.detach && args.opts.console_socket.is_none() && spec_wants_terminal(&loaded.1) {
        // Checked before anything is made: with no terminal to relay to, the container
        // would be created and `run` would wait on a terminal nobody can use (runc fails
        // here too: "open /dev/tty: no such device or address").
        ensure_caller_terminal()?;
    }
    if args.detach {
        let mut c = create_loaded_container(cli, &args.opts, &args.id, true, loaded)?;
        if let Err(err) = container::start::start(&mut c) {
            let _ = Footprint::new(&container::state_root(cli), &args.id).delete_forcibly();
            return Err(err).with_context(|| format!("cannot start container {}", args.id));
        }
        return Ok(0);
    }

    let mut signals = container::wait::install_signal_handlers(!args.no_subreaper)?;
    let root = container::state_root(cli);

    // A terminal with nobody to hand it to: we take the master and relay it ourselves.
    let mut opts = args.opts.clone();
    let console = if opts.console_socket.is_none() && spec_wants_terminal(&loaded.1) {
        container::make_state_root(&root)?;
        let receiver = ConsoleReceiver::listen(&Footprint::new(&root, &args.id).console_socket())?;
        opts.console_socket = Some(receiver.path().to_path_buf());
        Some(receiver)
    } else {
        None
    };
    // libcontainer's "detach" only decides whether a console socket is allowed.
    let mut c = create_loaded_container(cli, &opts, &args.id, console.is_some(), loaded)?;
    let cleanup = |keep: bool| {
        if !keep {
            if let Err(left) = Footprint::new(&root, &args.id).delete_forcibly() {
                tracing::warn!(%left, "run's delete left something behind");
            }
        }
    };
    if let Err(err) = container::start::start(&mut c) {
        cleanup(false);
        return Err(err).with_context(|| format!("cannot start container {}", args.id));
    }
    let init = c.pid().context("the container has no init pid")?;
    phase("run:started");
    let relay = match console {
        Some(receiver) => Some(Relay::start(receiver)?),
        None => None,
    };
    let status =
        container::wait::wait_forwarding(&mut signals, init, relay.as_ref().map(Relay::master_fd));
    if let Some(r) = relay {
        r.finish();
    }
    cleanup(args.keep);
    Ok(status)
}

/// A terminal of the caller's to relay the container's to: one of stdin, stdout or stderr,
/// or the controlling terminal (/dev/tty), as runc looks for one.
fn ensure_caller_terminal() -> Result<()> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal()
        || std::io::stdout().is_terminal()
        || std::io::stderr().is_terminal()
    {
        return Ok(());
    }
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
    {
        Ok(_) => Ok(()),
        Err(err) => anyhow::bail!(
            "process.terminal is true but there is no terminal to give the container: stdin, stdout and stderr are not terminals and /dev/tty cannot be opened ({err}); give --console-socket, run it in a terminal, or set process.terminal to false"
        ),
    }
}
