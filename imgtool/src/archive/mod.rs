//! Image archives: docker-archive (`docker save`: manifest.json with Config, RepoTags and
//! Layers, uncompressed layer tars, the config named by its digest) and oci-archive (a tar
//! of an OCI image layout), written by `save` and read by `load`; and the flattened root
//! filesystem tar of `export`.
//!
//! Loading verifies every blob against its digest (docker layers against the config's
//! diff_ids), stores all of them, and only then tags every image of the archive in a
//! single index.json rewrite: a bad or truncated archive, or a load killed midway, tags
//! nothing and leaves the store as it was (at most some unreferenced blobs for gc).

pub mod docker;
pub mod export;
pub mod oci;
pub mod output;
pub mod reader;
pub mod save;

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};

use oci_spec::image::Descriptor;

pub use reader::ArchiveReader;

use crate::image::build::BuildError;
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a docker-archive or oci-archive: {0}")]
    NotAnArchive(String),
    #[error("truncated archive: {0}")]
    Truncated(String),
    #[error("corrupt archive: {0}")]
    Corrupt(String),
    #[error("corrupt archive: it has no {0}")]
    Missing(String),
    #[error("corrupt archive: {what} has digest {actual}, expected {expected}")]
    DigestMismatch {
        what: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Io(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("{0}")]
    Image(String),
}

/// The two archive formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    DockerArchive,
    OciArchive,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "docker-archive" | "docker" => Ok(Self::DockerArchive),
            "oci-archive" | "oci" => Ok(Self::OciArchive),
            other => Err(format!(
                "unknown archive format {other:?}: use docker-archive or oci-archive"
            )),
        }
    }
}

/// An image an archive held, now stored (and, after `load`, tagged).
#[derive(Debug, Clone)]
pub struct LoadedImage {
    /// Normalized store names; empty for an untagged image.
    pub names: Vec<String>,
    /// The manifest in the store (no annotations).
    pub manifest: Descriptor,
}

const GZIP_MAGIC: &[u8] = &[0x1f, 0x8b];
const ZSTD_MAGIC: &[u8] = &[0x28, 0xb5, 0x2f, 0xfd];

/// The compression a stream starts with (by magic number).
pub fn sniff_compression(head: &[u8]) -> crate::layer::Compression {
    use crate::layer::Compression;
    if head.starts_with(GZIP_MAGIC) {
        Compression::Gzip
    } else if head.starts_with(ZSTD_MAGIC) {
        Compression::Zstd
    } else {
        Compression::None
    }
}

/// Makes a seekable, uncompressed archive file out of `input`: a regular file is used in
/// place; a pipe is spooled to a scratch file in the store; a gzip- or zstd-compressed
/// archive (`docker save | gzip`) is decompressed into one.
pub fn seekable_archive(store: &Store, mut input: File) -> Result<File, ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io(format!("cannot read the archive: {e}"));
    let is_file = input.metadata().map(|m| m.is_file()).unwrap_or(false);
    let mut file = if is_file {
        input
    } else {
        let mut spool = store.scratch_file()?;
        std::io::copy(&mut input, &mut spool).map_err(io)?;
        spool
    };
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut head = Vec::new();
    (&mut file).take(4).read_to_end(&mut head).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let compression = sniff_compression(&head);
    if compression == crate::layer::Compression::None {
        return Ok(file);
    }
    let mut plain = store.scratch_file()?;
    let mut decoder = compression.decoder(&mut file).map_err(io)?;
    std::io::copy(&mut decoder, &mut plain)
        .map_err(|e| ArchiveError::Truncated(format!("cannot decompress the archive: {e}")))?;
    plain.flush().map_err(io)?;
    Ok(plain)
}

/// Which format an indexed archive is: an OCI layout (also what docker 25+ writes beside
/// its manifest.json, preferred since it keeps the manifests' digests), else docker's.
pub fn detect(archive: &ArchiveReader) -> Result<Format, ArchiveError> {
    if archive.has("oci-layout") && archive.has("index.json") {
        Ok(Format::OciArchive)
    } else if archive.has("manifest.json") {
        Ok(Format::DockerArchive)
    } else {
        Err(ArchiveError::NotAnArchive(
            "it has neither manifest.json (docker-archive) nor oci-layout and index.json (oci-archive)"
                .into(),
        ))
    }
}

/// Loads every image of the archive in `input` into `store`, then tags them all at once.
pub fn load(store: &Store, input: File) -> Result<(Format, Vec<LoadedImage>), ArchiveError> {
    // gc must not take blobs stored but not yet tagged, nor our temp files.
    let _op = store.lock_operation()?;
    let file = seekable_archive(store, input)?;
    let archive = ArchiveReader::index(file)?;
    let format = detect(&archive)?;
    let images = match format {
        Format::DockerArchive => docker::load(store, &archive)?,
        Format::OciArchive => oci::load(store, &archive)?,
    };
    let mut tags: Vec<(Option<String>, Descriptor)> = Vec::new();
    for img in &images {
        if img.names.is_empty() {
            tags.push((None, img.manifest.clone()));
        }
        for n in &img.names {
            tags.push((Some(n.clone()), img.manifest.clone()));
        }
    }
    store.tag_all(&tags)?;
    Ok((format, images))
}

/// Appends a member with fixed, reproducible metadata (root-owned, 0644, mtime 0).
pub(crate) fn append_member<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    size: u64,
    data: impl Read,
) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    tar.append_data(&mut h, name, data)
}

/// Appends a directory member.
pub(crate) fn append_dir<W: Write>(tar: &mut tar::Builder<W>, name: &str) -> std::io::Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_size(0);
    h.set_mode(0o755);
    h.set_mtime(0);
    tar.append_data(&mut h, name, std::io::empty())
}

/// `sha256:<hex>` of bytes.
pub(crate) fn sha256_of(data: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(data)))
}

/// The 64-hex-digit digest a member name carries (`<hex>.json`, `blobs/sha256/<hex>`).
pub(crate) fn digest_in_name(name: &str) -> Option<String> {
    let base = name.rsplit('/').next()?;
    let hex = base.split('.').next()?;
    (hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}
