//! `runtime`: an OCI runtime with runc's command line, on youki's libcontainer.

mod cli;
mod commands;
mod container;
mod logging;
mod signals;

use clap::{CommandFactory, Parser};

use cli::{Cli, Command};
use logging::LogTarget;

fn main() {
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // The CVE-2019-5736 re-exec comes first, before clap builds its command tree: the
    // process that re-executes would only throw that work away.
    let enters = may_enter_container(&raw);
    let protect_failed = enters
        .then(container::exe_protect::ensure_protected)
        .and_then(Result::err);
    if enters && protect_failed.is_none() {
        // The cgroup attach's grace period starts now, off the critical path.
        container::attach_warmup::start();
    }
    let args = cli::normalize_go_style_flags(raw);
    let mut cli = Cli::parse_from(args);
    let log = LogTarget {
        file: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    };
    if let Some(err) = protect_failed {
        log.error(&format!("{err:#}"));
        std::process::exit(1);
    }
    if cli.version {
        println!("runtime version {}", env!("CARGO_PKG_VERSION"));
        println!("spec: {}", libcontainer::oci_spec::runtime::VERSION);
        println!("libcontainer: 0.7.0");
        return;
    }
    let Some(command) = cli.command.take() else {
        let _ = Cli::command().print_help();
        std::process::exit(1);
    };
    log.install_debug_subscriber();
    // runc's exec reports its own failures as 255, apart from the process's statuses.
    let failure_code = if matches!(command, Command::Exec(_)) {
        255
    } else {
        1
    };
    match dispatch(&cli, command) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            log.error(&format!("{err:#}"));
            std::process::exit(failure_code);
        }
    }
}

/// Whether the command line may be `create`, `run` or `exec`, the commands that put a
/// process into a container. Decided before parsing, so it must never say no to one of
/// them: clap has no aliases or abbreviations here, so each needs its name as a word of
/// its own. A yes for another command (an id or a value spelled "run") only costs a
/// needless re-exec.
fn may_enter_container(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .any(|a| a == "create" || a == "run" || a == "exec")
}

/// Runs the chosen command with the global options; returns the process exit status.
fn dispatch(cli: &Cli, command: Command) -> anyhow::Result<i32> {
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    match command {
        Command::Create(a) => done(commands::create::run(cli, a)),
        Command::Start(a) => done(commands::start::run(cli, a)),
        Command::Run(a) => commands::run::run(cli, a),
        Command::State(a) => done(commands::state::run(cli, a)),
        Command::Kill(a) => done(commands::kill::run(cli, a)),
        Command::Delete(a) => done(commands::delete::run(cli, a)),
        Command::List(a) => done(commands::list::run(cli, a)),
        Command::Pause(a) => done(commands::pause::run(cli, a)),
        Command::Resume(a) => done(commands::resume::run(cli, a)),
        Command::Ps(a) => done(commands::ps::run(cli, a)),
        Command::Update(a) => done(commands::update::run(cli, a)),
        Command::Checkpoint(a) => done(commands::checkpoint::run(cli, a)),
        Command::Restore(a) => commands::restore::run(cli, a),
        Command::Exec(a) => commands::exec::run(cli, a),
        Command::Events(a) => done(commands::events::run(cli, a)),
        Command::Spec(a) => done(commands::spec::run(cli, a)),
        Command::Features(a) => done(commands::features::run(cli, a)),
    }
}
