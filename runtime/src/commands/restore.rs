//! `restore`: bring a checkpointed container back with CRIU, with runc's flags
//! (containerd sends `restore ... -no-subreaper`). libcontainer 0.7 has no restore, so the
//! runtime builds the container's state and cgroup as `create` would and asks CRIU
//! (through rust-criu) to restore the process tree into them, as runc does.
//!
//! Everything is checked before anything is made (bundle, config, image directory,
//! flags, id, CRIU); after that, a failure removes all the attempt made: the state
//! directory, the cgroup and the rootfs bind mount CRIU restored into.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use libcgroups::common::{AnyCgroupManager, CgroupConfig, CgroupManager};
use libcontainer::config::YoukiConfig;
use libcontainer::container::{Container, ContainerStatus};
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};
use nix::unistd::geteuid;

use crate::cli::Cli;
use crate::commands::create::{bundle_wants_terminal, load_bundle_spec};
use crate::container::cgroup_visit::CgroupVisit;
use crate::container::criu_restore::{self, CriuRoot};
use crate::container::footprint::Footprint;
use crate::container::tty_proxy::{ConsoleReceiver, Relay};
use crate::container::{self, criu};
use libcontainer::error::chain;

#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// AF_UNIX socket which receives the master end of the restored process's terminal.
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Directory holding the checkpoint images (default, also when empty: ./checkpoint).
    #[arg(long = "image-path", value_name = "DIR", value_parser = clap::builder::OsStringValueParser::new())]
    pub image_path: Option<OsString>,
    /// Directory for CRIU's log and work files (default: the image directory).
    #[arg(long = "work-path", value_name = "DIR")]
    pub work_path: Option<PathBuf>,
    #[command(flatten)]
    pub criu: criu::SharedFlags,
    /// Path to the bundle directory (holding config.json and the root filesystem).
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Return once the container is restored instead of waiting for it.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// File to write the restored init's pid to.
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Do not make the runtime a subreaper for the container's orphans.
    #[arg(long = "no-subreaper")]
    pub no_subreaper: bool,
    /// Accepted for runc compatibility: CRIU moves into the root itself.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Create a namespace but do not restore its properties (only `network`; the network
    /// namespace is always restored empty, as runc does).
    #[arg(long = "empty-ns", value_name = "NS")]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images as they are restored.
    #[arg(long = "auto-dedup")]
    pub auto_dedup: bool,
    /// Restore memory pages lazily through userfaultfd.
    #[arg(long = "lazy-pages")]
    pub lazy_pages: bool,
    /// LSM profile for the restored process, as TYPE:NAME.
    #[arg(long = "lsm-profile", value_name = "TYPE:NAME")]
    pub lsm_profile: Option<String>,
    /// LSM mount context for the restored mounts.
    #[arg(long = "lsm-mount-context", value_name = "CONTEXT")]
    pub lsm_mount_context: Option<String>,
    /// The id of the restored container, unique under the state root.
    pub id: String,
}

/// Everything checked up front, before anything is created.
struct Checked {
    bundle: PathBuf,
    spec: Spec,
    rootfs: PathBuf,
    images: PathBuf,
    criu: PathBuf,
    terminal: bool,
}

/// Returns the exit status the runtime should exit with: the container's without `-d`.
pub fn run(cli: &Cli, args: RestoreArgs) -> Result<i32> {
    let id = args.id.clone();
    let what = format!("cannot restore container {id}");
    let checked = check(cli, &args, &what)?;
    let root = container::state_root(cli);
    container::make_state_root(&root)?;
    let claim = container::claim_id(&root, &id)?;
    let dir = container::container_dir(&root, &id);
    if dir.exists() {
        bail!(container::client_errors::already_exists(&id));
    }

    let systemd = cli.systemd_cgroup;
    let cgroup_path = libcontainer::utils::get_cgroup_path(
        &checked
            .spec
            .linux()
            .as_ref()
            .and_then(|l| l.cgroups_path().clone()),
        &id,
        systemd,
    );
    let manager = libcgroups::common::create_cgroup_manager(CgroupConfig {
        cgroup_path: cgroup_path.clone(),
        systemd_cgroup: systemd,
        container_name: id.clone(),
    })
    .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;

    // Before CRIU forks anything, so the exit of a process that dies at once still wakes us.
    let mut signals = if args.detach {
        None
    } else {
        Some(container::wait::install_signal_handlers(
            !args.no_subreaper,
        )?)
    };
    // A terminal with nobody to hand it to (foreground restore): we relay it ourselves.
    let receiver = if checked.terminal && args.console_socket.is_none() {
        Some(ConsoleReceiver::listen(
            &Footprint::new(&root, &id).console_socket(),
        )?)
    } else {
        None
    };
    let console_socket = receiver
        .as_ref()
        .map(|r| r.path().to_path_buf())
        .or_else(|| args.console_socket.clone());

    let attempt = Attempt {
        args: &args,
        checked: &checked,
        dir: &dir,
        cgroup_path: &cgroup_path,
        systemd,
        manager: &manager,
        console_socket,
        what: &what,
    };
    let (c, terminal_sent) = match attempt.restore() {
        Ok(restored) => restored,
        Err(err) => {
            undo(&root, &id, &manager);
            return Err(err);
        }
    };
    drop(claim);
    let pid = c.pid().context("the restored container has no pid")?;

    if let Some(pid_file) = &args.pid_file {
        if let Err(err) = write_pid_file(pid_file, pid.as_raw()) {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = nix::sys::wait::waitpid(pid, None);
            undo(&root, &id, &manager);
            return Err(err.context(what));
        }
    }
    run_poststart(&c);
    if args.detach {
        return Ok(0);
    }

    // Only a terminal CRIU handed over can be relayed (waiting for one never sent would hang).
    let relay = receiver
        .filter(|_| terminal_sent)
        .map(Relay::start)
        .transpose()?;
    let signals = signals
        .as_mut()
        .context("no signal handlers to wait with")?;
    let status =
        container::wait::wait_forwarding(signals, pid, relay.as_ref().map(Relay::master_fd));
    if let Some(r) = relay {
        r.finish();
    }
    // As `run` does without --keep: the container goes with its process.
    if let Err(left) = Footprint::new(&root, &id).delete_forcibly() {
        tracing::warn!(%left, "restore's delete left something behind");
    }
    Ok(status)
}

