//! `checkpoint`: dump a running container with CRIU (through libcontainer), runc's flags.
//! When CRIU cannot dump on this kernel (Debian's 3.17 fails on recent vDSO layouts) the
//! user gets CRIU's own reason on one line and the container keeps running.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::{CheckpointOptions, ContainerStatus};

use crate::cli::Cli;
use crate::container::{self, criu};
use libcontainer::error::chain;

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
    #[command(flatten)]
    pub criu: criu::SharedFlags,
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
    let mode = criu::cgroup_mode(&args.criu.manage_cgroups_mode);
    let opts = CheckpointOptions {
        ext_unix_sk: args.criu.ext_unix_sk,
        file_locks: args.criu.file_locks,
        image_path,
        leave_running: args.leave_running,
        shell_job: args.criu.shell_job,
        tcp_established: args.criu.tcp_established,
        work_path: Some(work.clone()),
        manage_cgroups_mode: mode,
        link_remap: false,
    };
    let log = work.join("dump.log");
    // A log left by an earlier attempt must not pass for this one's reason.
    let _ = std::fs::remove_file(&log);
    if let Err(e) = c.checkpoint(&opts) {
        return Err(criu::failure(&what, &chain(&e), &log));
    }
    Ok(())
}
