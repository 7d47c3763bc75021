//! `create`: set up a container from a bundle; its process waits for `start`.

use std::fs;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::container::Container;
use libcontainer::oci_spec::runtime::Spec;
use libcontainer::syscall::syscall::SyscallType;

use crate::cli::Cli;
use crate::container::footprint::{self, Footprint};
use crate::container::path_lookup::PathLookupExecutor;
use crate::container::test_switches::phase;
use crate::container::{self, config_check, rootless_cgroups};

/// Options shared by `create` and `run`.
#[derive(Args, Debug, Clone)]
pub struct CreateOpts {
    /// Path to the bundle directory (holding config.json and the root filesystem).
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// AF_UNIX socket to which the pseudoterminal master is sent (terminal: true).
    #[arg(long = "console-socket", value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// File to write the container init's pid to.
    #[arg(long = "pid-file", value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Do not use pivot_root to jail the process inside the rootfs.
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Pass N additional file descriptors (from fd 3) to the container.
    #[arg(long = "preserve-fds", default_value_t = 0, value_name = "N")]
    pub preserve_fds: i32,
    /// AF_UNIX socket to which a pidfd of the container init is sent.
    #[arg(long = "pidfd-socket", value_name = "PATH")]
    pub pidfd_socket: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    #[command(flatten)]
    pub opts: CreateOpts,
    /// The container id, unique under the state root.
    pub id: String,
}

pub fn run(cli: &Cli, args: CreateArgs) -> Result<()> {
    create_container(cli, &args.opts, &args.id, true)?;
    Ok(())
}

/// Whether the bundle's process asks for a terminal (read without validating: create
/// reports a bad config itself).
pub fn bundle_wants_terminal(bundle: &Path) -> bool {
    std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .is_some_and(|v| v["process"]["terminal"] == serde_json::Value::Bool(true))
}

/// Whether an already validated spec's process asks for a terminal.
pub fn spec_wants_terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// Reads and checks config.json before libcontainer touches anything, so a bad bundle gets
/// an error naming the file and the problem, and nothing is created.
pub fn load_bundle_spec(bundle: &Path) -> Result<(PathBuf, Spec)> {
    let bundle = fs::canonicalize(bundle)
        .with_context(|| format!("bundle {} does not exist", bundle.display()))?;
    let config = bundle.join("config.json");
    let text = fs::read(&config).with_context(|| format!("cannot read {}", config.display()))?;
    let invalid = |why: String| anyhow::anyhow!("invalid {}: {why}", config.display());
    let parsed = config_check::parse(&text).map_err(invalid)?;
    config_check::warn_ignored_capabilities(&parsed.ignored_capabilities);
    let spec = parsed.spec;
    config_check::validate(&spec).map_err(invalid)?;
    let Some(root) = spec.root() else {
        bail!("invalid {}: root is missing", config.display());
    };
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    if !rootfs.is_dir() {
        bail!(
            "invalid {}: root.path {} is not a directory",
            config.display(),
            rootfs.display()
        );
    }
    config_check::check_proc_mounts(&rootfs, &spec).map_err(invalid)?;
    let Some(process) = spec.process() else {
        bail!("invalid {}: process is missing", config.display());
    };
    ensure_cwd(&rootfs, process.cwd())?;
    Ok((bundle, spec))
}

/// runc creates a missing working directory; libcontainer fails with a bare syscall error.
/// The directory is made through libpathrs, every component resolved inside the rootfs
/// with openat2(RESOLVE_IN_ROOT): a symlink swapped in while we work (CVE-2021-30465's
/// race) cannot send the mkdir out of the rootfs, as a resolve-then-create_dir_all could.
fn ensure_cwd(rootfs: &Path, cwd: &Path) -> Result<()> {
    if container::test_switches::unsafe_enabled("cwd-resolution") {
        // The old way, for the negative control of the race test: resolve, then create.
        let inside = safe_path::scoped_join(rootfs, cwd)
            .with_context(|| format!("process.cwd {} cannot be resolved", cwd.display()))?;
        if !inside.exists() {
            fs::create_dir_all(&inside)
                .with_context(|| format!("cannot create process.cwd {}", cwd.display()))?;
        }
        return Ok(());
    }
    use std::os::unix::fs::PermissionsExt;
    let root = pathrs::Root::open(rootfs)
        .with_context(|| format!("cannot open the rootfs {}", rootfs.display()))?;
    // The usual case, an existing directory, in one openat2(RESOLVE_IN_ROOT) and one
    // fstat: mkdir_all re-opens each handle through procfs (about 50 system calls).
    let existing = root.resolve(cwd).ok().and_then(|h| {
        fs::File::from(std::os::fd::OwnedFd::from(h))
            .metadata()
            .ok()
    });
    if existing.is_some_and(|m| m.is_dir()) {
        return Ok(());
    }
    root.mkdir_all(cwd, &fs::Permissions::from_mode(0o755))
        .with_context(|| {
            format!(
                "process.cwd {} cannot be created in the rootfs",
                cwd.display()
            )
        })?;
    Ok(())
}

