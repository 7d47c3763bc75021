//! The bundles made from this store, so that gc keeps the layer caches a mounted bundle
//! still stands on. Each bundle has a small file in `imgtool/bundles/` naming its
//! directory; the bundle's own `imgtool.json` says which layers it uses.

use std::fs;
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::{Store, StoreError};

fn entry_name(dir: &Path) -> String {
    hex::encode(&Sha256::digest(dir.to_string_lossy().as_bytes())[..16])
}

impl Store {
    fn bundles_dir(&self) -> PathBuf {
        self.root().join("imgtool/bundles")
    }

    /// Records that `dir` (absolute) is a bundle made from this store.
    pub fn register_bundle(&self, dir: &Path) -> Result<(), StoreError> {
        let d = self.bundles_dir();
        fs::create_dir_all(&d).map_err(|e| StoreError::Io {
            path: d.clone(),
            message: e.to_string(),
        })?;
        let path = d.join(entry_name(dir));
        fs::write(&path, dir.to_string_lossy().as_bytes()).map_err(|e| StoreError::Io {
            path,
            message: e.to_string(),
        })
    }

    /// Forgets the bundle at `dir`.
    pub fn unregister_bundle(&self, dir: &Path) {
        let _ = fs::remove_file(self.bundles_dir().join(entry_name(dir)));
    }

    /// The registered bundle directories, each with the path of its registration file.
    pub fn registered_bundles(&self) -> Vec<(PathBuf, PathBuf)> {
        let Ok(entries) = fs::read_dir(self.bundles_dir()) else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter_map(|e| {
                let dir = fs::read_to_string(e.path()).ok()?;
                Some((PathBuf::from(dir), e.path()))
            })
            .collect()
    }
}
