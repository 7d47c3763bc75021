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

/// The command tree with runc's help layout on every command. A flag given twice takes
/// its last value, as runc's (Go's flag package) do: `runtime --root A ... --root B`
/// is how a caller overrides a root a wrapper already passed; repeatable flags
/// (`exec --env`) still collect every value.
pub fn command() -> clap::Command {
    Cli::command()
        .help_template(ROOT_HELP)
        .args_override_self(true)
        .mut_subcommands(|sub| {
            let template = command_help(sub.get_name());
            sub.help_template(template).args_override_self(true)
        })
}

/// Prints the top-level help to stdout (what runc does when given no command).
pub fn print_help() {
    let text = command().render_help().to_string();
    output::outln!("{}", text.trim_end());
}

/// Why parsing did not produce a command line: help or version was shown, or the usage
/// was wrong.
pub struct ParseExit {
    err: clap::Error,
    /// The subcommand named on the command line, whose help a usage error prints.
    command: Option<String>,
}

impl ParseExit {
    /// Reports as runc does and exits: help on stdout with status 0; an unknown command
    /// as `No help topic for 'NAME'` with status 3; a missing or extra argument or an
    /// unknown flag as runc's urfave/cli does, `Incorrect Usage` and the command's help on
    /// stdout, then one error record naming what is wrong; a bad value as one record;
    /// status 1 (runc's for every failure of its own).
    pub fn report_and_exit(self) -> ! {
        let ParseExit { err, command } = self;
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
            kind @ (ErrorKind::MissingRequiredArgument
            | ErrorKind::UnknownArgument
            | ErrorKind::TooManyValues
            | ErrorKind::WrongNumberOfValues) => {
                let msg = one_line_message(&err);
                // urfave/cli names an unknown flag on the first line and says only
                // "Incorrect Usage." for a wrong argument count (runc's checkArgs).
                let headline = match kind {
                    ErrorKind::UnknownArgument => format!("Incorrect Usage: {msg}"),
                    _ => "Incorrect Usage.".to_string(),
                };
                output::outln!("{headline}\n");
                output::outln!("{}", usage_help(command.as_deref()).trim_end());
                crate::logging::fatal(&msg);
                std::process::exit(1);
            }
            // A value runc checks itself after parsing (`--log-format yaml`): one record.
            _ => {
                crate::logging::fatal(&one_line_message(&err));
                std::process::exit(1);
            }
        }
    }
}

/// Parses the (Go-style normalized) arguments.
pub fn parse(args: Vec<std::ffi::OsString>) -> Result<Cli, ParseExit> {
    let named = named_subcommand(&args);
    let exit = |err| ParseExit {
        err,
        command: named.clone(),
    };
    let matches = command().try_get_matches_from(args.clone()).map_err(exit)?;
    Cli::from_arg_matches(&matches).map_err(exit)
}

/// clap's message without its usage and tip lines, on one line, without "error: ".
fn one_line_message(err: &clap::Error) -> String {
    let text = err.render().to_string();
    let msg = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| {
            !l.is_empty() && !l.starts_with("tip:") && !l.starts_with("For more information")
        })
        .collect::<Vec<_>>()
        .join(" ");
    msg.strip_prefix("error: ").unwrap_or(&msg).to_string()
}

/// The first argument that names a subcommand (global options come before it).
fn named_subcommand(args: &[std::ffi::OsString]) -> Option<String> {
    let cmd = command();
    args.iter()
        .skip(1)
        .filter_map(|a| a.to_str())
        .find(|a| cmd.find_subcommand(a).is_some())
        .map(str::to_string)
}

/// The help of the named subcommand, or the top-level help.
fn usage_help(name: Option<&str>) -> String {
    let mut cmd = command();
    cmd.build();
    match name.and_then(|n| cmd.find_subcommand_mut(n)) {
        Some(sub) => sub.render_help().to_string(),
        None => cmd.render_help().to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(args: &[&str]) -> Cli {
        match parse(args.iter().map(Into::into).collect()) {
            Ok(cli) => cli,
            Err(ParseExit { err, .. }) => panic!("{args:?}: {err}"),
        }
    }

    #[test]
    fn a_flag_given_twice_takes_the_last_value_as_runc() {
        let cli = parsed(&["runtime", "--root", "/a", "--root", "/b", "list"]);
        assert_eq!(cli.root, Some(PathBuf::from("/b")));
        let cli = parsed(&["runtime", "--debug", "--debug", "list"]);
        assert!(cli.debug);
    }

    #[test]
    fn repeatable_flags_still_collect_every_value() {
        // The negative control of the override: exec's --env keeps both.
        let cli = parsed(&["runtime", "exec", "-e", "A=1", "-e", "B=2", "c1", "true"]);
        match cli.command {
            Some(Command::Exec(args)) => assert_eq!(args.env, ["A=1", "B=2"]),
            other => panic!("{other:?}"),
        }
    }
}
