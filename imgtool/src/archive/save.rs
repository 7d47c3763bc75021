//! What `save` writes: the images the given references name in the store, each with its
//! manifest, config and layers read back from the store's blobs.

use std::io::Write;

use oci_spec::image::{Descriptor, MediaType};
use serde_json::Value;

use super::{ArchiveError, Format};
use crate::image::build::host_platform;
use crate::reference;
use crate::store::identity::{identity, is_index_type};
use crate::store::Store;

/// One image to save, with every name it is saved under.
#[derive(Debug, Clone)]
pub struct SaveImage {
    /// Normalized store names (`docker.io/library/busybox:latest`); empty when the image
    /// was named by digest only.
    pub names: Vec<String>,
    /// What an oci-archive's index.json names: the stored descriptor (keeping what
    /// identifies it as its registry served it), the whole index when the name holds
    /// one with every platform in the store.
    pub top: Descriptor,
    /// Every blob an oci-archive holds for `top`.
    pub blobs: Vec<String>,
    /// Set when `top` had to be one platform of an incomplete index.
    pub note: Option<String>,
    /// The (platform) manifest docker-archive writes, without annotations.
    pub manifest: Descriptor,
    pub config: Descriptor,
    pub config_bytes: Vec<u8>,
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<String>,
}

fn image_err(e: impl std::fmt::Display) -> ArchiveError {
    ArchiveError::Image(e.to_string())
}

/// Reads a stored JSON blob.
fn read_blob(store: &Store, digest: &str) -> Result<Vec<u8>, ArchiveError> {
    let path = store.blob_path(digest)?;
    std::fs::read(&path).map_err(|e| {
        image_err(format!(
            "the store is missing blob {digest} ({}): {e}",
            path.display()
        ))
    })
}

/// Opens a stored blob.
/// A stored blob and its size, for copying into an archive: its reader fails at the end
/// unless the bytes have the blob's digest (a blob changed on disk is never saved).
pub(crate) fn open_blob(
    store: &Store,
    digest: &str,
) -> Result<(crate::store::read::VerifiedBlob, u64), ArchiveError> {
    let path = store.blob_path(digest)?;
    if !path.exists() {
        return Err(image_err(format!(
            "the store is missing blob {digest} ({})",
            path.display()
        )));
    }
    Ok(store.open_verified_blob(digest)?)
}

fn is_index(media_type: &str, doc: &Value) -> bool {
    media_type == "application/vnd.oci.image.index.v1+json"
        || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
        || (media_type.is_empty() && doc.get("manifests").is_some())
}

/// The manifest of an index that fits this machine (else the first).
pub(crate) fn pick_platform(index: &Value) -> Option<Value> {
    let manifests = index.get("manifests")?.as_array()?;
    let (arch, os) = host_platform();
    let (arch, os) = (arch.to_string(), os.to_string());
    manifests
        .iter()
        .find(|m| {
            let p = &m["platform"];
            p["architecture"].as_str() == Some(arch.as_str())
                && p["os"].as_str() == Some(os.as_str())
        })
        .or_else(|| manifests.first())
        .cloned()
}

fn parse_descriptor(v: &Value, what: &str) -> Result<Descriptor, ArchiveError> {
    serde_json::from_value(v.clone()).map_err(|e| image_err(format!("bad {what} descriptor: {e}")))
}

