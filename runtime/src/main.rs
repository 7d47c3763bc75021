//! `runtime`: an OCI runtime with runc's command line, on youki's libcontainer.

mod cli;
mod commands;
mod container;
mod logging;
mod output;
mod signals;

use cli::{Cli, Command};
use logging::LogOptions;

fn main() {
    container::test_switches::answer_probe();
    let raw: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `runtime generate-docs DIR`: man pages and completions for hack/install.sh, from
    // the clap definition (hidden: not a runc command, never in the help).
    match cli_docs::handle(&raw, cli::command) {
        Ok(true) => return,
        Ok(false) => {}
        Err(err) => {
            eprintln!("runtime: {err:#}");
            std::process::exit(1);
        }
    }
    // The CVE-2019-5736 re-exec comes first, before clap builds its command tree: the
    // process that re-executes would only throw that work away.
    let enters = may_enter_container(&raw);
    let protect_failed = enters
        .then(container::exe_protect::ensure_protected)
        .and_then(Result::err);
    if enters && protect_failed.is_none() {
        // The cgroup attach's grace period starts now, off the critical path.
        container::attach_warmup::start(enters_by_exec(&raw));
    }
    let args = cli::normalize_go_style_flags(raw);
    let mut cli = match cli::parse(args) {
        Ok(cli) => cli,
        Err(exit) => exit.report_and_exit(),
    };
    let log_failed = logging::init(LogOptions {
        file: cli.log.clone(),
        json: cli.log_format == "json",
        debug: cli.debug,
    })
    .err();
    if let Some(err) = protect_failed
        .map(|e| libcontainer::error::chain(e.as_ref()))
        .or(log_failed)
    {
        logging::fatal(&err);
        std::process::exit(1);
    }
    if cli.version {
        output::outln!("runtime version {}", env!("CARGO_PKG_VERSION"));
        output::outln!("spec: {}", libcontainer::oci_spec::runtime::VERSION);
        output::outln!("libcontainer: 0.7.0");
        return;
    }
    let Some(command) = cli.command.take() else {
        // runc prints its help and succeeds when given no command.
        cli::print_help();
        return;
    };
    // runc's exec reports its own failures as 255, apart from the process's statuses.
    let failure_code = if matches!(command, Command::Exec(_)) {
        255
    } else {
        1
    };
    match dispatch(&cli, command) {
        Ok(code) => std::process::exit(code),
        Err(err) => {
            logging::fatal(&libcontainer::error::chain(err.as_ref()));
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

/// Whether the command that enters a container is `exec` (the first of the entering
/// command names on the line; global options come before it).
/// Whether the command is `exec` (the first of create, run and exec among the arguments).
fn enters_by_exec(args: &[std::ffi::OsString]) -> bool {
    args.iter()
        .skip(1)
        .find(|a| *a == "create" || *a == "run" || *a == "exec")
        .is_some_and(|a| a == "exec")
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