/// Validates the input with one clear line per problem; creates nothing.
fn check(cli: &Cli, args: &RestoreArgs, what: &str) -> Result<Checked> {
    container::validate_id(&args.id)?;
    if !geteuid().is_root() {
        bail!("{what}: restoring needs root (CRIU cannot restore a container unprivileged)");
    }
    let (bundle, spec) = load_bundle_spec(&args.bundle)?;
    let rootfs = spec
        .root()
        .as_ref()
        .map(|r| {
            if r.path().is_absolute() {
                r.path().clone()
            } else {
                bundle.join(r.path())
            }
        })
        .context("invalid config.json: root is missing")?;
    let images = check_images(args.image_path.as_deref())?;
    if let Some(work) = &args.work_path {
        if work.exists() && !work.is_dir() {
            bail!("work path {} is not a directory", work.display());
        }
    }
    for ns in &args.empty_ns {
        if ns != "network" {
            bail!("invalid --empty-ns {ns:?}: only \"network\" is supported");
        }
    }
    if let Some(profile) = &args.lsm_profile {
        let valid = profile
            .split_once(':')
            .is_some_and(|(t, n)| !t.is_empty() && !n.is_empty());
        if !valid {
            bail!("invalid --lsm-profile {profile:?}: use TYPE:NAME");
        }
    }
    let namespaces = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten();
    for ns in namespaces {
        if let Some(path) = ns.path().as_ref().filter(|p| !p.exists()) {
            bail!(
                "{what}: the {} namespace {} does not exist",
                ns.typ(),
                path.display()
            );
        }
    }
    let cgroupns_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|ns| ns.typ() == LinuxNamespaceType::Cgroup && ns.path().is_some());
    if let Some(ns) = cgroupns_path {
        bail!(
            "{what}: CRIU cannot restore into an existing cgroup namespace ({})",
            ns.path()
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        );
    }
    let terminal = bundle_wants_terminal(&bundle);
    if terminal && args.detach && args.console_socket.is_none() {
        bail!("{what}: process.terminal is true: a detached restore needs --console-socket");
    }
    if !terminal && args.console_socket.is_some() {
        bail!("{what}: --console-socket given but process.terminal is false");
    }
    let criu = criu::require(cli.criu.as_deref(), what)?;
    Ok(Checked {
        bundle,
        spec,
        rootfs,
        images,
        criu,
        terminal,
    })
}

/// The image directory: `--image-path`, or `./checkpoint` as runc defaults; it must hold
/// a checkpoint (CRIU's inventory.img).
fn check_images(image_path: Option<&OsStr>) -> Result<PathBuf> {
    let given = image_path.filter(|p| !p.is_empty());
    let (path, default) = match given {
        Some(p) => (PathBuf::from(p), ""),
        None => (PathBuf::from("checkpoint"), " (the default)"),
    };
    let shown = format!("{}{default}", path.display());
    if !path.exists() {
        bail!("image path {shown} does not exist");
    }
    if !path.is_dir() {
        bail!("image path {shown} is not a directory");
    }
    if !path.join("inventory.img").is_file() {
        bail!("image path {shown} holds no checkpoint (no inventory.img)");
    }
    fs::canonicalize(&path).with_context(|| format!("cannot resolve {}", path.display()))
}

