//! `exec`: run a new process inside a running container. The process description is built
//! here, runc's way: the container's own process (env, user, capabilities, rlimits, cwd)
//! changed by the flags, or taken whole from `--process FILE`; it is handed to libcontainer
//! as a process file. Without `-d` the runtime waits, forwarding signals, and exits with
//! the process's status (128+N on signal N); a runtime error exits 255.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::capabilities;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::Process;
use libcontainer::syscall::syscall::SyscallType;
use nix::unistd::Pid;

use crate::cli::Cli;
use crate::container::path_lookup::PathLookupExecutor;
use crate::container::test_switches::phase;
use crate::container::tty_proxy::{self, ConsoleReceiver, Relay};
use crate::container::{self, client_errors, config_check};
use libcontainer::error::chain;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// A process.json (runtime-spec process object) describing the process to run.
    #[arg(short = 'p', long, value_name = "FILE")]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-TTY.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// AF_UNIX socket to which the pseudoterminal master is sent.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Working directory in the container.
    #[arg(long)]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable (repeatable).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// uid[:gid] to run as.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    /// Additional group id (repeatable).
    #[arg(short = 'g', long = "additional-gids")]
    pub additional_gids: Vec<u32>,
    /// Add a capability (repeatable).
    #[arg(short = 'c', long = "cap")]
    pub cap: Vec<String>,
    /// Set no_new_privileges for the process.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// AppArmor profile for the process.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Detach: return once the process has started.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the process's pid to.
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Pass N additional file descriptors (from fd 3).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: i32,
    /// Allow exec in a paused container.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// Run in a sub-cgroup of the container (repeatable, controller:path or path).
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
    /// The container id.
    pub id: String,
    /// The command and its arguments.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// Parses `uid[:gid]`.
fn parse_user(text: &str) -> Result<(u32, Option<u32>)> {
    let (u, g) = text
        .split_once(':')
        .map_or((text, None), |(u, g)| (u, Some(g)));
    let uid = u
        .parse()
        .with_context(|| format!("--user {text:?}: uid must be a number"))?;
    let gid = g
        .map(|g| {
            g.parse()
                .with_context(|| format!("--user {text:?}: gid must be a number"))
        })
        .transpose()?;
    Ok((uid, gid))
}

/// The process to run: `--process FILE` as given, or the container's process changed by
/// the flags.
fn build_process(args: &ExecArgs, bundle: &std::path::Path) -> Result<Process> {
    let process: Process = if let Some(path) = &args.process {
        let text = std::fs::read(path)
            .with_context(|| format!("cannot read process file {}", path.display()))?;
        let mut value: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("invalid process file {}", path.display()))?;
        config_check::warn_ignored_capabilities(&capabilities::remove_unknown_names(&mut value));
        // runc runs a process without `user` as 0:0 (its Go struct's zero value); the
        // runtime spec's type requires the field.
        if let Some(obj) = value.as_object_mut() {
            obj.entry("user")
                .or_insert_with(|| serde_json::json!({"uid": 0, "gid": 0}));
        }
        serde_json::from_value(value)
            .with_context(|| format!("invalid process file {}", path.display()))?
    } else {
        if args.command.is_empty() {
            bail!("exec needs a command to run (or --process FILE)");
        }
        let config = bundle.join("config.json");
        let text = std::fs::read(&config)
            .with_context(|| format!("cannot read the container's {}", config.display()))?;
        let parsed = config_check::parse(&text)
            .map_err(|e| anyhow::anyhow!("invalid {}: {e}", config.display()))?;
        config_check::warn_ignored_capabilities(&parsed.ignored_capabilities);
        let mut p = parsed.spec.process().clone().unwrap_or_default();
        p.set_args(Some(args.command.clone()));
        p.set_terminal(Some(args.tty));
        if let Some(cwd) = &args.cwd {
            if !cwd.is_absolute() {
                bail!("--cwd {} must be an absolute path", cwd.display());
            }
            p.set_cwd(cwd.clone());
        }
        if !args.env.is_empty() {
            // Appended, as runc does: a name given again keeps its place and takes the
            // last value when the process's environment is set (libcontainer's Env).
            let mut env: Vec<String> = p.env().clone().unwrap_or_default();
            env.extend(args.env.iter().cloned());
            p.set_env(Some(env));
        }
        let mut user = p.user().clone();
        if let Some(u) = &args.user {
            let (uid, gid) = parse_user(u)?;
            user.set_uid(uid);
            if let Some(gid) = gid {
                user.set_gid(gid);
            }
        }
        if !args.additional_gids.is_empty() {
            user.set_additional_gids(Some(args.additional_gids.clone()));
        }
        p.set_user(user);
        if !args.cap.is_empty() {
            // A process without capabilities has none; --cap adds to empty sets.
            let mut caps = p.capabilities().clone().unwrap_or_else(capabilities::none);
            // Names runc would not know are ignored with its warning.
            let mut named = serde_json::json!({"capabilities": {"bounding": args.cap}});
            config_check::warn_ignored_capabilities(&capabilities::remove_unknown_names(
                &mut named,
            ));
            let known: Vec<String> =
                serde_json::from_value(named["capabilities"]["bounding"].take())?;
            for name in &known {
                let cap = serde_json::from_value(serde_json::Value::from(name.as_str()))
                    .map_err(|_| anyhow::anyhow!("--cap {name:?} is not a capability"))?;
                let add = |s: &Option<std::collections::HashSet<_>>| {
                    let mut s = s.clone().unwrap_or_default();
                    s.insert(cap);
                    Some(s)
                };
                let (b, e, pm) = (
                    add(caps.bounding()),
                    add(caps.effective()),
                    add(caps.permitted()),
                );
                caps.set_bounding(b).set_effective(e).set_permitted(pm);
            }
            p.set_capabilities(Some(caps));
        }
        if args.no_new_privs {
            p.set_no_new_privileges(Some(true));
        }
        if let Some(a) = &args.apparmor {
            p.set_apparmor_profile(Some(a.clone()));
        }
        if let Some(l) = &args.process_label {
            p.set_selinux_label(Some(l.clone()));
        }
        p
    };
    Ok(process)
}

