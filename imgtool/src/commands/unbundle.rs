//! `imgtool unbundle DIR`: unmount and remove a bundle made by `imgtool bundle`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::bundle::remove_bundle;

use super::Globals;

/// Unmount a bundle's rootfs and remove the bundle directory.
#[derive(clap::Args, Debug)]
pub struct Unbundle {
    /// Bundle directories made by `imgtool bundle`.
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
}

impl Unbundle {
    pub fn run(self, _g: &Globals) -> Result<()> {
        for dir in &self.dirs {
            remove_bundle(dir).with_context(|| format!("cannot unbundle {}", dir.display()))?;
        }
        Ok(())
    }
}
