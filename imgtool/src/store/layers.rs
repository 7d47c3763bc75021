//! The layer cache: each layer unpacked once into `imgtool/layers/<chain-id>`, ready to be
//! an overlay lower directory. A layer's directory is the overlay *upper* produced by
//! applying its tar on top of its parents, so whiteouts and opaque directories are in
//! overlayfs form and hardlinks to files of lower layers work. The cache is keyed by the
//! ChainID (image-spec config.md): the same layer on different parents differs.
//!
//! Every layer read back from the store is checked twice while it streams: the
//! compressed bytes against the blob's digest (a blob changed on disk is refused) and
//! the tar against the config's diff_id. What a layer holds (its diff_id and its size as
//! docker counts it) is recorded in `imgtool/layer-info/<blob>` once verified, so
//! `images` can show docker's SIZE and a later pull need not verify the blob again.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::{LoadedImage, Store, StoreError};
use crate::layer::apply::tar_reason;
use crate::layer::{apply_layer, ApplyInto, ApplyOptions, ApplyStats, Compression};

/// What a verified layer blob holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// The digest of its uncompressed tar.
    pub diff_id: String,
    /// Its size as docker reports a layer's (see [`ApplyStats::size`]).
    pub size: u64,
}

/// Where a layer's compressed bytes come from, which says whether they still need
/// checking against the blob's digest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobSource {
    /// A stored blob, to be checked as it is read.
    Store,
    /// A download whose reader fails unless every byte arrived with the blob's digest
    /// ([`super::feed::BlobFeed`]): checking again would only cost a hash on the
    /// decompressing thread.
    VerifiedDownload,
}

