//! `start`: run the user process of a created container.

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::container;
use crate::container::test_switches::phase;

#[derive(Args, Debug)]
pub struct StartArgs {
    /// The container id.
    pub id: String,
}

pub fn run(cli: &Cli, args: StartArgs) -> Result<()> {
    let root = container::state_root(cli);
    let mut c = container::load(&root, &args.id)?;
    match c.status() {
        ContainerStatus::Created => {}
        ContainerStatus::Stopped => bail!("cannot start a container that has stopped"),
        ContainerStatus::Running => bail!("cannot start an already running container"),
        other => bail!(
            "cannot start a container in the {} state",
            other.to_string().to_lowercase()
        ),
    }
    phase("start:loaded");
    container::start::start(&mut c)
        .with_context(|| format!("cannot start container {}", args.id))?;
    phase("start:started");
    Ok(())
}
