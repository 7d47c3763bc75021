//! Docker v2 schema 2 manifests as OCI manifests. The store is an OCI image layout that
//! skopeo and umoci must read, and they read only OCI manifests from one; so a Docker
//! manifest is stored converted, as `skopeo copy docker://… oci:…` does: the media types
//! change, every blob (config and layers) stays byte for byte the same.

use serde_json::Value;

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";

/// The OCI media type for a Docker one (None when it has no OCI equivalent).
fn oci_media_type(docker: &str) -> Option<&'static str> {
    Some(match docker {
        DOCKER_MANIFEST => "application/vnd.oci.image.manifest.v1+json",
        DOCKER_CONFIG => "application/vnd.oci.image.config.v1+json",
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

#[derive(Debug, thiserror::Error)]
#[error("cannot convert the Docker manifest to OCI: {0}")]
pub struct ConvertError(String);

/// Rewrites a Docker schema 2 manifest as an OCI image manifest (serialized compactly).
pub fn manifest_to_oci(raw: &[u8]) -> Result<Vec<u8>, ConvertError> {
    let mut m: Value = serde_json::from_slice(raw).map_err(|e| ConvertError(e.to_string()))?;
    let set = |v: &mut Value| -> Result<(), ConvertError> {
        let mt = v
            .get("mediaType")
            .and_then(Value::as_str)
            .ok_or_else(|| ConvertError("a descriptor has no mediaType".into()))?;
        let oci = oci_media_type(mt)
            .ok_or_else(|| ConvertError(format!("no OCI media type for {mt}")))?;
        v["mediaType"] = Value::String(oci.to_string());
        Ok(())
    };
    set(&mut m)?;
    set(m
        .get_mut("config")
        .ok_or_else(|| ConvertError("no config".into()))?)?;
    if let Some(layers) = m.get_mut("layers").and_then(Value::as_array_mut) {
        for l in layers {
            set(l)?;
        }
    }
    serde_json::to_vec(&m).map_err(|e| ConvertError(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_manifest_becomes_oci_with_the_same_blobs() {
        let d = |c: char| format!("sha256:{}", c.to_string().repeat(64));
        let raw = serde_json::json!({
            "schemaVersion": 2, "mediaType": DOCKER_MANIFEST,
            "config": {"mediaType": DOCKER_CONFIG, "size": 10, "digest": d('a')},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "size": 20, "digest": d('b')}]
        });
        let out: Value =
            serde_json::from_slice(&manifest_to_oci(&serde_json::to_vec(&raw).unwrap()).unwrap())
                .unwrap();
        assert_eq!(
            out["mediaType"],
            "application/vnd.oci.image.manifest.v1+json"
        );
        assert_eq!(
            out["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        assert_eq!(out["config"]["digest"], d('a'));
        assert_eq!(
            out["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(out["layers"][0]["digest"], d('b'));
        let bad = serde_json::json!({"mediaType": DOCKER_MANIFEST, "config": {"mediaType": "x/y"}});
        assert!(manifest_to_oci(&serde_json::to_vec(&bad).unwrap()).is_err());
    }
}
