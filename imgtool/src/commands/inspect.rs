//! `imgtool inspect REF`: the stored manifest and config as JSON.

use anyhow::{Context, Result};
use serde_json::json;

use super::Globals;

/// Print a stored image's name, digest, manifest and config as one JSON object.
#[derive(clap::Args, Debug)]
pub struct Inspect {
    pub image: String,
}

impl Inspect {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        // Keep gc (after a concurrent rm) from removing the blobs while they are read.
        let _op = store.lock_operation().context("inspect")?;
        let stored = store.find(&self.image)?;
        let img = store.load(&stored)?;
        let out = json!({
            "Name": stored.name,
            "Digest": stored.digest(),
            "Id": img.config_digest,
            "Manifest": img.manifest,
            "Config": img.config,
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        Ok(())
    }
}
