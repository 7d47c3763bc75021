//! Committing a bundle: the changes made in its rootfs since `imgtool bundle` become one
//! new layer on top of its image, with a new config (diff_ids, a history entry, the
//! `--change`s) and manifest, tagged under the name given.

pub mod overlay_diff;
pub mod tree_diff;
pub mod writer;

use std::path::{Path, PathBuf};

use oci_spec::image::{Descriptor, ImageConfiguration, ImageManifest};

use crate::bundle::{BundleMarker, RootfsMode};
use crate::image::build::{self, BuildError, LayerWriter, StoredLayer};
use crate::image::change::{self, Change};
use crate::layer::Compression;
use crate::mount;
use crate::store::{LoadedImage, Store, StoreError, StoredImage};
use writer::ChangeWriter;

#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    #[error("no changes in {dir} since it was bundled from {image}: nothing to commit")]
    NoChanges { dir: PathBuf, image: String },
    #[error(transparent)]
    Marker(#[from] crate::bundle::marker::MarkerError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot read the changes of {path}: {message}")]
    Read { path: PathBuf, message: String },
}

/// What to record besides the changes.
#[derive(Debug, Clone)]
pub struct CommitOptions {
    pub message: Option<String>,
    pub author: Option<String>,
    pub changes: Vec<Change>,
    pub compression: Compression,
}

/// The committed image, stored and tagged.
#[derive(Debug, Clone)]
pub struct Committed {
    pub name: String,
    pub manifest: Descriptor,
    pub layer: StoredLayer,
}

fn read_err(path: &Path, e: impl std::fmt::Display) -> CommitError {
    CommitError::Read {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// The image a bundle was made from, as the store holds it.
fn base_image(store: &Store, marker: &BundleMarker) -> Result<LoadedImage, CommitError> {
    let bytes = store.read_blob(&marker.manifest_digest)?;
    let probe: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| StoreError::Corrupt(format!("manifest {}: {e}", marker.manifest_digest)))?;
    let media_type = if probe.get("manifests").is_some() {
        oci_spec::image::MediaType::ImageIndex
    } else {
        oci_spec::image::MediaType::ImageManifest
    };
    let desc = build::descriptor(media_type, &marker.manifest_digest, bytes.len() as u64)?;
    let stored = StoredImage {
        name: marker.image.clone(),
        descriptor: desc,
    };
    let manifest: ImageManifest = store.load_manifest(&stored.descriptor)?;
    let config: ImageConfiguration =
        serde_json::from_slice(&store.read_blob(&marker.config_digest)?)
            .map_err(|e| StoreError::Corrupt(format!("config {}: {e}", marker.config_digest)))?;
    Ok(LoadedImage {
        stored,
        manifest,
        config,
        config_digest: marker.config_digest.clone(),
    })
}

/// The command the bundle runs, for the history entry (as docker records a container's).
fn bundle_command(dir: &Path) -> String {
    std::fs::read(dir.join("config.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| {
            v.pointer("/process/args")?.as_array().map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        })
        .unwrap_or_default()
}

/// Writes the bundle's changeset into `out`.
fn write_changes(
    store: &Store,
    base: &LoadedImage,
    dir: &Path,
    marker: &BundleMarker,
    out: &mut ChangeWriter<LayerWriter>,
) -> Result<(), CommitError> {
    let excluded: Vec<String> = marker
        .volumes
        .iter()
        .chain(&marker.generated)
        .map(|v| v.trim_matches('/').to_string())
        .collect();
    let rootfs = dir.join("rootfs");
    match marker.mode {
        RootfsMode::Overlay => {
            let upper = dir.join("overlay/upper");
            overlay_diff::write_upper(&upper, &excluded, out).map_err(|e| read_err(&upper, e))
        }
        RootfsMode::Copy => {
            // The image as unpacked: a read-only overlay of the layer cache where we can
            // mount one, else a fresh unpack in a temp dir.
            let tmp = tempfile::Builder::new()
                .prefix("commit-")
                .tempdir_in(store.root().join("imgtool/tmp"))
                .map_err(|e| read_err(store.root(), e))?;
            let original = tmp.path().join("merged");
            std::fs::create_dir(&original).map_err(|e| read_err(&original, e))?;
            let mut mounted = false;
            if mount::overlay_supported() {
                let mut lowers = store.ensure_layer_cache(base)?;
                lowers.reverse();
                if !lowers.is_empty() && mount::mount_overlay_readonly(&lowers, &original).is_ok() {
                    mounted = true;
                }
            }
            if !mounted {
                for i in 0..base.manifest.layers().len() {
                    store.apply_image_layer(base, i, &original)?;
                }
            }
            let result = tree_diff::write_tree_diff(&rootfs, &original, &excluded, out)
                .map_err(|e| read_err(&rootfs, e));
            if mounted {
                let _ = mount::unmount(&original);
            }
            result
        }
    }
}

/// Commits the bundle at `dir` as `name` (a normalized store name).
pub fn commit_bundle(
    dir: &Path,
    name: &str,
    opts: &CommitOptions,
) -> Result<Committed, CommitError> {
    let marker = BundleMarker::read(dir)?;
    let store = Store::open(&marker.store)?;
    let _op = store.lock_operation()?;
    let base = base_image(&store, &marker)?;

    let mut out = ChangeWriter::new(LayerWriter::new(&store, opts.compression)?);
    write_changes(&store, &base, dir, &marker, &mut out)?;
    if out.entries == 0 {
        return Err(CommitError::NoChanges {
            dir: dir.to_path_buf(),
            image: marker.image.clone(),
        });
    }
    let layer = out.finish().map_err(|e| read_err(dir, e))?.finish()?;

    let mut config = base.config.clone();
    let mut cfg = config.config().clone().unwrap_or_default();
    change::apply(&mut cfg, &opts.changes);
    config.set_config(Some(cfg));
    let mut history = build::history_entry(&bundle_command(dir), opts.message.as_deref(), false);
    if let Some(a) = &opts.author {
        history.set_author(Some(a.clone()));
        config.set_author(Some(a.clone()));
    }
    build::append_layer(&mut config, &layer.diff_id, history);
    let mut layers = base.manifest.layers().clone();
    layers.push(layer.descriptor.clone());
    let image = build::store_image(&store, &config, layers)?;
    store.tag(name, &image.manifest)?;
    Ok(Committed {
        name: name.to_string(),
        manifest: image.manifest,
        layer,
    })
}
