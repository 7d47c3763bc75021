//! Making new images in the store (import, commit, load of a docker-archive): a layer is
//! written once, as a tar stream that is hashed (its diff_id) while it is compressed into
//! a blob that is hashed too (its digest); the config gets the layer's diff_id and a history
//! entry; the manifest ties config and layers together. Everything is stored before the
//! caller tags the manifest.

use std::io::{Read, Write};

use oci_spec::image::{
    Arch, Descriptor, History, HistoryBuilder, ImageConfiguration, ImageManifestBuilder, MediaType,
    Os,
};
use sha2::{Digest as _, Sha256};

use crate::layer::Compression;
use crate::store::{BlobWriter, Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write the layer: {0}")]
    Layer(std::io::Error),
    #[error("cannot build the image {what}: {message}")]
    Invalid { what: &'static str, message: String },
}

fn invalid(what: &'static str, e: impl std::fmt::Display) -> BuildError {
    BuildError::Invalid {
        what,
        message: e.to_string(),
    }
}

/// The OCI media type of a layer blob with this compression.
pub fn layer_media_type(compression: Compression) -> MediaType {
    match compression {
        Compression::None => MediaType::ImageLayer,
        Compression::Gzip => MediaType::ImageLayerGzip,
        Compression::Zstd => MediaType::ImageLayerZstd,
    }
}

/// A layer now in the store.
#[derive(Debug, Clone)]
pub struct StoredLayer {
    /// `sha256:` of the uncompressed tar: what the config's rootfs.diff_ids lists.
    pub diff_id: String,
    /// The blob (compressed as asked) for the manifest's layers.
    pub descriptor: Descriptor,
}

enum Encoder {
    None(BlobWriter),
    Gzip(flate2::write::GzEncoder<BlobWriter>),
    Zstd(zstd::stream::write::Encoder<'static, BlobWriter>),
}

/// Takes an uncompressed layer tar through `Write` (e.g. as a `tar::Builder`'s sink) and
/// stores it compressed; `finish` returns the layer's diff_id and descriptor.
pub struct LayerWriter {
    diff: Sha256,
    encoder: Encoder,
    compression: Compression,
}

impl LayerWriter {
    pub fn new(store: &Store, compression: Compression) -> Result<Self, BuildError> {
        let blob = store.blob_writer()?;
        let encoder = match compression {
            Compression::None => Encoder::None(blob),
            // Level 6, like docker's and containers/image's default gzip.
            Compression::Gzip => Encoder::Gzip(flate2::write::GzEncoder::new(
                blob,
                flate2::Compression::new(6),
            )),
            Compression::Zstd => Encoder::Zstd(
                zstd::stream::write::Encoder::new(blob, 3).map_err(BuildError::Layer)?,
            ),
        };
        Ok(Self {
            diff: Sha256::new(),
            encoder,
            compression,
        })
    }

    /// Ends the compressed stream and moves the blob into the store.
    pub fn finish(self) -> Result<StoredLayer, BuildError> {
        let blob = match self.encoder {
            Encoder::None(b) => b,
            Encoder::Gzip(g) => g.finish().map_err(BuildError::Layer)?,
            Encoder::Zstd(z) => z.finish().map_err(BuildError::Layer)?,
        };
        let written = blob.finish()?;
        Ok(StoredLayer {
            diff_id: format!("sha256:{}", hex::encode(self.diff.finalize())),
            descriptor: descriptor(
                layer_media_type(self.compression),
                &written.digest,
                written.size,
            )?,
        })
    }
}

impl Write for LayerWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = match &mut self.encoder {
            Encoder::None(b) => b.write(buf)?,
            Encoder::Gzip(g) => g.write(buf)?,
            Encoder::Zstd(z) => z.write(buf)?,
        };
        self.diff.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.encoder {
            Encoder::None(b) => b.flush(),
            Encoder::Gzip(g) => g.flush(),
            Encoder::Zstd(z) => z.flush(),
        }
    }
}

/// Stores an uncompressed layer tar read from `tar`.
pub fn store_layer(
    store: &Store,
    mut tar: impl Read,
    compression: Compression,
) -> Result<StoredLayer, BuildError> {
    let mut w = LayerWriter::new(store, compression)?;
    std::io::copy(&mut tar, &mut w).map_err(BuildError::Layer)?;
    w.finish()
}

/// A descriptor from parts (the digest is validated).
pub fn descriptor(
    media_type: MediaType,
    digest: &str,
    size: u64,
) -> Result<Descriptor, BuildError> {
    let parsed: oci_spec::image::Digest = digest.parse().map_err(|e| invalid("descriptor", e))?;
    Ok(Descriptor::new(media_type, size, parsed))
}

/// Now, as the RFC 3339 timestamp image configs carry.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// This machine's platform in Go's names (what image configs and indexes use).
pub fn host_platform() -> (Arch, Os) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        "x86" => Arch::i386,
        "arm" => Arch::ARM,
        "powerpc64" => Arch::PowerPC64le,
        "s390x" => Arch::s390x,
        "riscv64" => Arch::RISCV64,
        other => Arch::Other(other.to_string()),
    };
    (arch, Os::Linux)
}

