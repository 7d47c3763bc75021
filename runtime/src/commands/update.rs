//! `update`: change a running container's resource limits. Limits come from a
//! runtime-spec `linux.resources` JSON (`-r FILE`, `-r -` for stdin, or podman's
//! `--resources=FILE`) and/or the individual flags, flags winning; only the controllers
//! named are touched.

use std::io::Read;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use libcgroups::common::{create_cgroup_manager, CgroupConfig, CgroupManager, ControllerOpt};
use libcontainer::config::YoukiConfig;
use libcontainer::container::ContainerStatus;
use libcontainer::oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::cli::Cli;
use crate::container;

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Resources JSON (runtime-spec linux.resources); "-" reads stdin.
    #[arg(short = 'r', long = "resources", value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Memory limit, bytes or with a k/m/g suffix (-1 for unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1 for unlimited).
    #[arg(long = "memory-swap", allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long = "memory-reservation", allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Accepted for runc compatibility; kernel memory limits are deprecated and ignored.
    #[arg(long = "kernel-memory", hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// CPU shares (relative weight). runc spells it --cpu-share; both are accepted.
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    /// CPU CFS period in microseconds.
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota in microseconds (-1 for unlimited).
    #[arg(long = "cpu-quota", allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// Realtime period in microseconds.
    #[arg(long = "cpu-rt-period")]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds.
    #[arg(long = "cpu-rt-runtime", allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPUs allowed (e.g. 0-1).
    #[arg(long = "cpuset-cpus")]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes allowed.
    #[arg(long = "cpuset-mems")]
    pub cpuset_mems: Option<String>,
    /// Maximum number of pids (-1 for unlimited).
    #[arg(long = "pids-limit", allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO weight (10-1000).
    #[arg(long = "blkio-weight")]
    pub blkio_weight: Option<u16>,
    /// The container id.
    pub id: String,
}

/// Parses "1024", "64k", "64m", "1g" (docker's units, powers of 1024) and "-1".
fn parse_bytes(flag: &str, text: &str) -> Result<i64> {
    let t = text.trim().to_ascii_lowercase();
    if t == "-1" {
        return Ok(-1);
    }
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1i64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("--{flag} {text:?} is not a size (bytes, or with k/m/g)"))?;
    n.checked_mul(mult)
        .with_context(|| format!("--{flag} {text:?} is too large"))
}

fn read_resources(path: &PathBuf) -> Result<Value> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read resources from stdin")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
    }
    serde_json::from_str(&text)
        .with_context(|| format!("invalid resources JSON in {}", path.display()))
}

/// Sets `value` at `section.key` of the resources object.
fn put(obj: &mut Map<String, Value>, section: &str, key: &str, value: Value) {
    let entry = obj.entry(section.to_string()).or_insert_with(|| json!({}));
    if let Some(m) = entry.as_object_mut() {
        m.insert(key.to_string(), value);
    }
}

/// The resources the user asked for, as runtime-spec JSON.
fn requested(args: &UpdateArgs) -> Result<LinuxResources> {
    let mut value = match &args.resources {
        Some(path) => read_resources(path)?,
        None => json!({}),
    };
    let Some(obj) = value.as_object_mut() else {
        bail!("resources JSON must be an object");
    };
    if let Some(m) = &args.memory {
        put(obj, "memory", "limit", json!(parse_bytes("memory", m)?));
    }
    if let Some(m) = &args.memory_swap {
        put(obj, "memory", "swap", json!(parse_bytes("memory-swap", m)?));
    }
    if let Some(m) = &args.memory_reservation {
        put(
            obj,
            "memory",
            "reservation",
            json!(parse_bytes("memory-reservation", m)?),
        );
    }
    let cpu: [(&str, Option<Value>); 7] = [
        ("shares", args.cpu_shares.map(|v| json!(v))),
        ("period", args.cpu_period.map(|v| json!(v))),
        ("quota", args.cpu_quota.map(|v| json!(v))),
        ("realtimePeriod", args.cpu_rt_period.map(|v| json!(v))),
        ("realtimeRuntime", args.cpu_rt_runtime.map(|v| json!(v))),
        ("cpus", args.cpuset_cpus.clone().map(Value::from)),
        ("mems", args.cpuset_mems.clone().map(Value::from)),
    ];
    for (key, v) in cpu {
        if let Some(v) = v {
            put(obj, "cpu", key, v);
        }
    }
    if let Some(p) = args.pids_limit {
        put(obj, "pids", "limit", json!(p));
    }
    if let Some(w) = args.blkio_weight {
        put(obj, "blockIO", "weight", json!(w));
    }
    serde_json::from_value(value).context("invalid resources")
}

pub fn run(cli: &Cli, args: UpdateArgs) -> Result<()> {
    let resources = requested(&args)?;
    let root = container::state_root(cli);
    let c = container::load(&root, &args.id)?;
    if c.status() == ContainerStatus::Stopped {
        bail!(container::client_errors::NOT_RUNNING);
    }
    let config = YoukiConfig::load(&c.root)
        .with_context(|| format!("cannot read the saved config of container {}", args.id))?;
    let manager = create_cgroup_manager(CgroupConfig {
        cgroup_path: config.cgroup_path,
        systemd_cgroup: c.systemd(),
        container_name: args.id.clone(),
    })
    .with_context(|| format!("cannot open the cgroup of container {}", args.id))?;
    manager
        .apply(&ControllerOpt {
            resources: &resources,
            disable_oom_killer: false,
            oom_score_adj: None,
            freezer_state: None,
        })
        .with_context(|| format!("cannot update the resources of container {}", args.id))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_bytes;

    #[test]
    fn sizes_with_units() {
        assert_eq!(parse_bytes("m", "1024").unwrap(), 1024);
        assert_eq!(parse_bytes("m", "64m").unwrap(), 64 << 20);
        assert_eq!(parse_bytes("m", "1G").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("m", "2kb").unwrap(), 2048);
        assert_eq!(parse_bytes("m", "-1").unwrap(), -1);
        assert!(parse_bytes("m", "lots").is_err());
    }
}