/// The sub-cgroup of the container's cgroup that `--cgroup` names. runc takes `PATH`
/// (every hierarchy) or `CONTROLLER[,CONTROLLER]:PATH` (those controllers only);
/// libcontainer joins one path in every hierarchy, so a path for some controllers only
/// is refused rather than applied to all of them. The sub-cgroup must exist (the
/// process joins it, as with runc, and fails when it is missing).
fn sub_cgroup(flags: &[String]) -> Result<Option<String>> {
    let mut path: Option<&str> = None;
    for flag in flags {
        let (controllers, p) = flag.split_once(':').unwrap_or(("", flag));
        if !controllers.is_empty() {
            bail!(
                "--cgroup {flag:?}: a sub-cgroup for some controllers only is not supported; \
                 give PATH to join it in every hierarchy"
            );
        }
        if p.is_empty() {
            bail!("--cgroup {flag:?}: the path is empty");
        }
        if path.is_some_and(|seen| seen != p) {
            bail!("--cgroup given twice with different paths");
        }
        path = Some(p);
    }
    Ok(path.map(str::to_string))
}

/// Runs the command; returns the exit status (the process's, or 0 when detached). Every
/// error is reported as runc reports exec's: `exec failed: ...`.
pub fn run(cli: &Cli, args: ExecArgs) -> Result<i32> {
    exec(cli, args).context("exec failed")
}

fn exec(cli: &Cli, args: ExecArgs) -> Result<i32> {
    let root = container::state_root(cli);
    let c = container::load(&root, &args.id)?;
    match c.status() {
        // runc runs a process in a created container too (its init waits for start).
        ContainerStatus::Running | ContainerStatus::Created => {}
        ContainerStatus::Paused if args.ignore_paused => {}
        ContainerStatus::Paused => bail!(client_errors::EXEC_PAUSED),
        ContainerStatus::Stopped => bail!(client_errors::EXEC_STOPPED),
        ContainerStatus::Creating => bail!("cannot exec in a container that is being created"),
    }
    let process = build_process(&args, c.bundle())?;
    if process.terminal() == Some(true) && args.detach && args.console_socket.is_none() {
        bail!("exec --tty --detach needs --console-socket");
    }
    if process.terminal() == Some(true) && args.console_socket.is_none() {
        tty_proxy::require_host_terminal()?;
    }
    let process_file = c.root.join(format!("exec-{}.json", std::process::id()));
    std::fs::write(&process_file, serde_json::to_vec(&process)?)
        .with_context(|| format!("cannot write {}", process_file.display()))?;

    // A terminal with nobody to hand it to: we take the master and relay it ourselves.
    let console =
        if process.terminal() == Some(true) && !args.detach && args.console_socket.is_none() {
            Some(ConsoleReceiver::listen(
                &c.root.join(format!("exec-{}.console", std::process::id())),
            )?)
        } else {
            None
        };
    let console_socket = console
        .as_ref()
        .map(|r| r.path().to_path_buf())
        .or_else(|| args.console_socket.clone());
    let mut signals = if args.detach {
        None
    } else {
        Some(container::wait::install_signal_handlers(true)?)
    };
    let sub_cgroup = sub_cgroup(&args.cgroup)?;
    phase("exec:prepared");
    let built = ContainerBuilder::new(args.id.clone(), SyscallType::default())
        .with_root_path(&root)
        .and_then(|b| b.with_pid_file(args.pid_file.as_ref()))
        .map(|b| {
            // libcontainer gives the exec'd process the container's seccomp profile.
            b.with_executor(PathLookupExecutor)
                .with_console_socket(console_socket.as_ref())
                .with_preserved_fds(args.preserve_fds)
                .as_tenant()
                .with_process(Some(&process_file))
                // libcontainer's "detach" only decides whether a console socket is allowed.
                .with_detach(args.detach || console_socket.is_some())
                .with_ignore_paused(args.ignore_paused)
                .with_sub_cgroup(sub_cgroup)
        })
        .and_then(|b| b.build());
    let _ = std::fs::remove_file(&process_file);
    let pid: Pid = built.map_err(|e| anyhow::anyhow!("{}", chain(&e)))?;

    phase("exec:started");
    let relay = match console {
        Some(receiver) => Some(Relay::start(receiver)?),
        None => None,
    };
    let status = match signals.as_mut() {
        None => 0,
        Some(signals) => {
            container::wait::wait_forwarding(signals, pid, relay.as_ref().map(Relay::master_fd))
        }
    };
    if let Some(r) = relay {
        r.finish();
    }
    Ok(status)
}
