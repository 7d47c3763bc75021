//! `checkpoint`: dump a running container with CRIU (through libcontainer), runc's flags.
//! When CRIU cannot dump on this kernel (Debian's 3.17 fails on recent vDSO layouts) the
//! user gets CRIU's own reason on one line and the container keeps running.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::{CheckpointOptions, ContainerStatus};

use crate::cli::Cli;
use crate::commands::create::error_chain;
use crate::container::{self, criu};

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
    #[arg(long = "manage-cgroups-mode", default_value = "soft", value_parser = criu::CGROUP_MODES)]
    pub manage_cgroups_mode: String,
    /// The container id.
    pub id: String,
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
    let what = format!("cannot checkpoint container {}", args.id);
    // libcontainer runs the `criu` on PATH.
    criu::require(None, &what)?;
    std::fs::create_dir_all(&args.image_path)
        .with_context(|| format!("cannot create {}", args.image_path.display()))?;
    let image_path = std::fs::canonicalize(&args.image_path)?;
    let work = args.work_path.clone().unwrap_or_else(|| image_path.clone());
    let mode = criu::cgroup_mode(&args.manage_cgroups_mode);
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
    let log = work.join("dump.log");
    // A log left by an earlier attempt must not pass for this one's reason.
    let _ = std::fs::remove_file(&log);
    if let Err(e) = c.checkpoint(&opts) {
        return Err(criu::failure(&what, &error_chain(&e), &log));
    }
    Ok(())
}
