//! `imgtool export DIR [-o FILE]`: the flattened root filesystem of a bundle as one tar.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use imgtool::archive::{export, output::Output};

use super::Globals;

/// Export a bundle's root filesystem (DIR/rootfs, or config.json's root.path) as a tar.
#[derive(clap::Args, Debug)]
pub struct Export {
    /// The bundle directory.
    #[arg(value_name = "DIR")]
    pub bundle: PathBuf,
    /// Tar file to write (default: stdout, when it is not a terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// The bundle's root: config.json's root.path (relative to the bundle) if it names one.
fn rootfs_of(bundle: &Path) -> Result<PathBuf> {
    if !bundle.is_dir() {
        bail!("{} is not a bundle directory", bundle.display());
    }
    let config = bundle.join("config.json");
    if let Ok(text) = std::fs::read(&config) {
        let v: serde_json::Value = serde_json::from_slice(&text)
            .with_context(|| format!("invalid {}", config.display()))?;
        if let Some(p) = v["root"]["path"].as_str() {
            return Ok(bundle.join(p));
        }
    }
    Ok(bundle.join("rootfs"))
}

impl Export {
    pub fn run(self, g: &Globals) -> Result<()> {
        let rootfs = rootfs_of(&self.bundle).context("export")?;
        let mut out = Output::create(self.output.as_deref()).map_err(|e| anyhow!("export: {e}"))?;
        let stats = export::write_rootfs_tar(&rootfs, out.writer()).context("export")?;
        out.commit().map_err(|e| anyhow!("export: {e}"))?;
        if stats.skipped_sockets > 0 && !g.quiet {
            eprintln!(
                "export: left out {} socket(s): tar cannot hold them",
                stats.skipped_sockets
            );
        }
        Ok(())
    }
}
