//! An image's identity is the manifest (or index) its registry served, byte for byte, and
//! its digest: what `pull` prints, what `name@sha256:…` finds, what `push` sends back.
//!
//! OCI manifests and indexes are stored and tagged as they are. A Docker v2 schema 2
//! manifest (or manifest list) is stored as it is too, but skopeo and umoci read only OCI
//! manifests from an OCI layout, so index.json tags an OCI *view* of it beside it: the same
//! JSON with OCI media types (every config and layer blob unchanged), carrying the
//! original's digest, media type and size in annotations ([`ORIGINAL_DIGEST`], …). The
//! view is derived and replaceable; the original is never replaced, and every command
//! that names or sends an image uses the original.

use std::collections::HashMap;

use oci_spec::image::{Descriptor, MediaType};
use serde_json::Value;

use super::{Store, StoreError};

/// On a view's descriptor: the digest of the manifest or index it stands for.
pub const ORIGINAL_DIGEST: &str = "io.imgtool.original.digest";
/// On a view's descriptor: the original's media type.
pub const ORIGINAL_MEDIA_TYPE: &str = "io.imgtool.original.mediaType";
/// On a view's descriptor: the original's size in bytes.
pub const ORIGINAL_SIZE: &str = "io.imgtool.original.size";
/// On a tagged platform manifest: the identity digest of the index it was chosen from,
/// so a pull of another platform of the same index can keep both.
pub const SOURCE_INDEX: &str = "io.imgtool.index.digest";

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";

/// True for an image index or a Docker manifest list.
pub fn is_index_type(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == DOCKER_LIST
}

/// The manifest (or index) a stored descriptor stands for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub digest: String,
    pub media_type: String,
    pub size: u64,
}

fn annotation<'a>(d: &'a Descriptor, key: &str) -> Option<&'a str> {
    d.annotations().as_ref()?.get(key).map(String::as_str)
}

/// A media type as its string (oci-spec keeps unknown ones as `Other`).
pub fn media_type_str(m: &MediaType) -> String {
    match m {
        MediaType::Other(s) => s.clone(),
        m => m.to_string(),
    }
}

/// What `d` stands for: the original it is a view of, or itself.
pub fn identity(d: &Descriptor) -> Identity {
    match annotation(d, ORIGINAL_DIGEST) {
        Some(digest) => Identity {
            digest: digest.to_string(),
            media_type: annotation(d, ORIGINAL_MEDIA_TYPE)
                .unwrap_or_default()
                .to_string(),
            size: annotation(d, ORIGINAL_SIZE)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        },
        None => Identity {
            digest: d.digest().to_string(),
            media_type: media_type_str(d.media_type()),
            size: d.size(),
        },
    }
}

/// Every digest `d` keeps alive: its own and its original's.
pub fn digests_of(d: &Descriptor) -> Vec<String> {
    let mut out = vec![d.digest().to_string()];
    if let Some(o) = annotation(d, ORIGINAL_DIGEST) {
        out.push(o.to_string());
    }
    out
}

/// The OCI media type of a Docker one (None when it has none).
fn oci_media_type(docker: &str) -> Option<&'static str> {
    Some(match docker {
        DOCKER_MANIFEST => OCI_MANIFEST,
        DOCKER_LIST => OCI_INDEX,
        "application/vnd.docker.container.image.v1+json" => {
            "application/vnd.oci.image.config.v1+json"
        }
        "application/vnd.docker.image.rootfs.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.v1.tar+gzip"
        }
        "application/vnd.docker.image.rootfs.diff.tar" => "application/vnd.oci.image.layer.v1.tar",
        "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
            "application/vnd.oci.image.layer.v1.tar+zstd"
        }
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip" => {
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        }
        _ => return None,
    })
}

fn convert_media_type(v: &mut Value) -> Result<(), StoreError> {
    let Some(mt) = v.get("mediaType").and_then(Value::as_str) else {
        return Err(StoreError::Corrupt(
            "a Docker manifest's descriptor has no mediaType".into(),
        ));
    };
    if let Some(oci) = oci_media_type(mt) {
        v["mediaType"] = Value::String(oci.to_string());
    }
    Ok(())
}

/// The OCI view of a Docker schema 2 manifest: media types changed, blobs the same.
pub fn manifest_view(raw: &[u8]) -> Result<Vec<u8>, StoreError> {
    let bad = |e: String| StoreError::Corrupt(format!("cannot read the Docker manifest: {e}"));
    let mut m: Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    convert_media_type(&mut m)?;
    convert_media_type(m.get_mut("config").ok_or_else(|| bad("no config".into()))?)?;
    if let Some(layers) = m.get_mut("layers").and_then(Value::as_array_mut) {
        for l in layers {
            convert_media_type(l)?;
        }
    }
    serde_json::to_vec(&m).map_err(|e| bad(e.to_string()))
}

/// The OCI view of a Docker manifest list: each entry whose view is in `child_views`
/// (keyed by the child's original digest) points at that view, annotated with the
/// original; entries not in the store stay as they are.
pub fn index_view(
    raw: &[u8],
    child_views: &HashMap<String, Descriptor>,
) -> Result<Vec<u8>, StoreError> {
    let bad = |e: String| StoreError::Corrupt(format!("cannot read the manifest list: {e}"));
    let mut m: Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    m["mediaType"] = Value::String(OCI_INDEX.into());
    if let Some(entries) = m.get_mut("manifests").and_then(Value::as_array_mut) {
        for e in entries {
            let Some(digest) = e.get("digest").and_then(Value::as_str) else {
                continue;
            };
            let Some(view) = child_views.get(digest) else {
                continue;
            };
            let original = e.clone();
            e["mediaType"] = Value::String(media_type_str(view.media_type()));
            e["digest"] = Value::String(view.digest().to_string());
            e["size"] = Value::from(view.size());
            let ann = e
                .as_object_mut()
                .ok_or_else(|| bad("an entry is not an object".into()))?
                .entry("annotations")
                .or_insert_with(|| Value::Object(Default::default()));
            ann[ORIGINAL_DIGEST] = original["digest"].clone();
            ann[ORIGINAL_MEDIA_TYPE] = original["mediaType"].clone();
            ann[ORIGINAL_SIZE] = Value::String(original["size"].to_string());
        }
    }
    serde_json::to_vec(&m).map_err(|e| bad(e.to_string()))
}