/// A new, empty config for this machine's platform (no layers yet, created now).
pub fn new_config() -> ImageConfiguration {
    let (arch, os) = host_platform();
    let mut cfg = ImageConfiguration::default();
    cfg.set_architecture(arch);
    cfg.set_os(os);
    cfg.set_created(Some(now_rfc3339()));
    cfg.rootfs_mut().set_typ("layers".to_string());
    cfg.rootfs_mut().set_diff_ids(Vec::new());
    cfg
}

/// A history entry saying what made a layer (or, when `empty_layer`, a config change).
pub fn history_entry(created_by: &str, comment: Option<&str>, empty_layer: bool) -> History {
    let mut b = HistoryBuilder::default()
        .created(now_rfc3339())
        .created_by(created_by.to_string());
    if let Some(c) = comment.filter(|c| !c.is_empty()) {
        b = b.comment(c.to_string());
    }
    if empty_layer {
        b = b.empty_layer(true);
    }
    b.build().unwrap_or_default()
}

/// Appends a layer to `config`: its diff_id and the history entry describing it; `created`
/// becomes the history entry's time.
pub fn append_layer(config: &mut ImageConfiguration, diff_id: &str, history: History) {
    config.rootfs_mut().diff_ids_mut().push(diff_id.to_string());
    if let Some(created) = history.created() {
        config.set_created(Some(created.clone()));
    }
    let mut all = config.history().clone().unwrap_or_default();
    all.push(history);
    config.set_history(Some(all));
}

/// Serializes JSON with sorted keys (serde_json's default map), so the same config or
/// manifest always gets the same digest.
pub fn canonical_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, BuildError> {
    let v = serde_json::to_value(value).map_err(|e| invalid("JSON", e))?;
    serde_json::to_vec(&v).map_err(|e| invalid("JSON", e))
}

/// An image now in the store (not yet tagged).
#[derive(Debug, Clone)]
pub struct StoredImage {
    pub manifest: Descriptor,
    pub config: Descriptor,
}

/// Stores `config` and an OCI manifest listing `layers` (whose blobs must be stored).
pub fn store_image(
    store: &Store,
    config: &ImageConfiguration,
    layers: Vec<Descriptor>,
) -> Result<StoredImage, BuildError> {
    if config.rootfs().diff_ids().len() != layers.len() {
        return Err(invalid(
            "manifest",
            format!(
                "{} layers but {} diff_ids in the config",
                layers.len(),
                config.rootfs().diff_ids().len()
            ),
        ));
    }
    let config_bytes = canonical_json(config)?;
    store_image_with_config_bytes(store, &config_bytes, layers)
}

/// Stores config bytes as they are (keeping a loaded image's config digest) and an OCI
/// manifest listing `layers`.
pub fn store_image_with_config_bytes(
    store: &Store,
    config_bytes: &[u8],
    layers: Vec<Descriptor>,
) -> Result<StoredImage, BuildError> {
    let config = store.put_bytes(MediaType::ImageConfig, config_bytes)?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(config.clone())
        .layers(layers)
        .build()
        .map_err(|e| invalid("manifest", e))?;
    let manifest = store.put_bytes(MediaType::ImageManifest, &canonical_json(&manifest)?)?;
    Ok(StoredImage { manifest, config })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    #[test]
    fn a_layer_is_hashed_before_and_after_compression() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = b"not really a tar, but bytes are bytes".repeat(50);
        let want_diff = format!("sha256:{}", hex::encode(Sha256::digest(&data)));
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let layer = store_layer(&store, &data[..], c).unwrap();
            assert_eq!(layer.diff_id, want_diff, "{c:?}");
            let path = store.blob_path(layer.descriptor.digest().as_ref()).unwrap();
            let blob = std::fs::read(&path).unwrap();
            assert_eq!(blob.len() as u64, layer.descriptor.size());
            assert_eq!(
                format!("sha256:{}", hex::encode(Sha256::digest(&blob))),
                layer.descriptor.digest().to_string()
            );
            let mut out = Vec::new();
            c.decoder(&blob[..]).unwrap().read_to_end(&mut out).unwrap();
            assert_eq!(out, data);
            assert_eq!(layer.descriptor.media_type(), &layer_media_type(c));
        }
        // No temp files are left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("imgtool/tmp"))
                .unwrap()
                .count(),
            0
        );
    }

    #[test]
    fn an_image_is_stored_with_matching_diff_ids() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let layer = store_layer(&store, &b"layer"[..], Compression::Gzip).unwrap();
        let mut cfg = new_config();
        append_layer(
            &mut cfg,
            &layer.diff_id,
            history_entry("test", Some("hi"), false),
        );
        let img = store_image(&store, &cfg, vec![layer.descriptor.clone()]).unwrap();
        let again = store_image(&store, &cfg, vec![layer.descriptor.clone()]).unwrap();
        assert_eq!(
            img.manifest.digest(),
            again.manifest.digest(),
            "deterministic"
        );
        let bytes = std::fs::read(store.blob_path(img.config.digest().as_ref()).unwrap()).unwrap();
        let parsed: ImageConfiguration = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(parsed.rootfs().diff_ids(), &vec![layer.diff_id.clone()]);
        assert_eq!(
            parsed.history().as_ref().unwrap()[0].comment().as_deref(),
            Some("hi")
        );
        assert!(store_image(&store, &cfg, vec![]).is_err());
    }
}
