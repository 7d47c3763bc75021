//! `imgtool pull`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Pull {}

impl Pull {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("pull: not implemented yet")
    }
}
