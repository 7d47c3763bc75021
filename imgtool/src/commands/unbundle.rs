//! `imgtool unbundle`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Unbundle {}

impl Unbundle {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("unbundle: not implemented yet")
    }
}
