//! oci-archive: a tar of an OCI image layout (image-spec image-layout.md): `oci-layout`,
//! `index.json` naming each image (`org.opencontainers.image.ref.name`, and containerd's
//! `io.containerd.image.name` that docker 25+ also writes), and content-addressed blobs
//! copied byte for byte, so manifest and config digests survive a save/load round trip.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;

use oci_spec::image::Descriptor;
use serde_json::{json, Value};

use super::reader::ArchiveReader;
use super::save::{media_type_of, open_blob, pick_platform, SaveImage};
use super::{append_dir, append_member, sha256_of, ArchiveError, LoadedImage};
use crate::reference;
use crate::store::identity::identity;
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

/// Stores everything `desc` needs from the archive (configs, layers, manifests, indexes,
/// and a Docker manifest's original when `desc` is the OCI form of one), every blob
/// verified; documents are stored after what they name.
fn store_tree(
    store: &Store,
    archive: &ArchiveReader,
    desc: &Descriptor,
    depth: usize,
) -> Result<(), ArchiveError> {
    let (bytes, doc) = read_json_blob(archive, desc, "manifest")?;
    let mt = doc["mediaType"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| desc.media_type().to_string());
    if is_index_type(&mt) || doc.get("manifests").is_some() {
        if depth > 4 {
            return Err(corrupt(format!("index {} nests too deep", desc.digest())));
        }
        let children: Vec<Descriptor> = serde_json::from_value(doc["manifests"].clone())
            .map_err(|e| corrupt(format!("index {}: {e}", desc.digest())))?;
        for child in &children {
            store_tree(store, archive, child, depth + 1)?;
        }
    } else {
        let config: Descriptor = serde_json::from_value(doc["config"].clone())
            .map_err(|e| corrupt(format!("manifest {}: config: {e}", desc.digest())))?;
        let layers: Vec<Descriptor> = serde_json::from_value(doc["layers"].clone())
            .map_err(|e| corrupt(format!("manifest {}: layers: {e}", desc.digest())))?;
        for (i, layer) in layers.iter().enumerate() {
            store_blob(store, archive, layer, &format!("layer {}", i + 1))?;
        }
        store_blob(store, archive, &config, "config")?;
    }
    let id = identity(desc);
    if id.digest != desc.digest().to_string() {
        let digest: oci_spec::image::Digest = id
            .digest
            .parse()
            .map_err(|e| corrupt(format!("bad original digest {}: {e}", id.digest)))?;
        let original = Descriptor::new(
            oci_spec::image::MediaType::from(id.media_type.as_str()),
            id.size,
            digest,
        );
        store_blob(store, archive, &original, "original manifest")?;
    }
    store.put_blob(desc.digest().as_ref(), bytes.len() as u64, &bytes[..])?;
    Ok(())
}

/// `desc` with only the annotations that keep an image's identity.
fn identity_only(desc: &Descriptor) -> Descriptor {
    let mut d = desc.clone();
    let mut ann = d.annotations().clone().unwrap_or_default();
    ann.retain(|k, _| k.starts_with("io.imgtool.original."));
    d.set_annotations((!ann.is_empty()).then_some(ann));
    d
}

/// Stores every image the archive's index.json lists (untagged: the caller tags). An
/// index whose every platform is in the archive is stored whole; otherwise the image of
/// this machine's platform.
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
        let whole = identity_only(&desc);
        let stored = match store_tree(store, archive, &whole, 0) {
            Ok(()) => whole,
            Err(ArchiveError::Missing(_)) if is_index_type(desc.media_type().as_ref()) => {
                let chosen = one_platform(archive, &desc)?;
                store_tree(store, archive, &chosen, 0)?;
                chosen
            }
            Err(e) => return Err(e),
        };
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

/// The manifest of this machine's platform in index `desc` (through nested indexes).
fn one_platform(archive: &ArchiveReader, desc: &Descriptor) -> Result<Descriptor, ArchiveError> {
    let mut current = desc.clone();
    for _ in 0..4 {
        let (_, doc) = read_json_blob(archive, &current, "manifest")?;
        let mt = doc["mediaType"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| current.media_type().to_string());
        if !is_index_type(&mt) && doc.get("manifests").is_none() {
            return Ok(identity_only(&current));
        }
        let chosen = pick_platform(&doc)
            .ok_or_else(|| corrupt(format!("index {} lists no manifest", current.digest())))?;
        current =
            serde_json::from_value(chosen).map_err(|e| corrupt(format!("nested index: {e}")))?;
        current.set_platform(None);
    }
    Err(corrupt(format!("index {} nests too deep", desc.digest())))
}

/// Writes `images` as an oci-archive: blobs first, then index.json naming each image
/// (an index when the name holds a whole one), with the annotations that keep a Docker
/// manifest's identity.
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
        for digest in &img.blobs {
            if !written.insert(digest.clone()) {
                continue;
            }
            let (blob, size) = open_blob(store, digest)?;
            append_member(&mut tar, &blob_member(digest)?, size, blob).map_err(io)?;
        }
        let mut base = json!({
            "mediaType": media_type_of(&img.top),
            "digest": img.top.digest().to_string(),
            "size": img.top.size(),
        });
        if let Some(p) = img.top.platform() {
            base["platform"] =
                serde_json::to_value(p).map_err(|e| ArchiveError::Io(e.to_string()))?;
        }
        let kept: BTreeMap<String, String> = img
            .top
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        if !kept.is_empty() {
            base["annotations"] = json!(kept);
        }
        if img.names.is_empty() {
            index_entries.push(base.clone());
        }
        for name in &img.names {
            let mut e = base.clone();
            let mut ann = kept.clone();
            ann.insert(REF_NAME.into(), name.clone());
            ann.insert(CONTAINERD_NAME.into(), name.clone());
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
