//! Pulling an image into the store: resolve the reference on each endpoint (mirrors, then
//! the registry itself), fetch the manifest (choosing a platform out of an index), fetch
//! config and layers in parallel, store the manifest (and index), and tag last, so a
//! failed or killed pull never leaves a tag pointing at missing or unverified content.

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageManifest, MediaType, Platform, PlatformBuilder};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::auth::AuthFile;
use super::client::{connect, PARALLEL_DOWNLOADS};
use super::config::{Endpoint, RegistriesConfig};
use super::download::fetch_blob;
use super::identity_token::Access;
use super::platform::{available, PlatformSpec};
use super::progress::{short_digest, Progress};
use super::retry::{retrying, RetryPolicy};
use super::unpack::{self, Unpacker};
use super::RegistryError;
use crate::reference::{store_name, Reference};
use crate::store::Store;

const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The manifest types imgtool understands, sent as Accept.
const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Options of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<PlatformSpec>,
    /// Treat the registry as insecure (`--insecure`).
    pub insecure: bool,
    /// Retries for the registry itself (mirrors get fewer).
    pub retry: RetryPolicy,
    /// How long a connection may send nothing before the attempt fails (None: the
    /// default of [`super::client::DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<std::time::Duration>,
    /// Build the layer cache while the layers download, where bundles use it (see
    /// [`super::unpack`]).
    pub unpack: bool,
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name the image is tagged under in the store.
    pub name: String,
    /// The tagged (platform-specific) manifest.
    pub manifest: Descriptor,
    /// The index the manifest was chosen from, if the reference named one.
    pub index: Option<Descriptor>,
    /// The endpoint that served the image (`host[:port]`).
    pub served_by: String,
}

/// Pulls `reference` into `store` and tags it with its normalized name.
pub async fn pull_image(
    store: &Store,
    reference: &Reference,
    config: &RegistriesConfig,
    auth: &AuthFile,
    opts: &PullOptions,
    progress: &Progress,
) -> Result<Pulled, RegistryError> {
    // Until the tag is written, the blobs and temp files of this pull are unreferenced:
    // keep gc out for the whole pull.
    let _op = store.lock_operation()?;
    let mut last_err = None;
    let mut mirror_errors = Vec::new();
    for endpoint in config.endpoints(reference.registry(), opts.insecure) {
        let policy = if endpoint.is_mirror {
            RetryPolicy::mirror()
        } else {
            opts.retry
        };
        match pull_from(store, reference, &endpoint, auth, opts, policy, progress).await {
            Ok(p) => return Ok(p),
            Err(e) if e.is_local() => return Err(e),
            // A mirror that fails in any way falls back to the next endpoint.
            Err(e) if endpoint.is_mirror => mirror_errors.push(format!("{}: {e}", endpoint.host)),
            Err(e) => last_err = Some(e),
        }
    }
    let err = last_err.unwrap_or_else(|| RegistryError::Protocol {
        registry: reference.registry().to_string(),
        message: "no endpoint to pull from".into(),
    });
    if mirror_errors.is_empty() {
        Err(err)
    } else {
        Err(RegistryError::AfterMirrors {
            error: Box::new(err),
            mirrors: mirror_errors.join("; "),
        })
    }
}

/// The fields that tell manifests and indexes apart.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "schemaVersion")]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType")]
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    config: Option<serde_json::Value>,
}

#[derive(Debug, PartialEq, Eq)]
enum Kind {
    Manifest(String),
    Index(String),
}

fn kind_of(reference: &str, raw: &[u8]) -> Result<Kind, RegistryError> {
    let bad = |message: String| RegistryError::BadManifest {
        reference: reference.to_string(),
        message,
    };
    let p: Probe =
        serde_json::from_slice(raw).map_err(|e| bad(format!("invalid manifest JSON: {e}")))?;
    if p.schema_version != Some(2) {
        return Err(bad(format!(
            "unsupported manifest schemaVersion {} (only 2 is supported)",
            p.schema_version.map_or("missing".into(), |v| v.to_string())
        )));
    }
    match p.media_type.as_deref() {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => {
            Ok(Kind::Manifest(p.media_type.unwrap_or_default()))
        }
        Some(OCI_INDEX | DOCKER_LIST) => Ok(Kind::Index(p.media_type.unwrap_or_default())),
        Some(other) => Err(bad(format!("unsupported manifest media type {other}"))),
        None if p.manifests.is_some() => Ok(Kind::Index(OCI_INDEX.into())),
        None if p.config.is_some() => Ok(Kind::Manifest(OCI_MANIFEST.into())),
        None => Err(bad("neither an image manifest nor an index".into())),
    }
}

