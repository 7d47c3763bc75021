//! `imgtool gc`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Gc {}

impl Gc {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("gc: not implemented yet")
    }
}
