//! `DIR/imgtool.json`: what a bundle was made from, so that `unbundle` knows what to
//! unmount and which store to tell, gc knows which layer caches it stands on, and
//! `commit` knows the image (config digest, diff_ids) the changes go on top of.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub const MARKER_FILE: &str = "imgtool.json";

/// How the rootfs was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RootfsMode {
    /// An overlay of cached layers with `DIR/overlay/upper` on top.
    Overlay,
    /// A plain directory with every layer applied.
    Copy,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BundleMarker {
    /// The image's name in the store.
    pub image: String,
    pub manifest_digest: String,
    pub config_digest: String,
    pub diff_ids: Vec<String>,
    pub chain_ids: Vec<String>,
    pub mode: RootfsMode,
    /// The store the image came from.
    pub store: PathBuf,
    /// Container paths of the image's volumes (kept out of commits).
    #[serde(default)]
    pub volumes: Vec<String>,
    /// Container paths of the files the bundle bind-mounts from itself (/etc/hosts,
    /// /etc/hostname, /etc/resolv.conf): kept out of commits, as docker keeps them.
    #[serde(default)]
    pub generated: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("{0} is not a bundle made by imgtool (no readable {MARKER_FILE}): {1}")]
    NotABundle(PathBuf, String),
    #[error("cannot write {0}: {1}")]
    Write(PathBuf, String),
}

impl BundleMarker {
    pub fn read(dir: &Path) -> Result<Self, MarkerError> {
        let path = dir.join(MARKER_FILE);
        let bytes = std::fs::read(&path)
            .map_err(|e| MarkerError::NotABundle(dir.to_path_buf(), e.to_string()))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| MarkerError::NotABundle(dir.to_path_buf(), e.to_string()))
    }

    pub fn write(&self, dir: &Path) -> Result<(), MarkerError> {
        let path = dir.join(MARKER_FILE);
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| MarkerError::Write(path.clone(), e.to_string()))?;
        write_atomic(&path, &text).map_err(|e| MarkerError::Write(path, e.to_string()))
    }
}

/// Writes a file through a temp file beside it and a rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp.as_file(), data)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}