/// Counts and hashes what is read through it (only counts, when `hash` is off).
struct Hashing<R> {
    inner: R,
    hasher: Option<Sha256>,
    read: u64,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: Read> Hashing<R> {
    fn new(inner: R) -> Self {
        Self::with(inner, true)
    }

    fn with(inner: R, hash: bool) -> Self {
        Self {
            inner,
            hasher: hash.then(Sha256::new),
            read: 0,
        }
    }

    /// Reads the rest and returns the digest of everything (empty when not hashed).
    fn finish(mut self) -> io::Result<(String, u64)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((
            self.hasher
                .map(|h| format!("sha256:{}", hex::encode(h.finalize())))
                .unwrap_or_default(),
            self.read,
        ))
    }
}

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
    /// checks the blob against its digest and the uncompressed stream against the
    /// config's diff_id.
    pub fn apply_image_layer(
        &self,
        image: &LoadedImage,
        index: usize,
        root: &Path,
    ) -> Result<(), StoreError> {
        let desc = &image.manifest.layers()[index];
        let stats = apply_compressed(
            Box::new(self.open_blob(desc.digest().as_ref())?),
            BlobSource::Store,
            desc,
            &image.diff_ids()[index],
            root,
            ApplyInto::Root,
        )
        .map_err(|e| self.explain(e))?;
        self.record_layer_info(desc.digest().as_ref(), &image.diff_ids()[index], stats.size);
        Ok(())
    }

    /// Hashes a stored blob: an error when its content no longer has its digest.
    pub fn check_blob(&self, digest: &str) -> Result<(), StoreError> {
        let (actual, size) = Hashing::new(self.open_blob(digest)?)
            .finish()
            .map_err(|e| StoreError::Corrupt(format!("blob {digest}: {e}")))?;
        if actual != digest {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} has changed on disk: its {size} bytes have digest {actual}"
            )));
        }
        Ok(())
    }

    /// A layer that failed to unpack because its stored blob changed on disk is
    /// reported as that, not as whatever the decompressor tripped over first.
    fn explain(&self, e: StoreError) -> StoreError {
        let digest = match &e {
            StoreError::Layer { digest, .. } => digest.clone(),
            StoreError::DiffIdMismatch { layer, .. } => layer.clone(),
            _ => return e,
        };
        match self.check_blob(&digest) {
            Err(changed @ StoreError::Corrupt(_)) => changed,
            _ => e,
        }
    }

    fn layer_info_path(&self, blob: &str) -> PathBuf {
        let hex = blob.strip_prefix("sha256:").unwrap_or(blob);
        self.root().join("imgtool/layer-info").join(hex)
    }

    /// What blob `blob` holds, if it was verified before.
    pub fn layer_info(&self, blob: &str) -> Option<LayerInfo> {
        serde_json::from_slice(&fs::read(self.layer_info_path(blob)).ok()?).ok()
    }

    /// Records what a verified layer blob holds (a hint: failing to write it only costs
    /// a later verification).
    pub fn record_layer_info(&self, blob: &str, diff_id: &str, size: u64) {
        let info = LayerInfo {
            diff_id: diff_id.to_string(),
            size,
        };
        let path = self.layer_info_path(blob);
        if self.layer_info(blob).as_ref() == Some(&info) {
            return;
        }
        if let (Some(dir), Ok(data)) = (path.parent(), serde_json::to_vec(&info)) {
            let _ = fs::create_dir_all(dir);
            let _ = crate::bundle::marker::write_atomic(&path, &data);
        }
    }

    /// Checks layer `desc` (stored) against its digest and `diff_id` and returns what it
    /// holds, without unpacking it; a blob verified before is not read again.
    pub fn verify_layer(&self, desc: &Descriptor, diff_id: &str) -> Result<LayerInfo, StoreError> {
        let blob = desc.digest().to_string();
        if let Some(info) = self.layer_info(&blob).filter(|i| i.diff_id == diff_id) {
            return Ok(info);
        }
        self.verify_layer_from(
            desc,
            diff_id,
            Box::new(self.open_blob(&blob)?),
            BlobSource::Store,
        )
        .map_err(|e| self.explain(e))
    }

    /// [`Store::verify_layer`] of the blob bytes `blob` reads (a download in progress).
    pub fn verify_layer_from(
        &self,
        desc: &Descriptor,
        diff_id: &str,
        blob: Box<dyn Read + Send>,
        source: BlobSource,
    ) -> Result<LayerInfo, StoreError> {
        let info = verify_compressed(blob, source, desc, diff_id)?;
        self.record_layer_info(desc.digest().as_ref(), diff_id, info.size);
        Ok(info)
    }

    /// Makes sure every layer of `image` is in the cache and returns their directories,
    /// bottom first. Needs overlay support (see [`crate::mount::overlay_supported`]).
    pub fn ensure_layer_cache(&self, image: &LoadedImage) -> Result<Vec<PathBuf>, StoreError> {
        let layers = image.manifest.layers();
        self.build_layer_cache_from(layers, image.diff_ids(), BlobSource::Store, |i| {
            Ok(Box::new(self.open_blob(layers[i].digest().as_ref())?))
        })
        .map_err(|e| self.explain(e))
    }
}

/// The decompressor of `desc`'s media type, or an error naming it.
fn compression_of(desc: &Descriptor) -> Result<Compression, StoreError> {
    let media_type = desc.media_type().to_string();
    Compression::from_media_type(&media_type).ok_or_else(|| {
        StoreError::Corrupt(format!(
            "layer {} has an unknown media type {media_type}",
            desc.digest()
        ))
    })
}

/// The checks every layer stream passes once read to its end: the compressed bytes have
/// the blob's digest and size, the tar has the config's diff_id.
fn check_digests(
    desc: &Descriptor,
    blob: (String, u64),
    diff_id: &str,
    want_diff_id: &str,
) -> Result<(), StoreError> {
    let digest = desc.digest().to_string();
    // An empty digest: the source verified it (see BlobSource).
    if (!blob.0.is_empty() && blob.0 != digest) || blob.1 != desc.size() {
        return Err(StoreError::Corrupt(format!(
            "blob {digest} has changed on disk: its {} bytes have digest {}",
            blob.1, blob.0
        )));
    }
    if diff_id != want_diff_id {
        return Err(StoreError::DiffIdMismatch {
            layer: digest,
            actual: diff_id.to_string(),
            expected: want_diff_id.to_string(),
        });
    }
    Ok(())
}

