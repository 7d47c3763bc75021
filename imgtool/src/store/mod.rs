//! The local image store: an OCI image layout (image-spec image-layout.md) that skopeo and
//! umoci read as `oci:DIR:TAG`. Blobs are content-addressed and shared between images;
//! every write goes to a temp file in the store, is fsynced and renamed into place; tags
//! live in index.json (`org.opencontainers.image.ref.name`), rewritten the same way under
//! an exclusive flock so concurrent imgtool processes never lose or corrupt an update.

pub mod feed;
pub mod ingest;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageIndex, ImageIndexBuilder, MediaType};
use sha2::{Digest as _, Sha256};

mod archive_support;
pub mod bundles;
pub mod gc;
pub mod identity;
mod layer_build;
pub mod layers;
pub mod read;
pub mod verified;

pub use archive_support::{BlobWriter, WrittenBlob};
pub use read::{host_architecture, LoadedImage, StoredImage};

/// The annotation carrying a tag in index.json.
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("store {path}: {message}")]
    Io { path: PathBuf, message: String },
    #[error("blob digest mismatch: expected {expected}, got {actual} ({size} bytes)")]
    DigestMismatch {
        expected: String,
        actual: String,
        size: u64,
    },
    #[error("blob size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("unsupported digest {0:?}: only sha256 is supported")]
    UnsupportedDigest(String),
    #[error("no image tagged {0:?} in the store")]
    UnknownTag(String),
    #[error("{0:?} matches more than one image: give more of the digest or the full name")]
    Ambiguous(String),
    #[error("image index {digest} has no image for linux/{arch} in the store (it has: {present})")]
    NoPlatform {
        digest: String,
        arch: String,
        present: String,
    },
    #[error("layer {digest}: {message}")]
    Layer { digest: String, message: String },
    #[error("layer {layer} uncompresses to {actual}, but the image config's diff_id for it is {expected}")]
    DiffIdMismatch {
        layer: String,
        actual: String,
        expected: String,
    },
    #[error("the store is damaged: {0}")]
    Corrupt(String),
    #[error("invalid index.json in {path}: {message}")]
    BadIndex { path: PathBuf, message: String },
}