/// One restore attempt: what it creates is undone by [`undo`] when it fails.
struct Attempt<'a> {
    args: &'a RestoreArgs,
    checked: &'a Checked,
    dir: &'a Path,
    cgroup_path: &'a Path,
    systemd: bool,
    manager: &'a AnyCgroupManager,
    console_socket: Option<PathBuf>,
    what: &'a str,
}

impl Attempt<'_> {
    /// Creates the state and cgroup, restores through CRIU and records the restored init.
    /// The cgroup visit and the rootfs bind mount end when this returns, either way.
    /// Returns the container and whether CRIU handed over a terminal.
    fn restore(self) -> Result<(Container, bool)> {
        let Checked {
            bundle,
            spec,
            rootfs,
            images,
            criu,
            ..
        } = self.checked;
        let id = &self.args.id;
        container::make_container_dir(self.dir).with_context(|| self.what.to_string())?;
        let mut c = Container::new(id, ContainerStatus::Creating, None, bundle, self.dir)
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("{}: cannot record its state", self.what))?;
        c.set_systemd(self.systemd)
            .set_annotations(spec.annotations().clone())
            .set_creator(geteuid().as_raw());
        c.save()
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("{}: cannot record its state", self.what))?;
        let mut config = YoukiConfig::from_spec(spec, id, self.systemd)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: cannot record its config", self.what))?;
        config.cgroup_path = self.cgroup_path.to_path_buf();
        config
            .save(self.dir)
            .map_err(|e| anyhow::anyhow!("{e}"))
            .with_context(|| format!("{}: cannot record its config", self.what))?;

        if let Some(work) = &self.args.work_path {
            fs::create_dir_all(work).with_context(|| {
                format!(
                    "{}: cannot create the work path {}",
                    self.what,
                    work.display()
                )
            })?;
        }
        criu_restore::make_mountpoints(spec, rootfs, bundle).context(self.what.to_string())?;
        let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
        let visit =
            CgroupVisit::enter(self.manager, resources).with_context(|| self.what.to_string())?;
        let criu_root = CriuRoot::mount(rootfs, self.dir).context(self.what.to_string())?;
        let flags = criu_restore::Flags {
            shared: self.args.criu.clone(),
            auto_dedup: self.args.auto_dedup,
            lazy_pages: self.args.lazy_pages,
            lsm_profile: self.args.lsm_profile.clone(),
            lsm_mount_context: self.args.lsm_mount_context.clone(),
        };
        let request = criu_restore::Request {
            criu,
            spec,
            bundle,
            images,
            work: self.args.work_path.as_deref(),
            root: criu_root.path(),
            state_dir: self.dir,
            cgroup_path: self.cgroup_path,
            cgroup_roots: visit.criu_roots(),
            flags: &flags,
            hook_state: c.state.clone(),
            console_socket: self.console_socket.clone(),
        };
        let restored = criu_restore::restore(request, self.what)?;
        drop(criu_root);
        drop(visit);

        c.set_pid(restored.pid).set_status(ContainerStatus::Running);
        // The restored process started during the restore: "created" follows it, so the
        // status check (which refuses an init younger than its container) accepts it.
        c.state.created = Some(chrono::Utc::now());
        c.save()
            .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
            .with_context(|| format!("{}: cannot record the restored process", self.what))?;
        Ok((c, restored.terminal_sent))
    }
}

/// Removes what a failed restore made: the cgroup (killing anything CRIU left in it,
/// through the manager the attempt used, before its path was recorded), then everything
/// the footprint of the id knows (state directory, console socket, lock).
fn undo(root: &Path, id: &str, manager: &AnyCgroupManager) {
    if let Err(err) = manager.remove() {
        tracing::warn!(%err, "cannot remove the cgroup of the failed restore");
    }
    if let Err(left) = Footprint::new(root, id).remove() {
        tracing::warn!(%left, "a failed restore left something behind");
    }
}

/// The pid file, written whole or not at all (a reader never sees a partial pid).
fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("invalid pid file {}", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.tmp", name.to_string_lossy()));
    fs::write(&tmp, pid.to_string())
        .with_context(|| format!("cannot write the pid file {}", path.display()))?;
    fs::rename(&tmp, path).with_context(|| {
        let _ = fs::remove_file(&tmp);
        format!("cannot write the pid file {}", path.display())
    })
}

/// poststart hooks once the process runs again; a failure is a warning (runtime spec).
fn run_poststart(c: &Container) {
    let Ok(config) = YoukiConfig::load(&c.root) else {
        return;
    };
    let Some(hooks) = config.hooks.as_ref().and_then(|h| h.poststart().clone()) else {
        return;
    };
    let failures = libcontainer::hooks::run_hooks_warn_on_failure(
        Some(&hooks),
        Some(&c.state),
        Some(&c.root),
        None,
        None,
    );
    container::hook_warnings::report("poststart", &failures);
}
