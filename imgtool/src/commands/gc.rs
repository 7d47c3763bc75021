//! `imgtool gc`: drop what no tagged image or live bundle uses.

use anyhow::Result;

use super::Globals;

/// Remove unreferenced blobs, unused layer caches and leftovers of interrupted operations.
#[derive(clap::Args, Debug)]
pub struct Gc {}

impl Gc {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        let r = store.gc()?;
        if !g.quiet {
            println!(
                "removed {} blobs ({}), {} layer caches, {} temp entries, {} stale bundle records",
                r.blobs,
                human_size(r.blob_bytes),
                r.layer_caches,
                r.temp_entries,
                r.stale_bundles
            );
        }
        Ok(())
    }
}

/// Sizes as docker prints them (decimal units).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{v:.3}{}", UNITS[unit]).replace(".000", "")
    }
}
