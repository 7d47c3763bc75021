//! `pause`: freeze every process of a running container (freezer cgroup).

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::container::{self, client_errors};
use libcontainer::error::chain;

#[derive(Args, Debug)]
pub struct PauseArgs {
    /// The container id.
    pub id: String,
}

pub fn run(cli: &Cli, args: PauseArgs) -> Result<()> {
    let root = container::state_root(cli);
    let mut c = container::load(&root, &args.id)?;
    match c.status() {
        ContainerStatus::Running => {}
        // runc says the same for a paused container: pausing needs a running one.
        _ => bail!(client_errors::NOT_RUNNING),
    }
    c.pause()
        .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
        .with_context(|| format!("cannot pause container {}", args.id))
}
