//! The layer cache: each layer unpacked once into `imgtool/layers/<chain-id>`, ready to be
//! an overlay lower directory. A layer's directory is the overlay *upper* produced by
//! applying its tar on top of its parents, so whiteouts and opaque directories are in
//! overlayfs form and hardlinks to files of lower layers work. The cache is keyed by the
//! ChainID (image-spec config.md): the same layer on different parents differs.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};

use super::{LoadedImage, Store, StoreError};
use crate::layer::{apply_layer, ApplyOptions, Compression};
use crate::mount;

/// ChainIDs of a list of diff_ids (bottom first): `chain(n) = sha256(chain(n-1) + " " + diff(n))`.
pub fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = match out.last() {
            None => d.clone(),
            Some(prev) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{prev} {d}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// How much decompressed data one message between the two stages carries.
const CHUNK: usize = 1 << 20;

/// The applier's end of the channel from the decompressing thread. It also hashes the
/// stream for the diff_id check: the decompressing thread is the busier of the two.
struct ChannelReader {
    rx: mpsc::Receiver<io::Result<Vec<u8>>>,
    current: Vec<u8>,
    pos: usize,
    hasher: Sha256,
}

impl ChannelReader {
    /// Reads what is left (tar padding after the end marker) and returns the stream's
    /// digest, `sha256:<hex>`.
    fn finish(mut self) -> io::Result<String> {
        io::copy(&mut self, &mut io::sink())?;
        Ok(format!("sha256:{}", hex::encode(self.hasher.finalize())))
    }
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.current.len() {
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    self.hasher.update(&chunk);
                    self.current = chunk;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0), // the stream ended
            }
        }
        let n = buf.len().min(self.current.len() - self.pos);
        buf[..n].copy_from_slice(&self.current[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Store {
    /// Where the cache of the layer with this ChainID lives.
    pub fn layer_dir(&self, chain_id: &str) -> PathBuf {
        let hex = chain_id.strip_prefix("sha256:").unwrap_or(chain_id);
        self.root().join("imgtool/layers").join(hex)
    }

    /// Applies layer `index` of `image` to `root` (decompressing by media type) and
    /// checks that the uncompressed stream matches the config's diff_id.
    pub fn apply_image_layer(
        &self,
        image: &LoadedImage,
        index: usize,
        root: &Path,
    ) -> Result<(), StoreError> {
        let desc = &image.manifest.layers()[index];
        apply_compressed(
            Box::new(self.open_blob(desc.digest().as_ref())?),
            desc.media_type().as_ref(),
            desc.digest().as_ref(),
            &image.diff_ids()[index],
            root,
        )
    }

    /// Makes sure every layer of `image` is in the cache and returns their directories,
    /// bottom first. Needs overlay support (see [`mount::overlay_supported`]).
    pub fn ensure_layer_cache(&self, image: &LoadedImage) -> Result<Vec<PathBuf>, StoreError> {
        let layers = image.manifest.layers();
        self.build_layer_cache_from(layers, image.diff_ids(), |i| {
            Ok(Box::new(self.open_blob(layers[i].digest().as_ref())?))
        })
    }

    /// Builds the cache of `layers` (bottom first, with their `diff_ids`) from `blobs`, a
    /// reader of each layer's compressed bytes, skipping layers already cached, and
    /// returns their directories. A pull calls this while the blobs are still
    /// downloading (see [`super::feed`]).
    pub fn build_layer_cache_from(
        &self,
        layers: &[Descriptor],
        diff_ids: &[String],
        mut blobs: impl FnMut(usize) -> Result<Box<dyn Read + Send>, StoreError>,
    ) -> Result<Vec<PathBuf>, StoreError> {
        if layers.len() != diff_ids.len() {
            return Err(StoreError::Corrupt(format!(
                "the image has {} layers but its config lists {} diff_ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let chains = chain_ids(diff_ids);
        let mut dirs: Vec<PathBuf> = Vec::with_capacity(chains.len());
        for (i, chain) in chains.iter().enumerate() {
            let dir = self.layer_dir(chain);
            if !dir.exists() {
                let desc = &layers[i];
                self.build_layer(&dirs, &dir, |root| {
                    apply_compressed(
                        blobs(i)?,
                        desc.media_type().as_ref(),
                        desc.digest().as_ref(),
                        &diff_ids[i],
                        root,
                    )
                })?;
            }
            dirs.push(dir);
        }
        Ok(dirs)
    }

    /// Builds one layer's cache directory in a temp dir, `apply`ing the layer on top of
    /// `parents`, and renames it into place; a process that loses the race to another
    /// building the same layer drops its copy.
    fn build_layer(
        &self,
        parents: &[PathBuf],
        dest: &Path,
        apply: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let io_err = |path: &Path, e: io::Error| StoreError::Io {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let tmp = tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(self.root().join("imgtool/tmp"))
            .map_err(|e| io_err(dest, e))?;
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).map_err(|e| io_err(&upper, e))?;
        if parents.is_empty() {
            apply(&upper)?;
        } else {
            let work = tmp.path().join("work");
            let merged = tmp.path().join("merged");
            fs::create_dir(&work).map_err(|e| io_err(&work, e))?;
            fs::create_dir(&merged).map_err(|e| io_err(&merged, e))?;
            let lowers: Vec<PathBuf> = parents.iter().rev().cloned().collect();
            mount::mount_overlay_unsynced(&lowers, &upper, &work, &merged)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let applied = apply(&merged);
            let unmounted = mount::unmount(&merged);
            applied?;
            unmounted.map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        fs::create_dir_all(self.root().join("imgtool/layers")).map_err(|e| io_err(dest, e))?;
        match fs::rename(&upper, dest) {
            Ok(()) => Ok(()),
            Err(_) if dest.exists() => Ok(()),
            Err(e) => Err(io_err(dest, e)),
        }
    }
}

/// Applies one compressed layer stream to `root`, checking its diff_id. Two stages on
/// two cores: a thread decompresses and hashes the stream while this one writes the
/// files.
fn apply_compressed(
    blob: Box<dyn Read + Send>,
    media_type: &str,
    digest: &str,
    want_diff_id: &str,
    root: &Path,
) -> Result<(), StoreError> {
    let compression = Compression::from_media_type(media_type).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "layer {digest} has an unknown media type {media_type}"
        ))
    })?;
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    let decompress = std::thread::Builder::new()
        .name("decompress".into())
        .spawn(move || -> io::Result<()> {
            let mut decoder = compression.decoder(io::BufReader::with_capacity(1 << 20, blob))?;
            loop {
                let mut chunk = vec![0u8; CHUNK];
                let mut filled = 0;
                while filled < CHUNK {
                    match decoder.read(&mut chunk[filled..]) {
                        Ok(0) => break,
                        Ok(n) => filled += n,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        Err(e) => {
                            let _ = tx.send(Err(io::Error::new(e.kind(), e.to_string())));
                            return Err(e);
                        }
                    }
                }
                if filled == 0 {
                    return Ok(());
                }
                chunk.truncate(filled);
                if tx.send(Ok(chunk)).is_err() {
                    return Ok(()); // the applier stopped (an error): no one reads the rest
                }
            }
        })
        .map_err(|e| StoreError::Corrupt(format!("layer {digest}: cannot start a thread: {e}")))?;
    let mut stream = ChannelReader {
        rx,
        current: Vec::new(),
        pos: 0,
        hasher: Sha256::new(),
    };
    let applied = apply_layer(
        root,
        &mut stream,
        ApplyOptions {
            preserve_owners: nix::unistd::geteuid().is_root(),
        },
    );
    // Whatever follows the tar's end marker still counts for the diff_id; after a
    // failure, dropping our end stops the other thread.
    let hashed = match applied {
        Ok(_) => Some(stream.finish()),
        Err(_) => {
            drop(stream);
            None
        }
    };
    let decompressed = decompress
        .join()
        .map_err(|_| StoreError::Corrupt(format!("layer {digest}: decompression panicked")))?;
    applied.map_err(|e| StoreError::Layer {
        digest: digest.to_string(),
        message: e.to_string(),
    })?;
    decompressed.map_err(|e| StoreError::Corrupt(format!("layer {digest}: {e}")))?;
    let diff_id = hashed
        .unwrap_or_else(|| Ok(String::new()))
        .map_err(|e| StoreError::Corrupt(format!("layer {digest}: {e}")))?;
    if diff_id != want_diff_id {
        return Err(StoreError::DigestMismatch {
            expected: want_diff_id.to_string(),
            actual: diff_id,
            size: 0,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::chain_ids;

    #[test]
    fn chain_ids_follow_the_image_spec() {
        let a = "sha256:".to_string() + &"a".repeat(64);
        let b = "sha256:".to_string() + &"b".repeat(64);
        let chains = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(chains[0], a);
        // echo -n "sha256:aaa… sha256:bbb…" | sha256sum
        let expect = {
            use sha2::{Digest, Sha256};
            format!("sha256:{}", hex::encode(Sha256::digest(format!("{a} {b}"))))
        };
        assert_eq!(chains[1], expect);
    }
}