async fn pull_from(
    store: &Store,
    reference: &Reference,
    endpoint: &Endpoint,
    auth: &AuthFile,
    opts: &PullOptions,
    policy: RetryPolicy,
    progress: &Progress,
) -> Result<Pulled, RegistryError> {
    let conn = connect(reference, endpoint, auth, Access::Pull, opts.read_timeout).await?;
    let name = store_name(reference);
    let top_ref = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    let (raw, digest) =
        fetch_manifest(&conn, policy, "image", &top_ref, reference.digest()).await?;

    let mut index_desc = None;
    let mut platform: Option<Platform> = None;
    let (manifest_raw, manifest_digest, manifest_type) = match kind_of(&name, &raw)? {
        Kind::Manifest(mt) => (raw, digest, mt),
        Kind::Index(index_type) => {
            let index: oci_spec::image::ImageIndex =
                serde_json::from_slice(&raw).map_err(|e| RegistryError::BadManifest {
                    reference: name.clone(),
                    message: format!("invalid image index: {e}"),
                })?;
            let want = opts.platform.clone().unwrap_or_else(PlatformSpec::host);
            let chosen = want
                .select(index.manifests())
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: name.clone(),
                    platform: want.to_string(),
                    available: available(index.manifests()),
                })?
                .clone();
            platform = chosen.platform().clone();
            let what = format!("manifest {}", chosen.digest());
            let child = chosen.digest().to_string();
            let (m_raw, m_digest) =
                fetch_manifest(&conn, policy, &what, &child, Some(&child)).await?;
            let m_type = match kind_of(&name, &m_raw)? {
                Kind::Manifest(mt) => mt,
                Kind::Index(_) => {
                    return Err(RegistryError::BadManifest {
                        reference: name,
                        message: format!("{} is a nested index (not supported)", chosen.digest()),
                    })
                }
            };
            if m_raw.len() as u64 != chosen.size() {
                return Err(RegistryError::Corrupt {
                    what: format!("manifest {m_digest}"),
                    registry: conn.host().to_string(),
                    message: format!(
                        "manifest is {} bytes, the index says {}",
                        m_raw.len(),
                        chosen.size()
                    ),
                });
            }
            index_desc = Some(store.put_bytes(MediaType::from(index_type.as_str()), &raw)?);
            (m_raw, m_digest, m_type)
        }
    };

    let manifest: ImageManifest =
        serde_json::from_slice(&manifest_raw).map_err(|e| RegistryError::BadManifest {
            reference: name.clone(),
            message: format!("invalid image manifest {manifest_digest}: {e}"),
        })?;

    // Config first in the list: it is small and says the platform.
    let mut blobs: Vec<(String, u64)> = vec![(
        manifest.config().digest().to_string(),
        manifest.config().size(),
    )];
    for layer in manifest.layers() {
        blobs.push((layer.digest().to_string(), layer.size()));
    }
    let unpacker = (opts.unpack && unpack::worthwhile())
        .then(|| Unpacker::start(store, &manifest))
        .flatten();
    let downloaded = futures_util::stream::iter(blobs.iter().enumerate())
        .map(|(i, (digest, size))| {
            let conn = &conn;
            let feed = unpacker.as_ref().map(|u| match i {
                0 => u.config_feed(),
                _ => u.layer_feed(i - 1),
            });
            async move {
                let bar = progress.blob(short_digest(digest), *size);
                fetch_blob(conn, store, digest, *size, policy, &bar, feed).await
            }
        })
        .buffer_unordered(PARALLEL_DOWNLOADS)
        .try_collect::<Vec<()>>()
        .await;
    if let Some(unpacker) = unpacker {
        let spinner = progress.spinner("unpacking layers");
        // An unpacking failure is not the pull's: the image is stored either way, and
        // `bundle` builds what is missing and reports why it cannot.
        let unpacked = unpacker.finish();
        spinner.finish(if unpacked.is_ok() {
            "done"
        } else {
            "left to bundle"
        });
    }
    downloaded?;

    let served = format!("sha256:{}", hex::encode(Sha256::digest(&manifest_raw)));
    if served != manifest_digest {
        return Err(RegistryError::Corrupt {
            what: format!("manifest {manifest_digest}"),
            registry: conn.host().to_string(),
            message: format!("manifest content has digest {served}"),
        });
    }
    // A Docker manifest is stored as the OCI manifest of the same blobs: the store is an
    // OCI layout that skopeo and umoci read.
    let stored = if manifest_type == DOCKER_MANIFEST {
        let oci = crate::image::docker::manifest_to_oci(&manifest_raw).map_err(|e| {
            RegistryError::BadManifest {
                reference: name.clone(),
                message: e.to_string(),
            }
        })?;
        store.put_bytes(MediaType::ImageManifest, &oci)?
    } else {
        store.put_bytes(MediaType::from(manifest_type.as_str()), &manifest_raw)?
    };
    let mut tagged = stored;
    if platform.is_none() {
        platform = config_platform(store, manifest.config().digest().as_ref());
    }
    tagged.set_platform(platform);
    store.tag(&name, &tagged)?;
    // Where these blobs are, for cross-repository mounts by later pushes (a hint only).
    let digests: Vec<String> = blobs.into_iter().map(|(d, _)| d).collect();
    let _ = super::sources::record(
        store,
        &format!("{}/{}", conn.host(), conn.reference.repository()),
        &digests,
    );
    Ok(Pulled {
        name,
        manifest: tagged,
        index: index_desc,
        served_by: conn.host().to_string(),
    })
}

