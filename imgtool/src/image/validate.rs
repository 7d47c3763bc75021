//! What makes an image usable, checked before a pull tags it (as docker and podman refuse
//! such images at pull): the config is JSON of an image config, it has a `rootfs` of
//! type `layers`, and it lists one diff_id for each layer of the manifest. The layers
//! themselves are checked against those diff_ids as they are stored (see
//! [`crate::registry::unpack`]).

use oci_spec::image::{ImageConfiguration, ImageManifest};
use serde_json::Value;

use crate::layer::Compression;

/// Media types of image configs (OCI and Docker).
pub const IMAGE_CONFIG_TYPES: &[&str] = &[
    "application/vnd.oci.image.config.v1+json",
    "application/vnd.docker.container.image.v1+json",
];

/// True when a manifest with this config media type is a container image (not an
/// artifact such as an attestation or a signature).
pub fn is_image_config(media_type: &str) -> bool {
    IMAGE_CONFIG_TYPES.contains(&media_type)
}

/// Checks what a manifest promises before anything is downloaded: a layer media type
/// imgtool can unpack for every layer.
pub fn check_manifest(manifest: &ImageManifest) -> Result<(), String> {
    for (i, l) in manifest.layers().iter().enumerate() {
        let mt = l.media_type().to_string();
        if Compression::from_media_type(&mt).is_none() {
            return Err(format!(
                "layer {} of {} ({}) has media type {mt:?}, which is not a layer imgtool can unpack",
                i + 1,
                manifest.layers().len(),
                l.digest()
            ));
        }
    }
    Ok(())
}

/// Parses and checks an image config for a manifest of `layers` layers.
pub fn check_config(raw: &[u8], layers: usize) -> Result<ImageConfiguration, String> {
    let v: Value = serde_json::from_slice(raw).map_err(|e| format!("is not JSON ({e})"))?;
    if !v.is_object() {
        return Err("is not a JSON object".into());
    }
    let Some(rootfs) = v.get("rootfs") else {
        return Err("has no rootfs (an image config must list its layers' diff_ids)".into());
    };
    match rootfs.get("type").and_then(Value::as_str) {
        Some("layers") => {}
        other => {
            return Err(format!(
                "has rootfs type {} (only \"layers\" exists)",
                other.map_or("missing".to_string(), |t| format!("{t:?}"))
            ))
        }
    }
    let Some(diff_ids) = rootfs.get("diff_ids").and_then(Value::as_array) else {
        return Err("has no rootfs.diff_ids list".into());
    };
    for d in diff_ids {
        let ok = d.as_str().is_some_and(|s| {
            s.strip_prefix("sha256:").is_some_and(|h| {
                h.len() == 64
                    && h.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            })
        });
        if !ok {
            return Err(format!(
                "has an invalid diff_id {} (expected sha256:<64 hex digits>)",
                crate::registry::wire::printable(d.to_string().as_bytes())
            ));
        }
    }
    if diff_ids.len() != layers {
        return Err(format!(
            "lists {} diff_ids for the manifest's {layers} layers",
            diff_ids.len()
        ));
    }
    serde_json::from_value(v).map_err(|e| format!("is not a valid image config ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    #[test]
    fn configs() {
        let ok = format!(
            r#"{{"architecture":"amd64","os":"linux","rootfs":{{"type":"layers","diff_ids":["{D}"]}}}}"#
        );
        assert!(check_config(ok.as_bytes(), 1).is_ok());
        let err = |raw: &str, n| check_config(raw.as_bytes(), n).unwrap_err();
        assert!(err("not json", 0).starts_with("is not JSON"));
        assert!(err("[]", 0).contains("not a JSON object"));
        assert!(err(r#"{"architecture":"amd64","os":"linux"}"#, 0).contains("no rootfs"));
        assert!(err(r#"{"rootfs":{"type":"x","diff_ids":[]}}"#, 0).contains("rootfs type \"x\""));
        assert!(err(&ok, 2).contains("lists 1 diff_ids for the manifest's 2 layers"));
        assert!(
            err(r#"{"rootfs":{"type":"layers","diff_ids":["md5:x"]}}"#, 1)
                .contains("invalid diff_id")
        );
    }
}
