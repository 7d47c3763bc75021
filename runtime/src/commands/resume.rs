//! `resume`: thaw a paused container.

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::container::{self, client_errors};
use libcontainer::error::chain;

#[derive(Args, Debug)]
pub struct ResumeArgs {
    /// The container id.
    pub id: String,
}

pub fn run(cli: &Cli, args: ResumeArgs) -> Result<()> {
    let root = container::state_root(cli);
    let mut c = container::load(&root, &args.id)?;
    if c.status() != ContainerStatus::Paused {
        bail!(client_errors::NOT_PAUSED);
    }
    c.resume()
        .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
        .with_context(|| format!("cannot resume container {}", args.id))
}
