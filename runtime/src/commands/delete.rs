//! `delete`: remove a container's processes (with `--force`), cgroup and state. A missing
//! container is not an error with `--force`, so cleanup scripts can call it blindly.
//!
//! Delete takes the id's lock (waiting for a create or delete in progress), so concurrent
//! deletes of one id do not trip over each other: one removes the container, the others
//! find it gone. With `--force` the container is removed whatever state it is in, also
//! when its state cannot be read because a runtime was killed half-way through create,
//! exec or delete (`container::footprint`).

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::container::ContainerStatus;

use crate::cli::Cli;
use crate::container::footprint::Footprint;
use crate::container::test_switches::phase;
use crate::container::{self, hook_warnings};
use libcontainer::error::chain;

/// How long delete waits for a create or another delete of the same id.
const LOCK_WAIT: Duration = Duration::from_secs(30);

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
    let id = args.id.as_str();
    let footprint = Footprint::new(&root, id);
    let dir = footprint.state_dir();
    if !footprint.may_exist() {
        if args.force {
            return Ok(());
        }
        bail!(container::client_errors::does_not_exist(id));
    }
    let claim = container::claim_id_waiting(&root, id, LOCK_WAIT)?;
    // A runtime killed during create or exec may have left a process on its way into the
    // container's cgroup: it dies, but only once its current system call is done.
    footprint.wait_for_clones();
    if !dir.join("state.json").exists() {
        if args.force {
            // A create that was killed may have left processes, cgroups and a state
            // directory without state.
            return finish(&root, id, claim);
        }
        if !dir.exists() {
            // Another delete won; taking the lock may have made the file again.
            let _ = std::fs::remove_file(footprint.lock_file());
        }
        drop(claim);
        bail!(container::client_errors::does_not_exist(id));
    }
    let mut c = match container::load(&root, id) {
        Ok(c) => c,
        Err(_) if args.force => return finish(&root, id, claim),
        Err(e) => return Err(e),
    };
    match c.status() {
        ContainerStatus::Stopped | ContainerStatus::Created => {}
        s if !args.force => bail!(
            "cannot delete container {id} that is not stopped: {}",
            s.to_string().to_lowercase()
        ),
        _ => {}
    }
    phase("delete:loaded");
    let deleted = c
        .delete(args.force)
        .map_err(|e| anyhow::anyhow!("{}", chain(&e)))
        .with_context(|| format!("cannot delete container {id}"));
    phase("delete:deleted");
    match deleted {
        Ok(poststop_failures) => {
            hook_warnings::report("poststop", &poststop_failures);
            finish(&root, id, claim)
        }
        Err(_) if args.force => finish(&root, id, claim),
        Err(e) => Err(e),
    }
}

/// Removes whatever is left and releases the id; an error names what could not be removed.
fn finish(root: &std::path::Path, id: &str, claim: container::IdClaim) -> Result<()> {
    let footprint = Footprint::new(root, id);
    if container::test_switches::unsafe_enabled("delete-sweep") {
        // libcontainer's delete alone, for the faults test's negative control.
        let _ = std::fs::remove_dir_all(footprint.state_dir());
        let _ = std::fs::remove_file(footprint.lock_file());
        return Ok(());
    }
    let removed = footprint.remove();
    drop(claim);
    removed.with_context(|| format!("cannot delete container {id}"))
}
