//! `ps`: the processes of a container. `--format json` prints a bare array of host pids
//! (what containerd's shim parses); the table runs ps(1) with the given options and keeps
//! the header and the rows whose PID column belongs to the container, as runc does.

use std::collections::HashSet;
use std::process::Command;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager};
use libcontainer::config::YoukiConfig;

use crate::cli::Cli;
use crate::container;

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Output format: table or json.
    #[arg(short = 'f', long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
    /// The container id.
    pub id: String,
    /// Options for ps(1) (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// Host pids of every process in the container's cgroup.
pub fn container_pids(root: &std::path::Path, id: &str) -> Result<Vec<i32>> {
    let c = container::load(root, id)?;
    let config = YoukiConfig::load(&c.root)
        .with_context(|| format!("cannot read the saved config of container {id}"))?;
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: id.to_string(),
    })
    .with_context(|| format!("cannot open the cgroup of container {id}"))?;
    let mut pids: Vec<i32> = manager
        .get_all_pids()
        .with_context(|| format!("cannot list the processes of container {id}"))?
        .into_iter()
        .map(|p| p.as_raw())
        .collect();
    pids.sort_unstable();
    Ok(pids)
}

pub fn run(cli: &Cli, args: PsArgs) -> Result<()> {
    let root = container::state_root(cli);
    let pids = container_pids(&root, &args.id)?;
    if args.format == "json" {
        crate::output::outln!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let ps_args = if args.ps_args.is_empty() {
        vec!["-ef".to_string()]
    } else {
        args.ps_args.clone()
    };
    let out = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("cannot run ps")?;
    if !out.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(pid_col) = header.split_whitespace().position(|h| h == "PID") else {
        bail!(
            "ps output has no PID column (options {})",
            ps_args.join(" ")
        );
    };
    let wanted: HashSet<i32> = pids.into_iter().collect();
    crate::output::outln!("{header}");
    for line in lines {
        let pid = line
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| wanted.contains(&p)) {
            crate::output::outln!("{line}");
        }
    }
    Ok(())
}