/// Creates the container and leaves it `created`. On any failure everything this call made
/// (state directory, cgroup) is removed again.
pub fn create_container(cli: &Cli, opts: &CreateOpts, id: &str, detach: bool) -> Result<Container> {
    container::validate_id(id)?;
    let loaded = load_bundle_spec(&opts.bundle)?;
    create_loaded_container(cli, opts, id, detach, loaded)
}

/// `create_container` for a caller that has already validated `id` and loaded the bundle
/// with `load_bundle_spec` (`run`, which needs the spec first to decide on a terminal),
/// so that config.json is read and parsed once.
pub fn create_loaded_container(
    cli: &Cli,
    opts: &CreateOpts,
    id: &str,
    detach: bool,
    (bundle, spec): (PathBuf, Spec),
) -> Result<Container> {
    let root = container::state_root(cli);
    container::make_state_root(&root)?;
    // Held until this function returns: a concurrent create of the same id fails below
    // instead of racing libcontainer's non-exclusive directory creation.
    let _claim = container::claim_id(&root, id)?;
    phase("create:claimed");
    let dir = container::container_dir(&root, id);
    if dir.exists() {
        bail!(container::client_errors::already_exists(id));
    }
    let systemd = cli.systemd_cgroup;
    // Rootless on cgroup v1: no cgroup is really made, so there is none to rename either.
    let cgroups_hidden = rootless_cgroups::needs_hiding();
    if cgroups_hidden {
        let cgroups_path = spec.linux().as_ref().and_then(|l| l.cgroups_path().clone());
        rootless_cgroups::hide_cgroup_v1(&libcontainer::utils::get_cgroup_path(
            &cgroups_path,
            id,
            systemd,
        ))?;
    }
    let cgroup_existed = footprint::cgroup_exists(&spec, id, systemd);
    // libcontainer gets the spec we already parsed.
    let built = build(&root, &bundle, opts, id, detach, systemd, spec);
    phase("create:built");
    let result = built.and_then(|container| {
        if let Some(socket) = &opts.pidfd_socket {
            send_pidfd(&container, socket)?;
        }
        Ok(container)
    });
    match result {
        Ok(container) => {
            phase("create:done");
            Ok(container)
        }
        Err(err) => {
            // Everything this attempt made goes (the id was free when it began); a cgroup
            // that existed before it is not its to remove (libcontainer's delete takes
            // out what the attempt put in it).
            let mut footprint = Footprint::new(&root, id);
            if cgroup_existed {
                footprint = footprint.keeping_cgroups();
            }
            if let Err(left) = footprint.delete_forcibly() {
                tracing::warn!(%left, "a failed create left something behind");
            }
            Err(err)
        }
    }
}

fn build(
    root: &Path,
    bundle: &Path,
    opts: &CreateOpts,
    id: &str,
    detach: bool,
    systemd: bool,
    spec: Spec,
) -> Result<Container> {
    let container = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(root)?
        .with_pid_file(opts.pid_file.as_ref())?
        .with_console_socket(opts.console_socket.as_ref())
        .with_preserved_fds(opts.preserve_fds)
        .with_executor(PathLookupExecutor)
        .validate_id()?
        .as_init(bundle)
        .with_systemd(systemd)
        .with_detach(detach)
        .with_no_pivot(opts.no_pivot)
        .with_spec(spec)
        .build()
        .map_err(|e| anyhow::anyhow!("{}", libcontainer::error::chain(&e)))
        .with_context(|| format!("cannot create container {id}"))?;
    Ok(container)
}

/// Sends a pidfd of the container init over the `--pidfd-socket`, as runc 1.2 does.
fn send_pidfd(container: &Container, socket: &Path) -> Result<()> {
    let pid = container
        .pid()
        .context("the container has no init pid to send")?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        bail!("pidfd_open: {}", std::io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by the kernel and belongs to nobody else.
    let fd = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd as i32) };
    let name = format!("{}", pid);
    container::send_fd::send_fd(socket, fd.as_raw_fd(), &name)
        .with_context(|| format!("cannot send the pidfd to {}", socket.display()))?;
    Ok(())
}
