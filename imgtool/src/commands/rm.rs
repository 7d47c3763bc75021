//! `imgtool rm`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Rm {}

impl Rm {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("rm: not implemented yet")
    }
}
