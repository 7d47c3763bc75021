//! `imgtool load [-i FILE]`: stores the images of a docker-archive or oci-archive (the
//! format is detected), every blob verified, then tags them all at once.

use std::fs::File;
use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::archive;

use super::Globals;

/// Load images from a docker-archive or oci-archive (stdin by default).
#[derive(clap::Args, Debug)]
pub struct Load {
    /// Archive to read (`-` or none: stdin); may be gzip- or zstd-compressed.
    #[arg(short, long, value_name = "FILE")]
    pub input: Option<PathBuf>,
}

impl Load {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        let (input, label) = match self.input.as_deref().filter(|p| p.as_os_str() != "-") {
            Some(p) => (
                File::open(p).with_context(|| format!("load: cannot open {}", p.display()))?,
                p.display().to_string(),
            ),
            None => {
                let fd = std::io::stdin().lock();
                use std::os::fd::AsFd;
                let owned = fd
                    .as_fd()
                    .try_clone_to_owned()
                    .context("load: cannot read stdin")?;
                (File::from(owned), "stdin".to_string())
            }
        };
        let (_format, images) =
            archive::load(&store, input).with_context(|| format!("load {label}"))?;
        for img in images {
            if img.names.is_empty() {
                crate::outln!(
                    "Loaded image: {} (untagged)",
                    imgtool::store::identity::identity(&img.manifest).digest
                )?;
            }
            for n in img.names {
                crate::outln!("Loaded image: {n}")?;
            }
        }
        Ok(())
    }
}
