//! `imgtool bundle`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Bundle {}

impl Bundle {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("bundle: not implemented yet")
    }
}
