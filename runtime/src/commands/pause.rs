//! `pause`: freeze every process of a running container (freezer cgroup).

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::commands::create::error_chain;
use crate::container;

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
        ContainerStatus::Paused => bail!("container {} is already paused", args.id),
        s => bail!(
            "container {} is not running: {}",
            args.id,
            s.to_string().to_lowercase()
        ),
    }
    c.pause()
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))
        .with_context(|| format!("cannot pause container {}", args.id))
}
