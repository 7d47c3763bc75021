//! `imgtool tag`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Tag {}

impl Tag {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("tag: not implemented yet")
    }
}
