//! `imgtool bundle REF DIR [options] [-- ARGS...]`: a runtime bundle of a stored image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::bundle::network::{NetworkMode, NetworkOptions};
use imgtool::bundle::options::parse_env;
use imgtool::bundle::resources::{self, ResourceOptions};
use imgtool::bundle::security::{self, SecurityOptions};
use imgtool::bundle::{create_bundle, BindMount, BundleOptions};
use imgtool::network::{etc, ports};

use super::Globals;

/// Unpack a stored image into DIR/rootfs and write DIR/config.json for `runtime run -b DIR`.
#[derive(clap::Args, Debug)]
pub struct Bundle {
    /// The image (as pulled: `busybox`, `host:port/repo:tag`, a digest or ID prefix).
    pub image: String,
    /// The bundle directory (created; an existing one must be empty).
    pub dir: PathBuf,
    /// Set an environment variable (NAME=VALUE, or NAME to copy it from here).
    #[arg(short = 'e', long = "env", value_name = "NAME=VALUE")]
    pub env: Vec<String>,
    /// Bind-mount a host path: HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    pub volumes: Vec<String>,
    /// The working directory inside the container.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    pub workdir: Option<String>,
    /// The user (name, uid, user:group, uid:gid), resolved in the image's /etc/passwd.
    #[arg(short = 'u', long = "user")]
    pub user: Option<String>,
    /// The container's hostname (default: the image's repository name).
    #[arg(long)]
    pub hostname: Option<String>,
    /// Give the process a terminal.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// A config for an unprivileged user (user namespace mapping the caller to root).
    #[arg(long)]
    pub rootless: bool,
    /// Replace the image's entrypoint ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// A plain copied rootfs instead of an overlay of the cached layers.
    #[arg(long)]
    pub copy: bool,
    /// The network: none, host, bridge or bridge:NAME (a network of networks.json).
    /// Default: bridge (none with --rootless).
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// networks.json (default: beside the registries config, /etc/imgtool/networks.json
    /// for root).
    #[arg(long, env = "IMGTOOL_NETWORK_CONFIG", value_name = "FILE")]
    pub network_config: Option<PathBuf>,
    /// Publish a container port on the host: [IP:]HOST:CTR[/tcp|udp] (bridge only).
    #[arg(short = 'p', long = "publish", value_name = "[IP:]HOST:CTR[/PROTO]")]
    pub publish: Vec<String>,
    /// Add a line to /etc/hosts.
    #[arg(long = "add-host", value_name = "NAME:IP")]
    pub add_host: Vec<String>,
    /// A DNS server for /etc/resolv.conf (replaces the host's).
    #[arg(long = "dns", value_name = "IP")]
    pub dns: Vec<String>,
    /// Add a capability to docker's default set (or ALL).
    #[arg(long = "cap-add", value_name = "CAP")]
    pub cap_add: Vec<String>,
    /// Drop a capability from docker's default set (or ALL).
    #[arg(long = "cap-drop", value_name = "CAP")]
    pub cap_drop: Vec<String>,
    /// seccomp=unconfined, seccomp=FILE, no-new-privileges[=true|false].
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    /// Mount the root filesystem read-only.
    #[arg(long = "read-only")]
    pub read_only: bool,
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short = 'm', long, value_name = "SIZE")]
    pub memory: Option<String>,
    /// CPU limit, in CPUs (e.g. 0.5).
    #[arg(long, value_name = "N")]
    pub cpus: Option<String>,
    /// The most processes the container may have (0 or -1: no limit).
    #[arg(long = "pids-limit", value_name = "N")]
    pub pids_limit: Option<String>,
    /// The command to run instead of the image's Cmd.
    #[arg(last = true)]
    pub args: Vec<String>,
}

impl Bundle {
    pub fn run(self, g: &Globals) -> Result<()> {
        let mut env = Vec::new();
        for e in &self.env {
            env.extend(parse_env(e)?);
        }
        let binds = self
            .volumes
            .iter()
            .map(|v| BindMount::parse(v))
            .collect::<Result<Vec<_>, _>>()?;
        let network = NetworkOptions {
            mode: self
                .network
                .as_deref()
                .map(NetworkMode::parse)
                .transpose()?,
            config: self.network_config,
            publish: ports::parse_all(&self.publish)?,
            add_hosts: self
                .add_host
                .iter()
                .map(|h| etc::HostEntry::parse(h))
                .collect::<Result<_, _>>()?,
            dns: etc::parse_dns(&self.dns)?,
        };
        let mut security = SecurityOptions {
            capabilities: security::capabilities(&self.cap_add, &self.cap_drop)?,
            read_only: self.read_only,
            ..Default::default()
        };
        security::apply_security_opts(&mut security, &self.security_opt)?;
        if let Some(h) = &self.hostname {
            etc::check_hostname(h)?;
        }
        let resources = ResourceOptions {
            memory: self
                .memory
                .as_deref()
                .map(resources::parse_memory)
                .transpose()?,
            cpus: self
                .cpus
                .as_deref()
                .map(resources::parse_cpus)
                .transpose()?,
            pids_limit: self
                .pids_limit
                .as_deref()
                .map(resources::parse_pids)
                .transpose()?,
        };
        let opts = BundleOptions {
            network,
            security,
            resources,
            env,
            binds,
            workdir: self.workdir,
            user: self.user,
            hostname: self.hostname,
            tty: self.tty,
            rootless: self.rootless,
            entrypoint: self.entrypoint,
            args: self.args,
            copy: self.copy,
        };
        let store = g.open_store()?;
        let marker = create_bundle(&store, &self.image, &self.dir, &opts)
            .with_context(|| format!("cannot bundle {} into {}", self.image, self.dir.display()))?;
        if !g.quiet {
            report(&store, &self.dir, &marker)?;
        }
        Ok(())
    }
}

/// Says what was made, and warns (as docker does) when the image is for another
/// platform than this host's.
fn report(
    store: &imgtool::store::Store,
    dir: &std::path::Path,
    m: &imgtool::bundle::BundleMarker,
) -> Result<()> {
    let platform = store
        .read_blob(&m.config_digest)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .map(|c| {
            let mut p = format!(
                "{}/{}",
                c["os"].as_str().unwrap_or("?"),
                c["architecture"].as_str().unwrap_or("?")
            );
            if let Some(v) = c["variant"].as_str() {
                p = format!("{p}/{v}");
            }
            p
        });
    let host = format!("linux/{}", imgtool::store::host_architecture());
    if let Some(p) = platform
        .as_ref()
        .filter(|p| !p.starts_with(&format!("{host}/")) && **p != host)
    {
        eprintln!(
            "imgtool: warning: the image's platform ({p}) does not match this host's ({host}); it runs only under emulation"
        );
    }
    let rootfs = match m.mode {
        imgtool::bundle::RootfsMode::Overlay => format!(
            "an overlay of {} cached layer{}",
            m.chain_ids.len(),
            if m.chain_ids.len() == 1 { "" } else { "s" }
        ),
        imgtool::bundle::RootfsMode::Copy => format!(
            "a copy of {} layer{}",
            m.diff_ids.len(),
            if m.diff_ids.len() == 1 { "" } else { "s" }
        ),
    };
    crate::outln!(
        "{}: rootfs ({rootfs}) and config.json of {} {}{}",
        dir.display(),
        m.image,
        m.manifest_digest,
        platform.map(|p| format!(" ({p})")).unwrap_or_default()
    )?;
    Ok(())
}
