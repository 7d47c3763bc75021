//! `spec`: write a starting config.json for a bundle, like `runc spec`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::oci_spec::runtime::Spec;

use crate::cli::Cli;

#[derive(Args, Debug)]
pub struct SpecArgs {
    /// Directory to write config.json into.
    #[arg(short = 'b', long, default_value = ".", value_name = "DIR")]
    pub bundle: PathBuf,
    /// Write a spec for a rootless container (user namespace mapping the caller).
    #[arg(long)]
    pub rootless: bool,
}

pub fn run(_cli: &Cli, args: SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    if path.exists() {
        bail!("file {} exists: remove it first", path.display());
    }
    let mut spec = if args.rootless {
        Spec::rootless(
            nix::unistd::getuid().as_raw(),
            nix::unistd::getgid().as_raw(),
        )
    } else {
        Spec::default()
    };
    spec.set_version(libcontainer::oci_spec::runtime::VERSION.to_string());
    spec.set_hostname(Some("runtime".to_string()));
    if let Some(process) = spec.process_mut() {
        // runc's starting point: an interactive shell.
        process.set_terminal(Some(true));
    }
    let text = serde_json::to_string_pretty(&runc_capabilities(&spec)?)?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The spec as JSON with runc's capabilities: no inheritable set (runc dropped it for
/// CVE-2022-29162: inheritable capabilities let a program with file capabilities gain them
/// across execve) and each set sorted, as runc lists them (oci-spec holds them in a
/// HashSet, whose order changes from run to run).
fn runc_capabilities(spec: &Spec) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(spec)?;
    if let Some(caps) = value
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    {
        caps.remove("inheritable");
        for set in caps.values_mut() {
            if let Some(list) = set.as_array_mut() {
                list.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }
    Ok(value)
}