fn io(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// An open store.
#[derive(Debug, Clone)]
pub struct Store {
    root: PathBuf,
}

/// An advisory lock on the store, released on drop.
pub struct StoreLock {
    _file: File,
}

impl Store {
    /// Opens the store at `root`, creating an empty layout if there is none.
    pub fn open(root: &Path) -> Result<Self, StoreError> {
        // Absolute: layer paths end up in overlay mount options and bundle markers, which
        // must mean the same from any working directory.
        let root = &std::path::absolute(root).map_err(|e| io(root, e))?;
        for dir in [root.join("blobs/sha256"), root.join("imgtool/tmp")] {
            fs::create_dir_all(&dir).map_err(|e| io(&dir, e))?;
        }
        let store = Self {
            root: root.to_path_buf(),
        };
        // Under the index lock: gc (which holds it shared) must not sweep the temp files
        // these are written through, and concurrent first opens write each file once.
        let layout = root.join("oci-layout");
        let index = root.join("index.json");
        if !layout.exists() || !index.exists() {
            let _lock = store.lock_exclusive()?;
            if !layout.exists() {
                store.write_atomic(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
            }
            if !index.exists() {
                store.write_index(&empty_index())?;
            }
        }
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where a blob lives: "sha256:abc…" → root/blobs/sha256/abc….
    pub fn blob_path(&self, digest: &str) -> Result<PathBuf, StoreError> {
        let hex = digest
            .strip_prefix("sha256:")
            .filter(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            })
            .ok_or_else(|| StoreError::UnsupportedDigest(digest.to_string()))?;
        Ok(self.root.join("blobs/sha256").join(hex))
    }

    /// Writes `data` to `path` through a synced temp file and a rename.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> Result<(), StoreError> {
        let tmp = tempfile::NamedTempFile::new_in(self.root.join("imgtool/tmp"))
            .map_err(|e| io(path, e))?;
        let mut f = tmp.as_file();
        f.write_all(data).map_err(|e| io(path, e))?;
        f.sync_all().map_err(|e| io(path, e))?;
        tmp.persist(path).map_err(|e| io(path, e.error))?;
        Ok(())
    }

    /// Stores a blob read from `data`, verifying its size and sha256 digest before it
    /// becomes visible. Returns the blob's path. An existing blob is not rewritten unless
    /// it is damaged ([`Store::reusable_blob`]): then `data` replaces it.
    pub fn put_blob(
        &self,
        expected_digest: &str,
        expected_size: u64,
        mut data: impl Read,
    ) -> Result<PathBuf, StoreError> {
        let dest = self.blob_path(expected_digest)?;
        if let verified::Reuse::Good = self.reusable_blob(expected_digest, expected_size) {
            return Ok(dest);
        }
        let tmp = tempfile::NamedTempFile::new_in(self.root.join("imgtool/tmp"))
            .map_err(|e| io(&dest, e))?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        let mut out = tmp.as_file();
        loop {
            let n = data.read(&mut buf).map_err(|e| io(&dest, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n]).map_err(|e| io(&dest, e))?;
            size += n as u64;
        }
        if size != expected_size {
            return Err(StoreError::SizeMismatch {
                digest: expected_digest.to_string(),
                expected: expected_size,
                actual: size,
            });
        }
        let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
        if actual != expected_digest {
            return Err(StoreError::DigestMismatch {
                expected: expected_digest.to_string(),
                actual,
                size,
            });
        }
        out.sync_all().map_err(|e| io(&dest, e))?;
        tmp.persist(&dest).map_err(|e| io(&dest, e.error))?;
        self.record_verified(expected_digest);
        Ok(dest)
    }

    /// Stores bytes already in memory (configs, manifests), returning their descriptor.
    pub fn put_bytes(&self, media_type: MediaType, data: &[u8]) -> Result<Descriptor, StoreError> {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        self.put_blob(&digest, data.len() as u64, data)?;
        let parsed: oci_spec::image::Digest = digest
            .parse()
            .map_err(|e| StoreError::UnsupportedDigest(format!("{digest}: {e}")))?;
        Ok(Descriptor::new(media_type, data.len() as u64, parsed))
    }

    fn lock(&self, name: &str, kind: libc::c_int) -> Result<StoreLock, StoreError> {
        let path = self.root.join("imgtool").join(name);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io(&path, e))?;
        // SAFETY: flock on an fd we own; it blocks until the lock is granted.
        if unsafe { libc::flock(file.as_raw_fd(), kind) } != 0 {
            return Err(io(&path, std::io::Error::last_os_error()));
        }
        Ok(StoreLock { _file: file })
    }

    /// A shared lock on index.json for readers.
    pub fn lock_shared(&self) -> Result<StoreLock, StoreError> {
        self.lock("lock", libc::LOCK_SH)
    }

    /// An exclusive lock on index.json for its writers.
    pub fn lock_exclusive(&self) -> Result<StoreLock, StoreError> {
        self.lock("lock", libc::LOCK_EX)
    }

    /// Held (shared) for the whole of any operation that writes blobs, layer caches or
    /// bundles before it tags or registers them (pull, bundle, load, commit, import), so
    /// that gc, which takes it exclusively, never removes what such an operation is about
    /// to reference.
    pub fn lock_operation(&self) -> Result<StoreLock, StoreError> {
        self.lock("operation.lock", libc::LOCK_SH)
    }

    /// The exclusive side of [`Store::lock_operation`], for gc.
    pub fn lock_gc(&self) -> Result<StoreLock, StoreError> {
        self.lock("operation.lock", libc::LOCK_EX)
    }

    /// The current index.json.
    pub fn index(&self) -> Result<ImageIndex, StoreError> {
        let path = self.root.join("index.json");
        let text = fs::read(&path).map_err(|e| io(&path, e))?;
        serde_json::from_slice(&text).map_err(|e| StoreError::BadIndex {
            path,
            message: e.to_string(),
        })
    }

    fn write_index(&self, index: &ImageIndex) -> Result<(), StoreError> {
        let path = self.root.join("index.json");
        let data = serde_json::to_vec(index).map_err(|e| io(&path, e))?;
        self.write_atomic(&path, &data)
    }

    /// Points `tag` at `manifest` (replacing an earlier image of that tag). Call only once
    /// every blob the manifest references is stored: nothing half-written is ever tagged.
    pub fn tag(&self, tag: &str, manifest: &Descriptor) -> Result<(), StoreError> {
        let _lock = self.lock_exclusive()?;
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| tag_of(d) != Some(tag))
            .cloned()
            .collect();
        let mut tagged = manifest.clone();
        let mut ann = tagged.annotations().clone().unwrap_or_default();
        ann.insert(REF_NAME.to_string(), tag.to_string());
        tagged.set_annotations(Some(ann));
        manifests.push(tagged);
        index.set_manifests(manifests);
        self.write_index(&index)
    }

    /// The manifest descriptor tagged `tag`.
    pub fn resolve_tag(&self, tag: &str) -> Result<Descriptor, StoreError> {
        let _lock = self.lock_shared()?;
        self.index()?
            .manifests()
            .iter()
            .find(|d| tag_of(d) == Some(tag))
            .cloned()
            .ok_or_else(|| StoreError::UnknownTag(tag.to_string()))
    }

    /// Removes a tag (its blobs stay until gc).
    pub fn untag(&self, tag: &str) -> Result<(), StoreError> {
        let _lock = self.lock_exclusive()?;
        let mut index = self.index()?;
        let before = index.manifests().len();
        let kept: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| tag_of(d) != Some(tag))
            .cloned()
            .collect();
        if kept.len() == before {
            return Err(StoreError::UnknownTag(tag.to_string()));
        }
        index.set_manifests(kept);
        self.write_index(&index)
    }
}

pub(crate) fn tag_of(d: &Descriptor) -> Option<&str> {
    d.annotations().as_ref()?.get(REF_NAME).map(String::as_str)
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("a valid empty index")
}
