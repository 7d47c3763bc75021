//! The command line, shaped like runc's so that containerd, podman and dockerd can call us
//! unchanged.

mod go_flags;

use std::path::PathBuf;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};

pub use go_flags::normalize_go_style_flags;

use crate::commands;
use crate::output;

/// The top-level help, laid out as runc's (urfave/cli): scripts look for `NAME:` on the
/// first line and `<program> - <about>` on the second.
const ROOT_HELP: &str = "\
NAME:
   {name} - {about}

USAGE:
   {name} [global options] command [command options] [arguments...]

COMMANDS:
{subcommands}

GLOBAL OPTIONS:
{options}
";

/// A command's help, laid out as runc's: `NAME:`, then `<program> <command> - <about>`.
fn command_help(name: &str) -> String {
    format!("NAME:\n   runtime {name} - {{about}}\n\nUSAGE:\n   {{usage}}\n\n{{all-args}}\n")
}

/// The command tree with runc's help layout on every command.
pub fn command() -> clap::Command {
    Cli::command()
        .help_template(ROOT_HELP)
        .mut_subcommands(|sub| {
            let template = command_help(sub.get_name());
            sub.help_template(template)
        })
}

/// Prints the top-level help to stdout (what runc does when given no command).
pub fn print_help() {
    let text = command().render_help().to_string();
    output::outln!("{}", text.trim_end());
}

/// Why parsing did not produce a command line: help or version was shown, or the usage
/// was wrong.
pub struct ParseExit(clap::Error);

impl ParseExit {
    /// Reports as runc does and exits: help on stdout with status 0; an unknown command
    /// as `No help topic for 'NAME'` with status 3; any other usage error as one error
    /// record with status 1.
    pub fn report_and_exit(self) -> ! {
        let err = self.0;
        match err.kind() {
            ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                output::outln!("{}", err.render().to_string().trim_end());
                std::process::exit(0);
            }
            ErrorKind::InvalidSubcommand => {
                let name = match err.get(ContextKind::InvalidSubcommand) {
                    Some(ContextValue::String(s)) => s.clone(),
                    _ => String::new(),
                };
                crate::logging::fatal(&format!("No help topic for '{name}'"));
                std::process::exit(3);
            }
            _ => {
                // clap's message without its usage and hint lines, on one line.
                let text = err.render().to_string();
                let msg = text
                    .lines()
                    .take_while(|l| !l.starts_with("Usage:"))
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                crate::logging::fatal(msg.strip_prefix("error: ").unwrap_or(&msg));
                std::process::exit(1);
            }
        }
    }
}

/// Parses the (Go-style normalized) arguments.
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, ParseExit> {
    let matches = command().try_get_matches_from(args).map_err(ParseExit)?;
    Cli::from_arg_matches(&matches).map_err(ParseExit)
}

/// Global options, accepted before or after the subcommand as runc does.
#[derive(Parser, Debug)]
#[command(
    name = "runtime",
    about = "An OCI runtime: runs containers from OCI bundles, a drop-in replacement for runc",
    disable_version_flag = true
)]
pub struct Cli {
    /// Root directory for the containers' state.
    #[arg(long, global = true, value_name = "DIR")]
    pub root: Option<PathBuf>,

    /// Write log messages to FILE instead of stderr.
    #[arg(long, global = true, value_name = "FILE")]
    pub log: Option<PathBuf>,

    /// Log format: text or json (one logrus-style object per line).
    #[arg(long = "log-format", global = true, default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,

    /// Enable debug logging.
    #[arg(long, global = true)]
    pub debug: bool,

    /// Manage cgroups through systemd instead of cgroupfs.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,

    /// Rootless mode: true, false or auto (decided from the caller's uid). Given before the
    /// command, as runc takes it; `spec --rootless` is a different flag.
    #[arg(long, default_value = "auto", value_parser = ["true", "false", "auto"])]
    pub rootless: String,

    /// The criu binary `restore` runs (default: criu on PATH); runc's flag.
    #[arg(long, global = true, hide = true)]
    pub criu: Option<String>,

    /// Print the version and the runtime-spec version.
    #[arg(short = 'v', long = "version")]
    pub version: bool,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Create a container (it waits for `start` before running the user process).
    Create(commands::create::CreateArgs),
    /// Run the user process of a created container.
    Start(commands::start::StartArgs),
    /// Create and start a container, and wait for it unless detached.
    Run(commands::run::RunArgs),
    /// Print the state of a container as JSON.
    State(commands::state::StateArgs),
    /// Send a signal to the container's init process (or all its processes).
    Kill(commands::kill::KillArgs),
    /// Delete a container and everything it holds.
    Delete(commands::delete::DeleteArgs),
    /// List the containers under the state root.
    List(commands::list::ListArgs),
    /// Freeze every process of a running container.
    Pause(commands::pause::PauseArgs),
    /// Thaw a paused container.
    Resume(commands::resume::ResumeArgs),
    /// List the processes of a container.
    Ps(commands::ps::PsArgs),
    /// Change the resource limits of a running container.
    Update(commands::update::UpdateArgs),
    /// Run a new process inside a running container.
    Exec(commands::exec::ExecArgs),
    /// Checkpoint a running container with CRIU.
    Checkpoint(commands::checkpoint::CheckpointArgs),
    /// Restore a container from a checkpoint with CRIU.
    Restore(commands::restore::RestoreArgs),
    /// Container statistics and OOM notifications as JSON events.
    Events(commands::events::EventsArgs),
    /// Write a default config.json for a new bundle.
    Spec(commands::spec::SpecArgs),
    /// Print the features this build supports, as runtime-spec features JSON.
    Features(commands::features::FeaturesArgs),
}