/// Reads a compressed layer without writing it: its digest, diff_id, that it is a tar,
/// and its size.
fn verify_compressed(
    blob: Box<dyn Read + Send>,
    source: BlobSource,
    desc: &Descriptor,
    want_diff_id: &str,
) -> Result<LayerInfo, StoreError> {
    let digest = desc.digest().to_string();
    let layer_err = |message: String| StoreError::Layer {
        digest: digest.clone(),
        message,
    };
    let mut compressed = Hashing::with(blob, source == BlobSource::Store);
    let (tar_digest, size) = {
        let decoder = compression_of(desc)?
            .decoder(io::BufReader::with_capacity(1 << 20, &mut compressed))
            .map_err(|e| layer_err(format!("cannot decompress: {e}")))?;
        let mut tar_stream = Hashing::new(decoder);
        let mut size = 0u64;
        {
            let mut archive = tar::Archive::new(&mut tar_stream);
            let not_a_tar = |e: io::Error, n: usize| {
                layer_err(format!(
                    "the layer is not a valid tar archive ({}, after {n} entries)",
                    tar_reason(&e)
                ))
            };
            for (n, entry) in archive.entries().map_err(|e| not_a_tar(e, 0))?.enumerate() {
                let mut entry = entry.map_err(|e| not_a_tar(e, n))?;
                let header = entry.header();
                size += match header.entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        header.size().unwrap_or(0)
                    }
                    tar::EntryType::Symlink => {
                        entry.link_name_bytes().map(|l| l.len() as u64).unwrap_or(0)
                    }
                    _ => 0,
                };
                io::copy(&mut entry, &mut io::sink())
                    .map_err(|e| layer_err(format!("cannot decompress: {e}")))?;
            }
        }
        let (d, _) = tar_stream
            .finish()
            .map_err(|e| layer_err(format!("cannot decompress: {e}")))?;
        (d, size)
    };
    let blob = compressed
        .finish()
        .map_err(|e| layer_err(format!("cannot read: {e}")))?;
    check_digests(desc, blob, &tar_digest, want_diff_id)?;
    Ok(LayerInfo {
        diff_id: tar_digest,
        size,
    })
}

/// Applies one compressed layer stream to `root`, checking the blob's digest and the
/// tar's diff_id. Two stages on two cores: a thread decompresses and hashes the stream
/// while this one writes the files.
pub(super) fn apply_compressed(
    blob: Box<dyn Read + Send>,
    source: BlobSource,
    desc: &Descriptor,
    want_diff_id: &str,
    root: &Path,
    into: ApplyInto,
) -> Result<ApplyStats, StoreError> {
    let digest = desc.digest().to_string();
    let compression = compression_of(desc)?;
    let (tx, rx) = mpsc::sync_channel::<io::Result<Vec<u8>>>(8);
    let decompress = std::thread::Builder::new()
        .name("decompress".into())
        .spawn(move || -> io::Result<(String, u64)> {
            let mut compressed = Hashing::with(blob, source == BlobSource::Store);
            {
                let mut decoder =
                    compression.decoder(io::BufReader::with_capacity(1 << 20, &mut compressed))?;
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
                        break;
                    }
                    chunk.truncate(filled);
                    if tx.send(Ok(chunk)).is_err() {
                        // The applier stopped (an error): no one reads the rest.
                        return Ok((String::new(), 0));
                    }
                }
            }
            // What follows the compressed stream's end counts for the blob's digest.
            compressed.finish()
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
            into,
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
    let stats = applied.map_err(|e| StoreError::Layer {
        digest: digest.clone(),
        message: e.to_string(),
    })?;
    let blob = decompressed.map_err(|e| StoreError::Layer {
        digest: digest.clone(),
        message: format!("cannot decompress: {e}"),
    })?;
    let diff_id = hashed
        .unwrap_or_else(|| Ok(String::new()))
        .map_err(|e| StoreError::Layer {
            digest: digest.clone(),
            message: format!("cannot decompress: {e}"),
        })?;
    check_digests(desc, blob, &diff_id, want_diff_id)?;
    Ok(stats)
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
