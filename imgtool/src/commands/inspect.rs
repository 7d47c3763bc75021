//! `imgtool inspect`.

use anyhow::{bail, Result};

use super::Globals;

/// (being written)
#[derive(clap::Args, Debug)]
pub struct Inspect {}

impl Inspect {
    pub fn run(self, _g: &Globals) -> Result<()> {
        bail!("inspect: not implemented yet")
    }
}
