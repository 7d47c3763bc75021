//! oci-archive: a tar of an OCI image layout (image-spec image-layout.md): `oci-layout`,
//! `index.json` naming each image (`org.opencontainers.image.ref.name`, and containerd's
//! `io.containerd.image.name` that docker 25+ also writes), and content-addressed blobs
//! copied byte for byte, so manifest and config digests survive a save/load round trip.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use oci_spec::image::Descriptor;
use serde_json::{json, Value};

use super::reader::ArchiveReader;
use super::save::{open_blob, pick_platform, SaveImage};
use super::{append_dir, append_member, sha256_of, ArchiveError, LoadedImage};
use crate::reference;
use crate::store::{Store, StoreError, REF_NAME};

/// containerd's (and docker's) full image name annotation.
pub const CONTAINERD_NAME: &str = "io.containerd.image.name";

fn corrupt(msg: String) -> ArchiveError {
    ArchiveError::Corrupt(msg)
}

fn blob_member(digest: &str) -> Result<String, ArchiveError> {
    let (alg, hex) = digest
        .split_once(':')
        .filter(|(_, h)| !h.is_empty() && !h.contains('/'))
        .ok_or_else(|| corrupt(format!("bad digest {digest:?}")))?;
    Ok(format!("blobs/{alg}/{hex}"))
}

