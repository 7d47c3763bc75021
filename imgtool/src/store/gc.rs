//! Garbage collection: removes blobs no tagged image reaches, layer caches that neither a
//! tagged image, nor a bundle, nor any overlay mounted in any mount namespace (a running
//! container's rootfs) uses, and what interrupted operations left in the store's temp
//! dir. It holds the operation lock exclusively, so no pull, load, commit or bundle is
//! half-way through while it decides what is unreferenced. A dry run reports the same
//! and removes nothing.

use std::collections::HashSet;
use std::fs;
use std::path::Path;

use oci_spec::image::{ImageIndex, ImageManifest};

use super::identity::digests_of;
use super::layers::chain_ids;
use super::{Store, StoreError};
use crate::mount;

/// What gc removed (or, in a dry run, would remove).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct GcReport {
    pub blobs: usize,
    pub blob_bytes: u64,
    pub layer_caches: usize,
    pub temp_entries: usize,
    pub stale_bundles: usize,
    /// Layer caches kept only because a mounted overlay (a running container) uses them.
    pub layer_caches_in_use: usize,
}

/// The marker a bundle keeps, as far as gc needs it.
#[derive(serde::Deserialize)]
struct BundleMarker {
    #[serde(default)]
    chain_ids: Vec<String>,
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

impl Store {
    /// Every blob reachable from index.json (manifests, nested indexes, configs, layers),
    /// and the ChainIDs of every image reachable that way.
    fn reachable(&self) -> Result<(HashSet<String>, HashSet<String>), StoreError> {
        let mut blobs = HashSet::new();
        let mut chains = HashSet::new();
        let mut todo: Vec<(String, String)> = Vec::new();
        // A descriptor keeps its blob and, for the OCI view of a Docker manifest, the
        // original it stands for (see super::identity).
        fn keep(
            d: &oci_spec::image::Descriptor,
            todo: &mut Vec<(String, String)>,
            originals: &mut Vec<String>,
        ) {
            originals.extend(digests_of(d).into_iter().skip(1));
            todo.push((d.digest().to_string(), d.media_type().to_string()));
        }
        let mut originals: Vec<String> = Vec::new();
        for d in self.index()?.manifests() {
            keep(d, &mut todo, &mut originals);
        }
        while let Some((digest, media_type)) = todo.pop() {
            if !blobs.insert(digest.clone()) {
                continue;
            }
            let Ok(bytes) = self.read_blob(&digest) else {
                continue; // a dangling tag: nothing below it to keep
            };
            if is_index(&media_type) {
                if let Ok(index) = serde_json::from_slice::<ImageIndex>(&bytes) {
                    for d in index.manifests() {
                        keep(d, &mut todo, &mut originals);
                    }
                }
                continue;
            }
            let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&bytes) else {
                continue;
            };
            let config = manifest.config().digest().to_string();
            blobs.insert(config.clone());
            blobs.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
            if let Ok(cfg) = self.read_blob(&config).and_then(|b| {
                serde_json::from_slice::<oci_spec::image::ImageConfiguration>(&b)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            }) {
                chains.extend(chain_ids(cfg.rootfs().diff_ids()));
            }
        }
        blobs.extend(originals);
        Ok((blobs, chains))
    }

    /// Removes everything unreferenced; see the module docs.
    pub fn gc(&self) -> Result<GcReport, StoreError> {
        self.collect(false)
    }

    /// What [`Store::gc`] would remove, removing nothing.
    pub fn gc_dry_run(&self) -> Result<GcReport, StoreError> {
        self.collect(true)
    }

    fn collect(&self, dry_run: bool) -> Result<GcReport, StoreError> {
        let remove_file = |p: &Path| if dry_run { Ok(()) } else { fs::remove_file(p) };
        let remove_dir = |p: &Path| {
            if dry_run {
                Ok(())
            } else {
                fs::remove_dir_all(p)
            }
        };
        let _op = self.lock_gc()?;
        let _index = self.lock_shared()?;
        let mut report = GcReport::default();
        let (blobs, mut chains) = self.reachable()?;

        // Live bundles keep their layers; registrations of vanished bundles go.
        for (dir, entry) in self.registered_bundles() {
            match fs::read(dir.join("imgtool.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<BundleMarker>(&b).ok())
            {
                Some(marker) => chains.extend(marker.chain_ids),
                None => {
                    let _ = remove_file(&entry);
                    report.stale_bundles += 1;
                }
            }
        }

        // No operation is in flight: whatever is in tmp was left by an interrupted one.
        // A layer build killed mid-way may have left its overlay mounted: unmount first so
        // removal never reaches through into the layer cache.
        let tmp = self.root().join("imgtool/tmp");
        for entry in fs::read_dir(&tmp).map_err(|e| io_err(&tmp, e))?.flatten() {
            let merged = entry.path().join("merged");
            if merged.exists() && !dry_run {
                let _ = mount::unmount(&merged);
            }
            if mount::is_mount_point(&merged) && !dry_run {
                continue; // still mounted: leave it rather than risk the lowers
            }
            let removed = if entry.path().is_dir() {
                remove_dir(&entry.path())
            } else {
                remove_file(&entry.path())
            };
            if removed.is_ok() {
                report.temp_entries += 1;
            }
        }

        let blob_dir = self.root().join("blobs/sha256");
        for entry in fs::read_dir(&blob_dir)
            .map_err(|e| io_err(&blob_dir, e))?
            .flatten()
        {
            let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
            if !blobs.contains(&digest) {
                let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                if remove_file(&entry.path()).is_ok() {
                    let _ = remove_file(
                        &self
                            .root()
                            .join("imgtool/layer-info")
                            .join(entry.file_name()),
                    );
                    self.forget_verified(&digest);
                    report.blobs += 1;
                    report.blob_bytes += size;
                }
            }
        }

        // What was recorded about blobs that are gone (and temp files of a killed write).
        for records in ["imgtool/layer-info", "imgtool/verified"] {
            let Ok(entries) = fs::read_dir(self.root().join(records)) else {
                continue;
            };
            for entry in entries.flatten() {
                let digest = format!("sha256:{}", entry.file_name().to_string_lossy());
                if !self.has_blob(&digest) || !blobs.contains(&digest) {
                    let _ = remove_file(&entry.path());
                }
            }
        }

        let layers = self.root().join("imgtool/layers");
        if let Ok(entries) = fs::read_dir(&layers) {
            // A container whose bundle is gone (or was never registered) may still stand
            // on layers: any overlay mounted anywhere keeps its lower directories.
            let mounted = mount::users::overlay_lowers_in_use();
            for entry in entries.flatten() {
                let chain = format!("sha256:{}", entry.file_name().to_string_lossy());
                if chains.contains(&chain) {
                    continue;
                }
                if mounted.contains(&entry.path()) {
                    report.layer_caches_in_use += 1;
                    continue;
                }
                if remove_dir(&entry.path()).is_ok() {
                    report.layer_caches += 1;
                }
            }
        }
        Ok(report)
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}
