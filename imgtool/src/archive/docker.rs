//! docker-archive, the format of `docker save`, `podman save` and skopeo's
//! `docker-archive:`: `manifest.json` lists each image's config member, its RepoTags and
//! its layer members in order; layers are tars (uncompressed when written, possibly
//! compressed in archives others wrote) whose sha256 is the config's rootfs.diff_ids entry.
//! We write `<config-hex>.json`, `<diff_id-hex>.tar`, `manifest.json` and `repositories`.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom, Write};

use oci_spec::image::Descriptor;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::reader::ArchiveReader;
use super::save::{media_type_of, open_blob, SaveImage};
use super::{
    append_member, digest_in_name, sha256_of, sniff_compression, ArchiveError, LoadedImage,
};
use crate::image::build::{self, layer_media_type};
use crate::layer::Compression;
use crate::reference;
use crate::store::Store;

/// One entry of manifest.json.
#[derive(Debug, Serialize, Deserialize)]
struct ManifestEntry {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers", default)]
    layers: Vec<String>,
}

fn corrupt(msg: String) -> ArchiveError {
    ArchiveError::Corrupt(msg)
}

/// Stores every image of a docker-archive (untagged: the caller tags).
pub fn load(store: &Store, archive: &ArchiveReader) -> Result<Vec<LoadedImage>, ArchiveError> {
    let bytes = archive.read_json_bytes("manifest.json")?;
    let entries: Vec<ManifestEntry> =
        serde_json::from_slice(&bytes).map_err(|e| corrupt(format!("manifest.json: {e}")))?;
    if entries.is_empty() {
        return Err(corrupt("manifest.json lists no image".into()));
    }
    // Layers shared between images are verified and stored once.
    let mut stored: HashMap<String, Descriptor> = HashMap::new();
    let mut images = Vec::new();
    for entry in &entries {
        let config_bytes = archive.read_json_bytes(&entry.config)?;
        if let Some(expected) = digest_in_name(&entry.config) {
            let actual = sha256_of(&config_bytes);
            if actual != expected {
                return Err(ArchiveError::DigestMismatch {
                    what: format!("config {}", entry.config),
                    expected,
                    actual,
                });
            }
        }
        let config: Value = serde_json::from_slice(&config_bytes)
            .map_err(|e| corrupt(format!("config {}: {e}", entry.config)))?;
        let diff_ids: Vec<String> = config["rootfs"]["diff_ids"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| d.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        if diff_ids.len() != entry.layers.len() {
            return Err(corrupt(format!(
                "manifest.json lists {} layers for {} but its config has {} diff_ids",
                entry.layers.len(),
                entry.config,
                diff_ids.len()
            )));
        }
        let mut layers = Vec::new();
        for (member, diff_id) in entry.layers.iter().zip(&diff_ids) {
            let key = format!("{member}\0{diff_id}");
            let desc = match stored.get(&key) {
                Some(d) => d.clone(),
                None => {
                    let d = store_layer(store, archive, member, diff_id)?;
                    stored.insert(key, d.clone());
                    d
                }
            };
            layers.push(desc);
        }
        let img = build::store_image_with_config_bytes(store, &config_bytes, layers)?;
        let mut names = Vec::new();
        for tag in entry.repo_tags.iter().flatten() {
            let r = reference::parse(tag)
                .map_err(|e| corrupt(format!("manifest.json RepoTags: {e}")))?;
            let name = reference::store_name(&r);
            if !names.contains(&name) {
                names.push(name);
            }
        }
        images.push(LoadedImage {
            names,
            manifest: img.manifest,
        });
    }
    Ok(images)
}

/// Verifies a layer member against its diff_id and stores it as it is (an uncompressed
/// tar's blob digest is its diff_id; a compressed one keeps its compression).
fn store_layer(
    store: &Store,
    archive: &ArchiveReader,
    member: &str,
    diff_id: &str,
) -> Result<Descriptor, ArchiveError> {
    let compression = sniff_compression(&archive.head(member, 4)?);
    let size = archive.size(member)?;
    let mismatch = |actual: String| ArchiveError::DigestMismatch {
        what: format!("layer {member}"),
        expected: diff_id.to_string(),
        actual,
    };
    if compression == Compression::None {
        let digest_ok = store.blob_path(diff_id).is_ok();
        if !digest_ok {
            return Err(corrupt(format!(
                "layer {member}: unsupported diff_id {diff_id:?}"
            )));
        }
        match store.put_blob(diff_id, size, archive.open(member)?) {
            Ok(_) => {}
            Err(crate::store::StoreError::DigestMismatch { actual, .. }) => {
                return Err(mismatch(actual))
            }
            Err(e) => return Err(e.into()),
        }
        return Ok(build::descriptor(
            layer_media_type(compression),
            diff_id,
            size,
        )?);
    }
    // Compressed: the diff_id is the digest of the decompressed stream.
    let mut hasher = Sha256::new();
    let mut decoder = compression
        .decoder(archive.open(member)?)
        .map_err(|e| corrupt(format!("layer {member}: {e}")))?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = decoder
            .read(&mut buf)
            .map_err(|e| corrupt(format!("layer {member} does not decompress: {e}")))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != diff_id {
        return Err(mismatch(actual));
    }
    let mut blob = store.blob_writer()?;
    std::io::copy(&mut archive.open(member)?, &mut blob)
        .map_err(|e| ArchiveError::Io(format!("cannot store layer {member}: {e}")))?;
    let written = blob.finish()?;
    Ok(build::descriptor(
        layer_media_type(compression),
        &written.digest,
        written.size,
    )?)
}

fn hex_of(digest: &str) -> &str {
    digest.strip_prefix("sha256:").unwrap_or(digest)
}

/// `docker.io/library/busybox:latest` → (`busybox`, `latest`), as docker lists RepoTags.
fn familiar(name: &str) -> Option<(String, String)> {
    let r = reference::parse(name).ok()?;
    let tag = r.tag()?.to_string();
    Some((reference::familiar_repository(&r), tag))
}

/// Writes `images` as a docker-archive.
pub fn write(store: &Store, images: &[SaveImage], out: impl Write) -> Result<(), ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io(format!("cannot write the archive: {e}"));
    let mut tar = tar::Builder::new(out);
    let mut written: std::collections::HashSet<String> = Default::default();
    let mut manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for img in images {
        let config_name = format!("{}.json", hex_of(img.config.digest().as_ref()));
        if written.insert(config_name.clone()) {
            append_member(
                &mut tar,
                &config_name,
                img.config_bytes.len() as u64,
                &img.config_bytes[..],
            )
            .map_err(io)?;
        }
        let mut layer_names = Vec::new();
        for (layer, diff_id) in img.layers.iter().zip(&img.diff_ids) {
            let name = format!("{}.tar", hex_of(diff_id));
            if written.insert(name.clone()) {
                append_layer(store, &mut tar, layer, diff_id, &name)?;
            }
            layer_names.push(name);
        }
        let mut repo_tags = Vec::new();
        for n in &img.names {
            if let Some((repo, tag)) = familiar(n) {
                repo_tags.push(format!("{repo}:{tag}"));
                if let Some(top) = img.diff_ids.last() {
                    repositories
                        .entry(repo)
                        .or_default()
                        .insert(tag, hex_of(top).to_string());
                }
            }
        }
        manifest.push(ManifestEntry {
            config: config_name,
            repo_tags: Some(repo_tags),
            layers: layer_names,
        });
    }
    let manifest = serde_json::to_vec(&manifest).map_err(|e| ArchiveError::Io(e.to_string()))?;
    append_member(
        &mut tar,
        "manifest.json",
        manifest.len() as u64,
        &manifest[..],
    )
    .map_err(io)?;
    let repos = serde_json::to_vec(&repositories).map_err(|e| ArchiveError::Io(e.to_string()))?;
    append_member(&mut tar, "repositories", repos.len() as u64, &repos[..]).map_err(io)?;
    tar.into_inner().map_err(io)?.flush().map_err(io)?;
    Ok(())
}

