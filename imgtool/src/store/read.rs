//! Reading images back out of the store: blobs, manifests, configs, and finding an image
//! by any name a user would type (`busybox`, the full name, a digest, an image-ID prefix).

use std::fs;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};

use super::{tag_of, Store, StoreError};
use crate::reference;

/// One tagged image of the store.
#[derive(Debug, Clone)]
pub struct StoredImage {
    /// The tag (`ref.name`), a full normalized reference.
    pub name: String,
    /// The manifest descriptor index.json holds for the tag.
    pub descriptor: Descriptor,
}

impl StoredImage {
    pub fn digest(&self) -> String {
        self.descriptor.digest().to_string()
    }
}

/// An image read from the store, its manifest and config parsed.
#[derive(Debug, Clone)]
pub struct LoadedImage {
    pub stored: StoredImage,
    pub manifest: ImageManifest,
    pub config: ImageConfiguration,
    /// The config blob's digest: docker's "image ID".
    pub config_digest: String,
}

impl LoadedImage {
    /// The uncompressed layer digests, bottom first.
    pub fn diff_ids(&self) -> &[String] {
        self.config.rootfs().diff_ids()
    }
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

impl Store {
    /// A blob's bytes.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        fs::read(&path).map_err(|e| StoreError::Io {
            path,
            message: format!("blob {digest}: {e}"),
        })
    }

    /// A blob, opened for reading.
    pub fn open_blob(&self, digest: &str) -> Result<fs::File, StoreError> {
        let path = self.blob_path(digest)?;
        fs::File::open(&path).map_err(|e| StoreError::Io {
            path,
            message: format!("blob {digest}: {e}"),
        })
    }

    /// Every tagged image, in index order.
    pub fn images(&self) -> Result<Vec<StoredImage>, StoreError> {
        let _lock = self.lock_shared()?;
        Ok(self
            .index()?
            .manifests()
            .iter()
            .filter_map(|d| {
                Some(StoredImage {
                    name: tag_of(d)?.to_string(),
                    descriptor: d.clone(),
                })
            })
            .collect())
    }

    /// Finds the image a user means by `input`: an exact stored name, a reference that
    /// normalizes to one (`busybox` → `docker.io/library/busybox:latest`), a manifest
    /// digest, or a prefix (≥ 4 hex digits) of a manifest digest or image ID.
    pub fn find(&self, input: &str) -> Result<StoredImage, StoreError> {
        let images = self.images()?;
        if let Some(i) = images.iter().find(|i| i.name == input) {
            return Ok(i.clone());
        }
        // The common spellings without the full (regex) parser, which costs more than
        // the rest of a bundle; only a hit counts, a miss falls through to the parser.
        if let Some(name) = reference::quick_store_name(input) {
            if let Some(i) = images.iter().find(|i| i.name == name) {
                return Ok(i.clone());
            }
        }
        if let Ok(r) = reference::parse(input) {
            let name = reference::store_name(&r);
            if let Some(i) = images.iter().find(|i| i.name == name) {
                return Ok(i.clone());
            }
        }
        let hex = input.strip_prefix("sha256:").unwrap_or(input);
        if hex.len() >= 4 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            let hex = hex.to_ascii_lowercase();
            let matches_digest = |d: &str| {
                d.strip_prefix("sha256:")
                    .is_some_and(|h| h.starts_with(&hex))
            };
            let mut hits: Vec<&StoredImage> = images
                .iter()
                .filter(|i| {
                    matches_digest(&i.digest())
                        || self
                            .load_manifest(&i.descriptor)
                            .is_ok_and(|m| matches_digest(m.config().digest().as_ref()))
                })
                .collect();
            hits.dedup_by(|a, b| a.digest() == b.digest());
            match hits.len() {
                1 => return Ok(hits[0].clone()),
                0 => {}
                _ => return Err(StoreError::Ambiguous(input.to_string())),
            }
        }
        Err(StoreError::UnknownTag(input.to_string()))
    }

    /// The image manifest a descriptor names; for an index, the entry for this host.
    pub fn load_manifest(&self, desc: &Descriptor) -> Result<ImageManifest, StoreError> {
        let digest = desc.digest().to_string();
        let bytes = self.read_blob(&digest)?;
        if is_index(desc.media_type().as_ref()) {
            let index: ImageIndex = serde_json::from_slice(&bytes).map_err(|e| bad(&digest, e))?;
            let entry = index
                .manifests()
                .iter()
                .find(|m| {
                    m.platform().as_ref().is_none_or(|p| {
                        p.os().to_string() == "linux"
                            && p.architecture().to_string() == host_architecture()
                    })
                })
                .ok_or_else(|| StoreError::NoPlatform {
                    digest: digest.clone(),
                    arch: host_architecture().to_string(),
                })?;
            return self.load_manifest(entry);
        }
        serde_json::from_slice(&bytes).map_err(|e| bad(&digest, e))
    }

    /// A stored image with its manifest and config.
    pub fn load(&self, stored: &StoredImage) -> Result<LoadedImage, StoreError> {
        let manifest = self.load_manifest(&stored.descriptor)?;
        let config_digest = manifest.config().digest().to_string();
        let bytes = self.read_blob(&config_digest)?;
        let config: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|e| bad(&config_digest, e))?;
        if config.rootfs().diff_ids().len() != manifest.layers().len() {
            return Err(StoreError::Corrupt(format!(
                "image {}: {} layers but {} diff_ids in its config",
                stored.name,
                manifest.layers().len(),
                config.rootfs().diff_ids().len()
            )));
        }
        Ok(LoadedImage {
            stored: stored.clone(),
            manifest,
            config,
            config_digest,
        })
    }
}

fn bad(digest: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("blob {digest} is not valid JSON of its kind: {e}"))
}

/// The host architecture in OCI (Go) terms.
pub fn host_architecture() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    }
}
