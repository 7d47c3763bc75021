//! `imgtool gc [--dry-run]`: drop what no tagged image, bundle or running container uses.

use anyhow::Result;

use super::Globals;

/// Remove unreferenced blobs, unused layer caches and leftovers of interrupted operations.
#[derive(clap::Args, Debug)]
pub struct Gc {
    /// Report what would be removed, and remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl Gc {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        let r = if self.dry_run {
            store.gc_dry_run()?
        } else {
            store.gc()?
        };
        if !g.quiet {
            crate::outln!(
                "{} {} blobs ({}), {} layer caches, {} temp entries, {} stale bundle records{}",
                if self.dry_run {
                    "would remove"
                } else {
                    "removed"
                },
                r.blobs,
                human_size(r.blob_bytes),
                r.layer_caches,
                r.temp_entries,
                r.stale_bundles,
                match r.layer_caches_in_use {
                    0 => String::new(),
                    n => format!(
                        "; kept {n} layer cache{} that mounted containers use",
                        if n == 1 { "" } else { "s" }
                    ),
                }
            )?;
        }
        Ok(())
    }
}

/// Sizes as the docker CLI prints them in `images` and `history` (decimal units, three
/// significant digits: `4.26MB`, `77.9MB`, `1.2GB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1000.0 && unit < UNITS.len() - 1 {
        v /= 1000.0;
        unit += 1;
    }
    // Go's %.3g: three significant digits, trailing zeros dropped.
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let text = format!("{v:.digits$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::human_size;

    #[test]
    fn sizes_as_docker_shows_them() {
        // docker's units.HumanSizeWithPrecision(size, 3).
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_132), "4.26MB");
        assert_eq!(human_size(77_863_718), "77.9MB");
        assert_eq!(human_size(1_200_000_000), "1.2GB");
        assert_eq!(human_size(124_300_000), "124MB");
    }
}