/// GETs a manifest (by tag or digest, `what` naming it for errors) and returns its bytes
/// and their digest; when `want` names a digest (a pull by digest, a child of an index),
/// or the registry sends `Docker-Content-Digest`, the bytes must have that digest.
async fn fetch_manifest(
    conn: &super::client::Connection,
    policy: RetryPolicy,
    what: &str,
    reference: &str,
    want: Option<&str>,
) -> Result<(Vec<u8>, String), RegistryError> {
    let served = retrying(conn, policy, what, || {
        conn.wire.get_manifest(reference, ACCEPT)
    })
    .await?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&served.bytes)));
    let header = served
        .digest_header
        .as_deref()
        .filter(|h| h.starts_with("sha256:"));
    for expected in [want, header].into_iter().flatten() {
        if expected != digest {
            return Err(RegistryError::Corrupt {
                what: format!("manifest {reference}"),
                registry: conn.host().to_string(),
                message: format!("its content has digest {digest}, not {expected}"),
            });
        }
    }
    Ok((served.bytes, digest))
}

/// The platform an image config declares (os, architecture, variant), if readable.
fn config_platform(store: &Store, config_digest: &str) -> Option<Platform> {
    #[derive(Deserialize)]
    struct ConfigPlatform {
        os: String,
        architecture: String,
        variant: Option<String>,
    }
    let path = store.blob_path(config_digest).ok()?;
    let c: ConfigPlatform = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    let mut b = PlatformBuilder::default()
        .os(c.os.as_str())
        .architecture(c.architecture.as_str());
    if let Some(v) = c.variant {
        b = b.variant(v);
    }
    b.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_kinds() {
        let k = |s: &str| kind_of("r", s.as_bytes());
        assert_eq!(
            k(r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#)
                .unwrap(),
            Kind::Manifest(DOCKER_MANIFEST.into())
        );
        assert_eq!(
            k(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            Kind::Index(OCI_INDEX.into())
        );
        assert!(k(r#"{"schemaVersion":1}"#).is_err());
        assert!(k(r#"{"schemaVersion":2,"mediaType":"x/y"}"#).is_err());
        assert!(k("nope").is_err());
    }
}
