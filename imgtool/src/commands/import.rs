//! `imgtool import FILE|- REF [--change …] [-m MSG] [--compression gzip|zstd|none]`: a
//! single-layer image from a root filesystem tar (plain, gzip or zstd).

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context, Result};
use imgtool::archive::sniff_compression;
use imgtool::image::{build, change};
use imgtool::layer::Compression;
use imgtool::reference;

use super::Globals;

/// Import a root filesystem tar as a single-layer image.
#[derive(clap::Args, Debug)]
pub struct Import {
    /// The tar (`-` for stdin); may be gzip- or zstd-compressed.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The name to tag the image with.
    #[arg(value_name = "REF")]
    pub reference: String,
    /// A Dockerfile instruction applied to the config: ENV, CMD, ENTRYPOINT, WORKDIR,
    /// USER, LABEL, EXPOSE, STOPSIGNAL, VOLUME (repeatable).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    pub changes: Vec<String>,
    /// A comment for the layer's history entry.
    #[arg(short, long, value_name = "MSG")]
    pub message: Option<String>,
    /// How the layer is compressed in the store.
    #[arg(long, default_value = "gzip", value_parser = parse_compression, value_name = "gzip|zstd|none")]
    pub compression: Compression,
}

fn parse_compression(s: &str) -> Result<Compression, String> {
    match s {
        "gzip" => Ok(Compression::Gzip),
        "zstd" => Ok(Compression::Zstd),
        "none" => Ok(Compression::None),
        other => Err(format!(
            "unknown compression {other:?}: use gzip, zstd or none"
        )),
    }
}

/// Copies what the tar parser reads into the layer, so the tar is validated as it is stored.
struct Tee<R, W> {
    inner: R,
    sink: W,
}

impl<R: Read, W: std::io::Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.sink.write_all(&buf[..n])?;
        Ok(n)
    }
}

impl Import {
    pub fn run(self, g: &Globals) -> Result<()> {
        // Everything a user typed is checked before anything is written.
        let target = reference::parse(&self.reference).context("import")?;
        if target.digest().is_some() {
            bail!("import: {} names a digest: give a tag", self.reference);
        }
        let name = reference::store_name(&target);
        let changes = change::parse_all(&self.changes).context("import")?;
        let (input, label): (Box<dyn Read>, String) = if self.file.as_os_str() == "-" {
            (Box::new(std::io::stdin().lock()), "stdin".into())
        } else {
            let f = File::open(&self.file)
                .with_context(|| format!("import: cannot open {}", self.file.display()))?;
            (Box::new(f), self.file.display().to_string())
        };
        let mut input = BufReader::with_capacity(1 << 17, input);
        let head = std::io::BufRead::fill_buf(&mut input)
            .with_context(|| format!("import: cannot read {label}"))?;
        let plain = sniff_compression(head)
            .decoder(input)
            .with_context(|| format!("import: cannot read {label}"))?;

        let store = g.open_store()?;
        // gc must not take the layer before the image is tagged.
        let _op = store.lock_operation().context("import")?;
        let mut layer = build::LayerWriter::new(&store, self.compression).context("import")?;
        {
            let mut tee = Tee {
                inner: plain,
                sink: &mut layer,
            };
            // The tar crate's messages may quote raw header bytes: keep only plain text.
            let bad = |e: std::io::Error| {
                let msg = e.to_string();
                if msg.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
                    anyhow!("import: {label} is not a valid tar archive: {msg}")
                } else {
                    anyhow!("import: {label} is not a valid tar archive")
                }
            };
            let mut archive = tar::Archive::new(&mut tee);
            let mut entries = 0usize;
            for entry in archive.entries().map_err(bad)? {
                let mut entry = entry.map_err(bad)?;
                entry.path().map_err(bad)?;
                std::io::copy(&mut entry, &mut std::io::sink()).map_err(bad)?;
                entries += 1;
            }
            // The end-of-archive blocks and any padding belong to the layer too.
            std::io::copy(&mut tee, &mut std::io::sink()).map_err(bad)?;
            if entries == 0 {
                bail!("import: {label} is not a valid tar archive: it has no entries");
            }
        }
        let layer = layer.finish().context("import")?;

        let mut config = build::new_config();
        let mut exec = config.config().clone().unwrap_or_default();
        change::apply(&mut exec, &changes);
        config.set_config(Some(exec));
        let created_by = format!("imgtool import {}", self.file.display());
        build::append_layer(
            &mut config,
            &layer.diff_id,
            build::history_entry(&created_by, self.message.as_deref(), false),
        );
        let image =
            build::store_image(&store, &config, vec![layer.descriptor]).context("import")?;
        store.tag(&name, &image.manifest).context("import")?;
        crate::outln!("{}", image.manifest.digest())?;
        Ok(())
    }
}
