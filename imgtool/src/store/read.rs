//! Reading images back out of the store: blobs, manifests, configs, and finding an image
//! by any name a user would type (`busybox`, the full name, a digest, an image-ID prefix).

use std::fs;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

use super::identity::{identity, is_index_type, media_type_str, Identity};
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
    /// The image's identity digest: the manifest (or index) digest its registry gave it.
    pub fn digest(&self) -> String {
        self.identity().digest
    }

    /// The manifest (or index) the image is, as served (see [`super::identity`]).
    pub fn identity(&self) -> Identity {
        identity(&self.descriptor)
    }

    /// The digest of the stored OCI form index.json tags (the identity's own, except for
    /// Docker manifests).
    pub fn view_digest(&self) -> String {
        self.descriptor.digest().to_string()
    }

    /// True when the name holds an index (several platforms).
    pub fn is_index(&self) -> bool {
        is_index_type(&media_type_str(self.descriptor.media_type()))
    }

    /// Whether `digest` names this image (its identity or its stored form).
    pub fn has_digest(&self, digest: &str) -> bool {
        self.digest() == digest || self.view_digest() == digest
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

impl Store {
    /// A blob's bytes, checked against its digest (a blob changed on disk is an error,
    /// never used).
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>, StoreError> {
        let path = self.blob_path(digest)?;
        let bytes = fs::read(&path).map_err(|e| StoreError::Io {
            path: path.clone(),
            message: if e.kind() == std::io::ErrorKind::NotFound {
                format!("blob {digest} is missing")
            } else {
                format!("blob {digest}: {e}")
            },
        })?;
        let actual = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
        if actual != digest {
            return Err(StoreError::Corrupt(format!(
                "blob {digest} ({}) has changed on disk: its content has digest {actual}",
                path.display()
            )));
        }
        Ok(bytes)
    }

    /// A blob opened for reading that checks itself: its reader ends with an error
    /// (`blob … has changed on disk`) instead of EOF unless the bytes read have the
    /// blob's digest. Returns it and its size.
    pub fn open_verified_blob(&self, digest: &str) -> Result<(VerifiedBlob, u64), StoreError> {
        let file = self.open_blob(digest)?;
        let size = file.metadata().map_err(|e| StoreError::Io {
            path: self.blob_path(digest).unwrap_or_default(),
            message: format!("blob {digest}: {e}"),
        })?;
        let blob = VerifiedBlob {
            file,
            hasher: Some(Sha256::new()),
            digest: digest.to_string(),
        };
        Ok((blob, size.len()))
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

    /// Every image of index.json, untagged ones too (named by their digest).
    pub fn entries(&self) -> Result<Vec<StoredImage>, StoreError> {
        let _lock = self.lock_shared()?;
        Ok(self
            .index()?
            .manifests()
            .iter()
            .map(|d| StoredImage {
                name: tag_of(d)
                    .map(String::from)
                    .unwrap_or_else(|| identity(d).digest),
                descriptor: d.clone(),
            })
            .collect())
    }

    /// Finds the image a user means by `input`: an exact stored name, a reference that
    /// normalizes to one (`busybox` → `docker.io/library/busybox:latest`), a manifest
    /// digest, or a prefix (≥ 4 hex digits) of a manifest digest or image ID.
    pub fn find(&self, input: &str) -> Result<StoredImage, StoreError> {
        let images = self.entries()?;
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
            // `name@sha256:…`: an image of that repository (pulled by any tag) whose
            // registry digest (or stored form) it is.
            if let Some(d) = r.digest() {
                let repo = format!("{}/{}", r.registry(), r.repository());
                let same_repo = |i: &StoredImage| {
                    reference::parse(&i.name)
                        .is_ok_and(|n| format!("{}/{}", n.registry(), n.repository()) == repo)
                };
                if let Some(i) = images.iter().find(|i| same_repo(i) && i.has_digest(d)) {
                    return Ok(i.clone());
                }
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
                        || matches_digest(&i.view_digest())
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

    /// The image manifest a descriptor names; for an index, the entry of this host's
    /// platform if the store has it, else the only platform it has (see
    /// [`Store::index_entry`]).
    pub fn load_manifest(&self, desc: &Descriptor) -> Result<ImageManifest, StoreError> {
        let digest = desc.digest().to_string();
        if is_index_type(&media_type_str(desc.media_type())) {
            let entry = self.index_entry(desc)?;
            return self.load_manifest(&entry);
        }
        let bytes = self.read_blob(&digest)?;
        serde_json::from_slice(&bytes).map_err(|e| bad(&digest, e))
    }

    /// The entries of the index `desc` whose manifests are in the store.
    pub fn present_entries(&self, desc: &Descriptor) -> Result<Vec<Descriptor>, StoreError> {
        let digest = desc.digest().to_string();
        let index: ImageIndex =
            serde_json::from_slice(&self.read_blob(&digest)?).map_err(|e| bad(&digest, e))?;
        Ok(index
            .manifests()
            .iter()
            .filter(|m| !is_index_type(&media_type_str(m.media_type())))
            .filter(|m| self.has_blob(m.digest().as_ref()))
            .cloned()
            .collect())
    }

    /// The manifest of index `desc` to use here: this host's platform if the store has
    /// it, else the one platform it has; several others is an error naming them.
    pub fn index_entry(&self, desc: &Descriptor) -> Result<Descriptor, StoreError> {
        let present = self.present_entries(desc)?;
        let host = |m: &&Descriptor| {
            m.platform().as_ref().is_none_or(|p| {
                p.os().to_string() == "linux" && p.architecture().to_string() == host_architecture()
            })
        };
        if let Some(m) = present.iter().find(host) {
            return Ok(m.clone());
        }
        match present.as_slice() {
            [only] => Ok(only.clone()),
            _ => Err(StoreError::NoPlatform {
                digest: identity(desc).digest,
                arch: host_architecture().to_string(),
                present: present
                    .iter()
                    .filter_map(|m| m.platform().as_ref())
                    .map(|p| format!("{}/{}", p.os(), p.architecture()))
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
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

/// See [`Store::open_verified_blob`].
pub struct VerifiedBlob {
    file: fs::File,
    hasher: Option<Sha256>,
    digest: String,
}

impl std::io::Read for VerifiedBlob {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        match (&mut self.hasher, n) {
            (Some(h), 0) if !buf.is_empty() => {
                let actual = format!("sha256:{}", hex::encode(std::mem::take(h).finalize()));
                self.hasher = None;
                if actual != self.digest {
                    return Err(std::io::Error::other(format!(
                        "blob {} has changed on disk: its content has digest {actual}",
                        self.digest
                    )));
                }
            }
            (Some(h), _) => h.update(&buf[..n]),
            (None, _) => {}
        }
        Ok(n)
    }
}
