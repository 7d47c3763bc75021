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
    let args = cli::normalize_go_style_flags(std::env::args_os().collect());
    let mut cli = Cli::parse_from(args);
    let log = LogTarget {
        file: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    };
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
    if matches!(
        command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        if let Err(err) = container::exe_protect::ensure_protected() {
            log.error(&format!("{err:#}"));
            std::process::exit(1);
        }
    }
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