/// Reads a manifest (following an index to this platform's manifest) and its config.
fn read_image(store: &Store, manifest: Descriptor) -> Result<SaveImage, ArchiveError> {
    let mut manifest = manifest;
    manifest.set_annotations(None);
    let mut doc: Value;
    let mut depth = 0;
    loop {
        let bytes = read_blob(store, manifest.digest().as_ref())?;
        doc = serde_json::from_slice(&bytes)
            .map_err(|e| image_err(format!("manifest {}: {e}", manifest.digest())))?;
        let mt = manifest.media_type().to_string();
        let mt = doc["mediaType"].as_str().map(str::to_string).unwrap_or(mt);
        if !is_index(&mt, &doc) {
            break;
        }
        depth += 1;
        let chosen = pick_platform(&doc).filter(|_| depth < 4).ok_or_else(|| {
            image_err(format!(
                "index {} lists no usable manifest",
                manifest.digest()
            ))
        })?;
        manifest = parse_descriptor(&chosen, "manifest")?;
        manifest.set_annotations(None);
        manifest.set_platform(None);
    }
    let config = parse_descriptor(&doc["config"], "config")?;
    let layers: Vec<Descriptor> = doc["layers"]
        .as_array()
        .map(|a| a.iter().map(|l| parse_descriptor(l, "layer")).collect())
        .transpose()?
        .unwrap_or_default();
    let config_bytes = read_blob(store, config.digest().as_ref())?;
    let cfg: Value = serde_json::from_slice(&config_bytes)
        .map_err(|e| image_err(format!("config {}: {e}", config.digest())))?;
    let diff_ids: Vec<String> = cfg["rootfs"]["diff_ids"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers.len() {
        return Err(image_err(format!(
            "image {} has {} layers but its config lists {} diff_ids",
            manifest.digest(),
            layers.len(),
            diff_ids.len()
        )));
    }
    Ok(SaveImage {
        names: Vec::new(),
        top: manifest.clone(),
        blobs: Vec::new(),
        note: None,
        manifest,
        config,
        config_bytes,
        layers,
        diff_ids,
    })
}

/// The images `refs` name (`busybox`, `localhost/app:v1`, `name@sha256:…` with the
/// registry's digest, an ID prefix), one per distinct image, each with all the names
/// given for it.
pub fn resolve(store: &Store, refs: &[String]) -> Result<Vec<SaveImage>, ArchiveError> {
    let mut images: Vec<SaveImage> = Vec::new();
    for input in refs {
        let stored = store.find(input)?;
        // Named by digest or ID: saved without a name, as docker does.
        let named = stored.name == *input
            || reference::parse(input)
                .is_ok_and(|r| r.digest().is_none() && reference::store_name(&r) == stored.name);
        let id = stored.digest();
        let pos = match images.iter().position(|i| identity(&i.top).digest == id) {
            Some(p) => p,
            None => {
                images.push(read_stored(store, &stored.descriptor)?);
                images.len() - 1
            }
        };
        if named && !images[pos].names.contains(&stored.name) {
            images[pos].names.push(stored.name.clone());
        }
    }
    Ok(images)
}

/// A stored image (or index) to save: the platform image docker-archive writes and the
/// blobs of everything an oci-archive holds.
fn read_stored(store: &Store, desc: &Descriptor) -> Result<SaveImage, ArchiveError> {
    let mut top = desc.clone();
    let mut ann = top.annotations().clone().unwrap_or_default();
    ann.retain(|k, _| k.starts_with("io.imgtool.original."));
    top.set_annotations((!ann.is_empty()).then_some(ann));
    let platform = if is_index_type(&media_type_of(desc)) {
        store.index_entry(desc)?
    } else {
        desc.clone()
    };
    let (top, blobs, note) = match store.blobs_of(&top) {
        Ok(blobs) => (top, blobs, None),
        Err(e) if is_index_type(&media_type_of(desc)) => {
            let mut single = platform.clone();
            single.set_platform(None);
            let note = format!(
                "not every platform of index {} is in the store ({e}); saved the image {} alone",
                identity(desc).digest,
                identity(&platform).digest
            );
            (single.clone(), store.blobs_of(&single)?, Some(note))
        }
        Err(e) => return Err(e.into()),
    };
    let mut img = read_image(store, platform)?;
    img.top = top;
    img.blobs = blobs;
    img.note = note;
    Ok(img)
}

/// Writes `images` as an archive of `format` to `out`.
pub fn write(
    store: &Store,
    images: &[SaveImage],
    format: Format,
    out: impl Write,
) -> Result<(), ArchiveError> {
    match format {
        Format::DockerArchive => super::docker::write(store, images, out),
        Format::OciArchive => super::oci::write(store, images, out),
    }
}

/// The media type string of a descriptor.
pub(crate) fn media_type_of(d: &Descriptor) -> String {
    match d.media_type() {
        MediaType::Other(s) => s.clone(),
        m => m.to_string(),
    }
}
