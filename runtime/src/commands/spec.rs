//! `spec`: write a starting config.json for a bundle, like `runc spec`.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcontainer::oci_spec::runtime::{LinuxNamespaceType, Spec};

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
        bail!(
            "File config.json exists. Remove it first: {}",
            path.display()
        );
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
    if !args.rootless {
        // (runc's rootless spec has no resources at all; nor has ours.)
        deny_all_devices(&mut spec)?;
    }
    // runc's default spec has no cgroup namespace (oci-spec-rs's has one): configs that
    // add their own, as runc's tests and some tools do, would otherwise list it twice.
    if let Some(linux) = spec.linux_mut() {
        if let Some(namespaces) = linux.namespaces().clone() {
            let kept = namespaces
                .into_iter()
                .filter(|ns| ns.typ() != LinuxNamespaceType::Cgroup)
                .collect();
            linux.set_namespaces(Some(kept));
        }
    }
    let mut value = runc_capabilities(&spec)?;
    rbind_first(&mut value);
    let text = serde_json::to_string_pretty(&value)?;
    std::fs::write(&path, text + "\n")
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// runc's rootless spec lists `rbind` first in the options of its /sys bind mount
/// (`rbind,nosuid,noexec,nodev,ro`); oci-spec appends it. The same mount either way; the
/// order is runc's so that a spec compared as text is the same.
fn rbind_first(spec: &mut serde_json::Value) {
    let Some(mounts) = spec.get_mut("mounts").and_then(|m| m.as_array_mut()) else {
        return;
    };
    for mount in mounts {
        if let Some(options) = mount.get_mut("options").and_then(|o| o.as_array_mut()) {
            if let Some(i) = options.iter().position(|o| o == "rbind") {
                let rbind = options.remove(i);
                options.insert(0, rbind);
            }
        }
    }
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

/// runc's spec starts the device rules with deny-all (`{"allow": false, "access": "rwm"}`).
/// The runtime applies deny-all first whatever the config lists (docs/SECURITY.md); the rule
/// is written so the file says so, for runc and other runtimes reading it too.
fn deny_all_devices(spec: &mut Spec) -> Result<()> {
    use libcontainer::oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxResources};
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .context("cannot build the deny-all device rule")?;
    if let Some(linux) = spec.linux_mut() {
        let mut resources = linux
            .resources()
            .clone()
            .unwrap_or_else(LinuxResources::default);
        resources.set_devices(Some(vec![deny_all]));
        linux.set_resources(Some(resources));
    }
    Ok(())
}
