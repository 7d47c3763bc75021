//! `checkpoint`: dump a running container with CRIU (through libcontainer), runc's flags.
//! When CRIU cannot dump on this kernel (Debian's 3.17 fails on recent vDSO layouts) the
//! user gets CRIU's own reason on one line and the container keeps running.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::{CheckpointOptions, ContainerStatus};

use crate::cli::Cli;
use crate::commands::create::error_chain;
use crate::container;

#[derive(Args, Debug)]
pub struct CheckpointArgs {
    /// Directory for the checkpoint images.
    #[arg(long = "image-path", default_value = "checkpoint")]
    pub image_path: PathBuf,
    /// Directory for CRIU's logs and work files.
    #[arg(long = "work-path")]
    pub work_path: Option<PathBuf>,
    /// Leave the container running after the dump.
    #[arg(long = "leave-running")]
    pub leave_running: bool,
    /// Allow open TCP connections.
    #[arg(long = "tcp-established")]
    pub tcp_established: bool,
    /// Allow external unix sockets.
    #[arg(long = "ext-unix-sk")]
    pub ext_unix_sk: bool,
    /// Allow shell jobs.
    #[arg(long = "shell-job")]
    pub shell_job: bool,
    /// Handle file locks.
    #[arg(long = "file-locks")]
    pub file_locks: bool,
    /// cgroups mode: soft, full, strict or ignore.
    #[arg(long = "manage-cgroups-mode", default_value = "soft", value_parser = ["soft", "full", "strict", "ignore"])]
    pub manage_cgroups_mode: String,
    /// The container id.
    pub id: String,
}

/// CRIU's log tells why a dump failed; its last error line is the reason.
fn criu_reason(work: &std::path::Path) -> Option<String> {
    let log = std::fs::read_to_string(work.join("dump.log")).ok()?;
    log.lines()
        .rev()
        .find(|l| l.contains("Error"))
        .map(|l| l.trim().to_string())
}

pub fn run(cli: &Cli, args: CheckpointArgs) -> Result<()> {
    let root = container::state_root(cli);
    let mut c = container::load(&root, &args.id)?;
    if c.status() != ContainerStatus::Running {
        bail!(
            "cannot checkpoint container {}: it is {}",
            args.id,
            c.status().to_string().to_lowercase()
        );
    }
    if which_criu().is_none() {
        bail!(
            "cannot checkpoint container {}: criu is not installed",
            args.id
        );
    }
    std::fs::create_dir_all(&args.image_path)
        .with_context(|| format!("cannot create {}", args.image_path.display()))?;
    let image_path = std::fs::canonicalize(&args.image_path)?;
    let work = args.work_path.clone().unwrap_or_else(|| image_path.clone());
    let mode = match args.manage_cgroups_mode.as_str() {
        "full" => rust_criu::CgMode::FULL,
        "strict" => rust_criu::CgMode::STRICT,
        "ignore" => rust_criu::CgMode::IGNORE,
        _ => rust_criu::CgMode::SOFT,
    };
    let opts = CheckpointOptions {
        ext_unix_sk: args.ext_unix_sk,
        file_locks: args.file_locks,
        image_path,
        leave_running: args.leave_running,
        shell_job: args.shell_job,
        tcp_established: args.tcp_established,
        work_path: Some(work.clone()),
        manage_cgroups_mode: mode,
        link_remap: false,
    };
    if let Err(e) = c.checkpoint(&opts) {
        let reason = criu_reason(&work)
            .map(|r| format!(" (criu: {r})"))
            .unwrap_or_default();
        bail!(
            "cannot checkpoint container {}: {}{reason}",
            args.id,
            error_chain(&e)
        );
    }
    Ok(())
}

fn which_criu() -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| PathBuf::from(d).join("criu"))
        .find(|p| p.is_file())
}
