//! `imgtool bundle REF DIR [options] [-- ARGS...]`: a runtime bundle of a stored image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::bundle::options::parse_env;
use imgtool::bundle::{create_bundle, BindMount, BundleOptions};

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
        let opts = BundleOptions {
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