/// Stores the blob `desc` names, verifying size and digest (already stored: kept).
fn store_blob(
    store: &Store,
    archive: &ArchiveReader,
    desc: &Descriptor,
    what: &str,
) -> Result<(), ArchiveError> {
    let digest = desc.digest().to_string();
    if let Ok(p) = store.blob_path(&digest) {
        if p.exists() {
            return Ok(());
        }
    }
    let member = blob_member(&digest)?;
    if !archive.has(&member) {
        return Err(ArchiveError::Missing(format!("{what} blob {digest}")));
    }
    match store.put_blob(&digest, desc.size(), archive.open(&member)?) {
        Ok(_) => Ok(()),
        Err(StoreError::DigestMismatch {
            expected, actual, ..
        }) => Err(ArchiveError::DigestMismatch {
            what: format!("{what} blob {member}"),
            expected,
            actual,
        }),
        Err(StoreError::SizeMismatch {
            expected, actual, ..
        }) => Err(corrupt(format!(
            "{what} blob {member} has {actual} bytes, its descriptor says {expected}"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// A JSON blob of the archive, verified against its digest.
fn read_json_blob(
    archive: &ArchiveReader,
    desc: &Descriptor,
    what: &str,
) -> Result<(Vec<u8>, Value), ArchiveError> {
    let digest = desc.digest().to_string();
    let bytes = archive
        .read_json_bytes(&blob_member(&digest)?)
        .map_err(|e| match e {
            ArchiveError::Missing(_) => ArchiveError::Missing(format!("{what} blob {digest}")),
            e => e,
        })?;
    let actual = sha256_of(&bytes);
    if actual != digest {
        return Err(ArchiveError::DigestMismatch {
            what: what.to_string(),
            expected: digest,
            actual,
        });
    }
    let doc =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("{what} {digest}: {e}")))?;
    Ok((bytes, doc))
}

/// The store name an index entry gives its image: containerd's full name, else a
/// `ref.name` that is a whole reference (with a repository); a bare tag like `latest`
/// names no repository, so that image is loaded untagged.
fn image_name(desc: &Descriptor) -> Result<Option<String>, ArchiveError> {
    let Some(ann) = desc.annotations() else {
        return Ok(None);
    };
    let name = match (ann.get(CONTAINERD_NAME), ann.get(REF_NAME)) {
        (Some(full), _) => full,
        (None, Some(r)) if r.contains('/') || r.contains(':') => r,
        _ => return Ok(None),
    };
    let r = reference::parse(name).map_err(|e| corrupt(format!("index.json: {e}")))?;
    Ok(Some(reference::store_name(&r)))
}

fn is_index_type(mt: &str) -> bool {
    mt == "application/vnd.oci.image.index.v1+json"
        || mt == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// Stores every image the archive's index.json lists (untagged: the caller tags).
pub fn load(store: &Store, archive: &ArchiveReader) -> Result<Vec<LoadedImage>, ArchiveError> {
    let bytes = archive.read_json_bytes("index.json")?;
    let index: Value =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("index.json: {e}")))?;
    let entries = index["manifests"]
        .as_array()
        .ok_or_else(|| corrupt("index.json has no manifests list".into()))?;
    if entries.is_empty() {
        return Err(corrupt("index.json lists no image".into()));
    }
    let mut images: Vec<LoadedImage> = Vec::new();
    for entry in entries {
        let desc: Descriptor = serde_json::from_value(entry.clone())
            .map_err(|e| corrupt(format!("index.json: {e}")))?;
        let name = image_name(&desc)?;
        // A multi-platform index: load this machine's image.
        let mut manifest_desc = desc.clone();
        let (mut manifest_bytes, mut manifest) =
            read_json_blob(archive, &manifest_desc, "manifest")?;
        for _ in 0..4 {
            let mt = manifest["mediaType"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(|| manifest_desc.media_type().to_string());
            if !is_index_type(&mt) && manifest.get("manifests").is_none() {
                break;
            }
            let chosen = pick_platform(&manifest).ok_or_else(|| {
                corrupt(format!(
                    "index {} lists no manifest",
                    manifest_desc.digest()
                ))
            })?;
            manifest_desc = serde_json::from_value(chosen)
                .map_err(|e| corrupt(format!("nested index: {e}")))?;
            (manifest_bytes, manifest) = read_json_blob(archive, &manifest_desc, "manifest")?;
        }
        let config: Descriptor = serde_json::from_value(manifest["config"].clone())
            .map_err(|e| corrupt(format!("manifest {}: config: {e}", manifest_desc.digest())))?;
        let layers: Vec<Descriptor> = serde_json::from_value(manifest["layers"].clone())
            .map_err(|e| corrupt(format!("manifest {}: layers: {e}", manifest_desc.digest())))?;
        for (i, layer) in layers.iter().enumerate() {
            store_blob(store, archive, layer, &format!("layer {}", i + 1))?;
        }
        store_blob(store, archive, &config, "config")?;
        // The manifest last: once it is stored, everything it references is.
        store.put_blob(
            manifest_desc.digest().as_ref(),
            manifest_bytes.len() as u64,
            &manifest_bytes[..],
        )?;
        let mut stored = Descriptor::new(
            manifest_desc.media_type().clone(),
            manifest_bytes.len() as u64,
            manifest_desc.digest().clone(),
        );
        stored.set_annotations(None);
        match images
            .iter_mut()
            .find(|i| i.manifest.digest() == stored.digest())
        {
            Some(existing) => existing.names.extend(name),
            None => images.push(LoadedImage {
                names: name.into_iter().collect(),
                manifest: stored,
            }),
        }
    }
    Ok(images)
}

/// Writes `images` as an oci-archive: blobs first, then index.json naming each image.
pub fn write(store: &Store, images: &[SaveImage], out: impl Write) -> Result<(), ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io(format!("cannot write the archive: {e}"));
    let mut tar = tar::Builder::new(out);
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    append_member(&mut tar, "oci-layout", layout.len() as u64, &layout[..]).map_err(io)?;
    append_dir(&mut tar, "blobs/").map_err(io)?;
    append_dir(&mut tar, "blobs/sha256/").map_err(io)?;
    let mut written: HashSet<String> = HashSet::new();
    let mut index_entries: Vec<Value> = Vec::new();
    for img in images {
        let mut blobs: Vec<&Descriptor> = img.layers.iter().collect();
        blobs.push(&img.config);
        blobs.push(&img.manifest);
        for b in blobs {
            let digest = b.digest().to_string();
            if !written.insert(digest.clone()) {
                continue;
            }
            let file = open_blob(store, &digest)?;
            let size = file.metadata().map_err(io)?.len();
            append_member(&mut tar, &blob_member(&digest)?, size, file).map_err(io)?;
        }
        let base = json!({
            "mediaType": img.manifest.media_type().to_string(),
            "digest": img.manifest.digest().to_string(),
            "size": img.manifest.size(),
        });
        if img.names.is_empty() {
            index_entries.push(base.clone());
        }
        for name in &img.names {
            let mut e = base.clone();
            let ann: BTreeMap<&str, &str> =
                BTreeMap::from([(REF_NAME, name.as_str()), (CONTAINERD_NAME, name.as_str())]);
            e["annotations"] = json!(ann);
            index_entries.push(e);
        }
    }
    let index = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_entries,
    });
    let index = serde_json::to_vec(&index).map_err(|e| ArchiveError::Io(e.to_string()))?;
    append_member(&mut tar, "index.json", index.len() as u64, &index[..]).map_err(io)?;
    tar.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(())
}
