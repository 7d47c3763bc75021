//! `delete`: remove a container's processes (with `--force`), cgroup and state. A missing
//! container is not an error with `--force`, so cleanup scripts can call it blindly.

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::commands::create::error_chain;
use crate::container;

#[derive(Args, Debug)]
pub struct DeleteArgs {
    /// Kill the container's processes first if it is still running.
    #[arg(short = 'f', long)]
    pub force: bool,
    /// The container id.
    pub id: String,
}

pub fn run(cli: &Cli, args: DeleteArgs) -> Result<()> {
    container::validate_id(&args.id)?;
    let root = container::state_root(cli);
    let dir = container::container_dir(&root, &args.id);
    if !dir.join("state.json").exists() {
        if args.force {
            // A half-created container may have left a state directory without state.
            let _ = std::fs::remove_dir_all(&dir);
            let _ = std::fs::remove_file(container::lock_path(&root, &args.id));
            return Ok(());
        }
        bail!("container {} does not exist", args.id);
    }
    let mut c = container::load(&root, &args.id)?;
    match c.status() {
        ContainerStatus::Stopped | ContainerStatus::Created => {}
        s if !args.force => bail!(
            "cannot delete container {} that is not stopped: {}",
            args.id,
            s.to_string().to_lowercase()
        ),
        _ => {}
    }
    c.delete(args.force)
        .map_err(|e| anyhow::anyhow!("{}", error_chain(&e)))
        .with_context(|| format!("cannot delete container {}", args.id))?;
    let _ = std::fs::remove_file(container::lock_path(&root, &args.id));
    Ok(())
}