/// A layer as the uncompressed tar docker-archive needs, checked against its diff_id.
fn append_layer<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    layer: &Descriptor,
    diff_id: &str,
    name: &str,
) -> Result<(), ArchiveError> {
    let io = |e: std::io::Error| ArchiveError::Io(format!("cannot write layer {diff_id}: {e}"));
    let media_type = media_type_of(layer);
    let compression = Compression::from_media_type(&media_type).ok_or_else(|| {
        ArchiveError::Image(format!(
            "layer {} has unknown media type {media_type}",
            layer.digest()
        ))
    })?;
    let (blob, size) = open_blob(store, layer.digest().as_ref())?;
    if compression == Compression::None {
        return append_member(tar, name, size, blob).map_err(io);
    }
    // Decompress to a scratch file first: the tar header needs the size up front.
    let mut plain = store.scratch_file()?;
    let mut hasher = Sha256::new();
    // A stream that does not decompress is reported as its blob having changed on disk
    // when it has, not as whatever the decompressor tripped over first.
    let unreadable = |e: std::io::Error| match store.check_blob(layer.digest().as_ref()) {
        Err(changed) => ArchiveError::Store(changed),
        Ok(()) => io(e),
    };
    let mut decoder = compression.decoder(blob).map_err(unreadable)?;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = decoder.read(&mut buf).map_err(unreadable)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        plain.write_all(&buf[..n]).map_err(io)?;
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    if actual != diff_id {
        return Err(ArchiveError::Image(format!(
            "stored layer {} decompresses to {actual}, not its diff_id {diff_id}",
            layer.digest()
        )));
    }
    let plain_size = plain.stream_position().map_err(io)?;
    plain.seek(SeekFrom::Start(0)).map_err(io)?;
    append_member(tar, name, plain_size, plain).map_err(io)
}
