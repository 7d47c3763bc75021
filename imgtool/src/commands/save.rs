//! `imgtool save REF... [-o FILE] [--format docker-archive|oci-archive]`: writes stored
//! images as an archive `docker load`, `podman load` and skopeo read.

use std::path::PathBuf;

use anyhow::{anyhow, Context, Result};
use imgtool::archive::{output::Output, save, Format};

use super::Globals;

/// Save images to an archive (docker-archive by default, or oci-archive).
#[derive(clap::Args, Debug)]
pub struct Save {
    /// Images to save (`busybox`, `localhost/app:v1`, `name@sha256:…`).
    #[arg(required = true, value_name = "REF")]
    pub refs: Vec<String>,
    /// Archive file to write (default: stdout, when it is not a terminal).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Archive format.
    #[arg(
        long,
        default_value = "docker-archive",
        value_name = "docker-archive|oci-archive"
    )]
    pub format: Format,
}

impl Save {
    pub fn run(self, g: &Globals) -> Result<()> {
        let store = g.open_store()?;
        // gc must not remove blobs of an image untagged while it is being saved.
        let _op = store.lock_operation().context("save")?;
        let images = save::resolve(&store, &self.refs).context("save")?;
        for note in images.iter().filter_map(|i| i.note.as_ref()) {
            if !g.quiet {
                eprintln!("imgtool: note: {note}");
            }
        }
        let mut out = Output::create(self.output.as_deref()).map_err(|e| anyhow!("save: {e}"))?;
        save::write(&store, &images, self.format, out.writer()).context("save")?;
        out.commit().map_err(|e| anyhow!("save: {e}"))?;
        if !g.quiet {
            if let Some(path) = &self.output {
                let n = images.len();
                eprintln!(
                    "Saved {n} image{} to {}",
                    if n == 1 { "" } else { "s" },
                    path.display()
                );
            }
        }
        Ok(())
    }
}
