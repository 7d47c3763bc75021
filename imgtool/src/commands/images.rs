//! `imgtool images`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Images {}

impl Images {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("images: not implemented yet")
    }
}
