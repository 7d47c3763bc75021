//! `state`: the runtime-spec state of a container, plus runc's `rootfs`, `created` and
//! `owner` fields that tools reading runc's output expect.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use libcontainer::container::{Container, ContainerStatus};
use serde::Serialize;

use crate::cli::Cli;
use crate::container;

#[derive(Args, Debug)]
pub struct StateArgs {
    /// The container id.
    pub id: String,
}

/// What `state` and `list --format json` print for one container, in runc's field order
/// (annotations, sorted by key as Go writes a map, come before owner).
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct StateView {
    pub oci_version: String,
    pub id: String,
    pub pid: i32,
    pub status: String,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    pub owner: String,
}

impl StateView {
    pub fn of(c: &Container) -> Self {
        let status = c.status();
        let pid = match status {
            ContainerStatus::Stopped => 0,
            _ => c.pid().map_or(0, |p| p.as_raw()),
        };
        let rootfs = rootfs_of(c);
        Self {
            oci_version: libcontainer::oci_spec::runtime::VERSION.to_string(),
            id: c.id().to_string(),
            pid,
            status: status.to_string().to_lowercase(),
            bundle: c.bundle().clone(),
            rootfs,
            created: c
                .created()
                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
                .unwrap_or_default(),
            owner: c
                .creator()
                .map(|o| o.to_string_lossy().into_owned())
                .unwrap_or_default(),
            annotations: c
                .state
                .annotations
                .as_ref()
                .filter(|a| !a.is_empty())
                .map(|a| a.iter().map(|(k, v)| (k.clone(), v.clone())).collect()),
        }
    }
}

/// The container's root filesystem as config.json names it, resolved against the bundle.
fn rootfs_of(c: &Container) -> PathBuf {
    let bundle = c.bundle();
    let path = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t).ok())
        .and_then(|v| v["root"]["path"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("rootfs"));
    if path.is_absolute() {
        path
    } else {
        bundle.join(path)
    }
}

pub fn run(cli: &Cli, args: StateArgs) -> Result<()> {
    let root = container::state_root(cli);
    let c = container::load(&root, &args.id)?;
    let mut view = StateView::of(&c);
    // runc's `state` leaves the owner empty; only `list` fills it in.
    view.owner.clear();
    crate::output::outln!("{}", serde_json::to_string_pretty(&view)?);
    Ok(())
}