/// A descriptor of `view` that stands for `original`.
pub fn annotate_view(mut view: Descriptor, original: &Identity) -> Descriptor {
    let mut ann = view.annotations().clone().unwrap_or_default();
    ann.insert(ORIGINAL_DIGEST.into(), original.digest.clone());
    ann.insert(ORIGINAL_MEDIA_TYPE.into(), original.media_type.clone());
    ann.insert(ORIGINAL_SIZE.into(), original.size.to_string());
    view.set_annotations(Some(ann));
    view
}

impl Store {
    /// Every blob `desc` needs, each once, what a document names before the document:
    /// layers and configs, manifests (and their originals), indexes. Missing → error.
    pub fn blobs_of(&self, desc: &Descriptor) -> Result<Vec<String>, StoreError> {
        let mut out: Vec<String> = Vec::new();
        self.collect_blobs(desc, &mut out, 0)?;
        Ok(out)
    }

    fn collect_blobs(
        &self,
        desc: &Descriptor,
        out: &mut Vec<String>,
        depth: usize,
    ) -> Result<(), StoreError> {
        let digest = desc.digest().to_string();
        let bytes = self.read_blob(&digest)?;
        let push = |d: String, out: &mut Vec<String>| {
            if !out.contains(&d) {
                out.push(d);
            }
        };
        if is_index_type(&media_type_str(desc.media_type())) {
            if depth > 4 {
                return Err(StoreError::Corrupt(format!(
                    "index {digest} nests too deep"
                )));
            }
            let index: oci_spec::image::ImageIndex = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("index {digest}: {e}")))?;
            for m in index.manifests() {
                self.collect_blobs(m, out, depth + 1)?;
            }
        } else {
            let m: oci_spec::image::ImageManifest = serde_json::from_slice(&bytes)
                .map_err(|e| StoreError::Corrupt(format!("manifest {digest}: {e}")))?;
            for b in m.layers().iter().chain(std::iter::once(m.config())) {
                let d = b.digest().to_string();
                if !self.has_blob(&d) {
                    return Err(StoreError::Corrupt(format!(
                        "blob {d} of manifest {digest} is missing from the store"
                    )));
                }
                push(d, out);
            }
        }
        for d in digests_of(desc).into_iter().rev() {
            if !self.has_blob(&d) {
                return Err(StoreError::Corrupt(format!(
                    "blob {d} is missing from the store"
                )));
            }
            push(d, out);
        }
        Ok(())
    }

    /// Stores a manifest as its registry served it (`media_type`); for a Docker one, also
    /// its OCI view. Returns the descriptor to tag (the view, standing for the original).
    pub fn put_served_manifest(
        &self,
        raw: &[u8],
        media_type: &str,
    ) -> Result<Descriptor, StoreError> {
        let original = self.put_bytes(MediaType::from(media_type), raw)?;
        if media_type != DOCKER_MANIFEST {
            return Ok(original);
        }
        let view = self.put_bytes(MediaType::ImageManifest, &manifest_view(raw)?)?;
        Ok(annotate_view(view, &identity(&original)))
    }

    /// Stores an index as served; for a Docker manifest list, also its OCI view whose
    /// entries point at the views in `child_views` (by original digest).
    pub fn put_served_index(
        &self,
        raw: &[u8],
        media_type: &str,
        child_views: &HashMap<String, Descriptor>,
    ) -> Result<Descriptor, StoreError> {
        let original = self.put_bytes(MediaType::from(media_type), raw)?;
        if media_type != DOCKER_LIST {
            return Ok(original);
        }
        let view = self.put_bytes(MediaType::ImageIndex, &index_view(raw, child_views)?)?;
        Ok(annotate_view(view, &identity(&original)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_manifest_keeps_its_identity_beside_an_oci_view() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let raw = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"},"layers":[{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","size":3,"digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"}]}"#;
        let tagged = store.put_served_manifest(raw, DOCKER_MANIFEST).unwrap();
        let id = identity(&tagged);
        assert_eq!(id.media_type, DOCKER_MANIFEST);
        assert_eq!(id.size, raw.len() as u64);
        assert_eq!(store.read_blob(&id.digest).unwrap(), raw, "byte for byte");
        assert_ne!(tagged.digest().to_string(), id.digest);
        let view: Value =
            serde_json::from_slice(&store.read_blob(tagged.digest().as_ref()).unwrap()).unwrap();
        assert_eq!(view["mediaType"], OCI_MANIFEST);
        assert_eq!(
            view["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(
            view["layers"][0]["digest"],
            "sha256:1111111111111111111111111111111111111111111111111111111111111111"
        );
        assert_eq!(digests_of(&tagged).len(), 2);

        let oci =
            br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json"}"#;
        let plain = store.put_served_manifest(oci, OCI_MANIFEST).unwrap();
        assert_eq!(identity(&plain).digest, plain.digest().to_string());
        assert_eq!(digests_of(&plain).len(), 1);
    }
}
