//! `imgtool commit DIR REF`: a bundle's changes as a new image.

use std::path::PathBuf;

use anyhow::{Context, Result};
use imgtool::commit::{commit_bundle, CommitOptions};
use imgtool::image::change;
use imgtool::layer::Compression;
use imgtool::reference;

use super::Globals;

#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum LayerCompression {
    Gzip,
    Zstd,
    None,
}

/// Make the changes in a bundle's rootfs since `imgtool bundle` a new layer of its image.
#[derive(clap::Args, Debug)]
pub struct Commit {
    /// A bundle made by `imgtool bundle`.
    pub dir: PathBuf,
    /// The new image's name.
    pub image: String,
    /// A comment for the history entry.
    #[arg(short = 'm', long = "message")]
    pub message: Option<String>,
    /// The author ("Name <email>").
    #[arg(short = 'a', long = "author")]
    pub author: Option<String>,
    /// A Dockerfile instruction applied to the config (ENV, CMD, ENTRYPOINT, WORKDIR,
    /// USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME).
    #[arg(short = 'c', long = "change")]
    pub changes: Vec<String>,
    /// How to compress the new layer.
    #[arg(long, value_enum, default_value = "gzip")]
    pub compression: LayerCompression,
}

impl Commit {
    pub fn run(self, _g: &Globals) -> Result<()> {
        let changes = change::parse_all(&self.changes)?;
        let name = reference::store_name(&reference::parse(&self.image)?);
        let opts = CommitOptions {
            message: self.message,
            author: self.author,
            changes,
            compression: match self.compression {
                LayerCompression::Gzip => Compression::Gzip,
                LayerCompression::Zstd => Compression::Zstd,
                LayerCompression::None => Compression::None,
            },
        };
        let done = commit_bundle(&self.dir, &name, &opts)
            .with_context(|| format!("cannot commit {}", self.dir.display()))?;
        crate::outln!("{} {}", done.name, done.manifest.digest())?;
        Ok(())
    }
}
