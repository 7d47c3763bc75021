//! Pulling an image into the store: resolve the reference on each endpoint (mirrors, then
//! the registry itself), fetch the manifest (one platform, or all, out of an index), then
//! for each image its config, which must be a valid image config for the manifest's
//! layers, then the layers in parallel, each checked against its digest and its diff_id
//! as it arrives (and unpacked into the layer cache where bundles use it). Manifests and
//! indexes are stored byte for byte as served (see [`crate::store::identity`]) and the
//! name is tagged last: a pull that fails in any of this tags nothing and exits non-zero.
//!
//! A name holds one image or an index of several. Pulling a platform of an index the
//! name already holds another platform of keeps both (the name then holds the index);
//! a pull that replaces an image of another platform says so.

use std::collections::HashMap;

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, Platform, PlatformBuilder};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use super::auth::AuthFile;
use super::client::{connect, Connection, PARALLEL_DOWNLOADS};
use super::config::{Endpoint, RegistriesConfig};
use super::download::{fetch_blob, Fetched as FetchedBlob};
use super::identity_token::Access;
use super::platform::{available, PlatformSpec};
use super::progress::{short_digest, Progress};
use super::retry::{retrying, RetryPolicy};
use super::unpack::{self, Unpacker};
use super::wire::MAX_CONFIG;
use super::RegistryError;
use crate::image::validate::{check_config, check_manifest, is_image_config};
use crate::reference::{store_name, Reference};
use crate::store::identity::{
    identity, is_index_type, media_type_str, DOCKER_LIST, DOCKER_MANIFEST, OCI_INDEX, OCI_MANIFEST,
    SOURCE_INDEX,
};
use crate::store::{Store, StoreError};

/// The manifest types imgtool understands, sent as Accept.
const ACCEPT: &[&str] = &[OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_LIST];

/// Options of one pull.
#[derive(Debug, Clone, Default)]
pub struct PullOptions {
    /// The platform to pick from an index (default: the host's).
    pub platform: Option<PlatformSpec>,
    /// Every platform of an index, and the index itself as what the name holds.
    pub all_platforms: bool,
    /// Treat the registry as insecure (`--insecure`).
    pub insecure: bool,
    /// Retries for the registry itself (mirrors get fewer).
    pub retry: RetryPolicy,
    /// How long a connection may send nothing, and a manifest take in all, before the
    /// attempt fails (None: [`super::client::DEFAULT_READ_TIMEOUT`]).
    pub read_timeout: Option<std::time::Duration>,
    /// Unpack into the layer cache while pulling, where bundles use it (layers are
    /// verified either way; see [`super::unpack`]).
    pub unpack: bool,
}

/// The result of a pull.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The name the image is tagged under in the store.
    pub name: String,
    /// The registry's digest of what the name now holds (a manifest, or an index).
    pub digest: String,
    /// The platforms the name now holds.
    pub platforms: Vec<String>,
    /// The endpoint that served the image (`host[:port]`).
    pub served_by: String,
    /// What the user should know: another platform replaced, or kept beside this one.
    pub note: Option<String>,
    /// Stored blobs found damaged and downloaded again, each with what was wrong.
    pub replaced: Vec<String>,
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

/// What a served document is; `served_type` is its Content-Type, for documents without
/// a `mediaType` field.
fn kind_of(reference: &str, raw: &[u8], served_type: Option<&str>) -> Result<Kind, RegistryError> {
    let bad = |message: String| RegistryError::BadManifest {
        reference: reference.to_string(),
        message,
    };
    let p: Probe = serde_json::from_slice(raw).map_err(|e| {
        bad(format!(
            "{reference}: the registry's manifest is not JSON ({e})"
        ))
    })?;
    if p.schema_version != Some(2) {
        return Err(bad(format!(
            "{reference}: unsupported manifest schemaVersion {} (only 2 is supported)",
            p.schema_version.map_or("missing".into(), |v| v.to_string())
        )));
    }
    let media_type = p
        .media_type
        .clone()
        .or_else(|| served_type.filter(|t| ACCEPT.contains(t)).map(String::from));
    match media_type.as_deref() {
        Some(OCI_MANIFEST | DOCKER_MANIFEST) => Ok(Kind::Manifest(media_type.unwrap_or_default())),
        Some(OCI_INDEX | DOCKER_LIST) => Ok(Kind::Index(media_type.unwrap_or_default())),
        Some(other) if p.media_type.is_some() => Err(bad(format!(
            "{reference}: unsupported manifest media type {}",
            super::wire::printable(other.as_bytes())
        ))),
        _ if p.manifests.is_some() => Ok(Kind::Index(OCI_INDEX.into())),
        _ if p.config.is_some() => Ok(Kind::Manifest(OCI_MANIFEST.into())),
        _ => Err(bad(format!(
            "{reference}: the registry's document is neither an image manifest nor an index"
        ))),
    }
}

/// A manifest or index as served, with its digest.
struct Fetched {
    raw: Vec<u8>,
    digest: String,
    kind: Kind,
}

/// One pull from one endpoint.
struct Pull<'a> {
    conn: Connection,
    store: &'a Store,
    name: String,
    opts: &'a PullOptions,
    policy: RetryPolicy,
    progress: &'a Progress,
    /// Every blob fetched or found, for the sources record.
    blobs: Vec<String>,
    /// Stored blobs found damaged and downloaded again (see [`Pulled::replaced`]).
    replaced: std::sync::Mutex<Vec<String>>,
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
    let mut pull = Pull {
        conn,
        store,
        name: store_name(reference),
        opts,
        policy,
        progress,
        blobs: Vec::new(),
        replaced: Default::default(),
    };
    let top_ref = reference
        .digest()
        .or(reference.tag())
        .unwrap_or("latest")
        .to_string();
    let top = pull
        .fetch_manifest("image", &top_ref, reference.digest())
        .await?;
    let (target, note) = match &top.kind {
        Kind::Manifest(mt) => {
            // A single image (no index to choose from) must be the platform asked for.
            let expect = opts.platform.as_ref();
            let view = pull.image(&top.raw, &top.digest, mt, false, expect).await?;
            let note = replacement_note(store, &pull.name, &view);
            (view, note)
        }
        Kind::Index(it) => pull.index(&top, it).await?,
    };
    store.tag(&pull.name, &target)?;
    // Where these blobs are, for cross-repository mounts by later pushes (a hint only).
    let _ = super::sources::record(
        store,
        &format!("{}/{}", pull.conn.host(), pull.conn.reference.repository()),
        &pull.blobs,
    );
    let platforms = match target.platform() {
        Some(p) => vec![platform_name(p)],
        None => store
            .present_entries(&target)
            .unwrap_or_default()
            .iter()
            .filter_map(|d| d.platform().as_ref().map(platform_name))
            .collect(),
    };
    Ok(Pulled {
        name: pull.name,
        digest: identity(&target).digest,
        platforms,
        served_by: pull.conn.host().to_string(),
        note,
        replaced: pull
            .replaced
            .into_inner()
            .unwrap_or_else(|p| p.into_inner()),
    })
}

/// `os/arch[/variant]`.
pub fn platform_name(p: &Platform) -> String {
    let mut s = format!("{}/{}", p.os(), p.architecture());
    if let Some(v) = p.variant() {
        s = format!("{s}/{v}");
    }
    s
}

/// What to tell the user when tagging `new` under `name` replaces an image of another
/// platform.
fn replacement_note(store: &Store, name: &str, new: &Descriptor) -> Option<String> {
    let old = store.resolve_tag(name).ok()?;
    let (old_p, new_p) = (old.platform().as_ref()?, new.platform().as_ref()?);
    if identity(&old).digest == identity(new).digest || platform_name(old_p) == platform_name(new_p)
    {
        return None;
    }
    Some(format!(
        "{name} held the {} image {}; it now holds the {} image (the {} one is untagged; pull it again with --platform {} under another name to keep both, or pull the index with --all-platforms)",
        platform_name(old_p),
        identity(&old).digest,
        platform_name(new_p),
        platform_name(old_p),
        platform_name(old_p),
    ))
}

impl Pull<'_> {
    fn bad(&self, message: String) -> RegistryError {
        RegistryError::BadManifest {
            reference: self.name.clone(),
            message,
        }
    }

    /// GETs a manifest (by tag or digest, `what` naming it for errors); when `want`
    /// names a digest (a pull by digest, a child of an index), or the registry sends
    /// `Docker-Content-Digest`, the bytes must have that digest.
    async fn fetch_manifest(
        &self,
        what: &str,
        reference: &str,
        want: Option<&str>,
    ) -> Result<Fetched, RegistryError> {
        let conn = &self.conn;
        let served = retrying(conn, self.policy, what, || {
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
        let kind = kind_of(&self.name, &served.bytes, served.content_type.as_deref())?;
        Ok(Fetched {
            raw: served.bytes,
            digest,
            kind,
        })
    }

    /// Pulls the platform(s) of an index; returns what to tag and a note for the user.
    async fn index(
        &mut self,
        top: &Fetched,
        index_type: &str,
    ) -> Result<(Descriptor, Option<String>), RegistryError> {
        let index: ImageIndex = serde_json::from_slice(&top.raw)
            .map_err(|e| self.bad(format!("{}: invalid image index ({e})", self.name)))?;
        let wanted: Vec<Descriptor> = if self.opts.all_platforms {
            index
                .manifests()
                .iter()
                .filter(|m| !is_index_type(&media_type_str(m.media_type())))
                .cloned()
                .collect()
        } else {
            let want = self
                .opts
                .platform
                .clone()
                .unwrap_or_else(PlatformSpec::host);
            let chosen =
                want.select(index.manifests())
                    .ok_or_else(|| RegistryError::NoPlatform {
                        reference: self.name.clone(),
                        platform: want.to_string(),
                        available: available(index.manifests()),
                    })?;
            vec![chosen.clone()]
        };
        let mut views: HashMap<String, Descriptor> = HashMap::new();
        let mut chosen_views = Vec::new();
        for entry in &wanted {
            let digest = entry.digest().to_string();
            let child = self
                .fetch_manifest(&format!("manifest {digest}"), &digest, Some(&digest))
                .await?;
            let Kind::Manifest(mt) = &child.kind else {
                return Err(self.bad(format!(
                    "{}: {digest} is a nested index (not supported)",
                    self.name
                )));
            };
            if child.raw.len() as u64 != entry.size() {
                return Err(RegistryError::Corrupt {
                    what: format!("manifest {digest}"),
                    registry: self.conn.host().to_string(),
                    message: format!(
                        "manifest is {} bytes, the index says {}",
                        child.raw.len(),
                        entry.size()
                    ),
                });
            }
            let mut view = self
                .image(&child.raw, &child.digest, mt, self.opts.all_platforms, None)
                .await?;
            if entry.platform().is_some() {
                view.set_platform(entry.platform().clone());
            }
            views.insert(digest, view.clone());
            chosen_views.push(view);
        }
        // Platforms of this index pulled before stay part of it.
        for m in index.manifests() {
            let d = m.digest().to_string();
            if !views.contains_key(&d) && self.store.has_blob(&d) {
                if let Ok(raw) = self.store.read_blob(&d) {
                    let view = self
                        .store
                        .put_served_manifest(&raw, &media_type_str(m.media_type()))?;
                    views.insert(d, view);
                }
            }
        }
        let index_view = self.store.put_served_index(&top.raw, index_type, &views)?;
        if self.opts.all_platforms {
            return Ok((index_view, None));
        }
        let index_id = identity(&index_view).digest;
        let mut chosen = chosen_views.remove(0);
        let old = self.store.resolve_tag(&self.name).ok();
        let from_same_index = old.as_ref().is_some_and(|o| {
            identity(o).digest == index_id
                || o.annotations()
                    .as_ref()
                    .and_then(|a| a.get(SOURCE_INDEX))
                    .is_some_and(|d| *d == index_id)
        });
        if let (true, Some(old)) = (from_same_index, &old) {
            if identity(old).digest != identity(&chosen).digest {
                let held: Vec<String> = self
                    .store
                    .present_entries(&index_view)?
                    .iter()
                    .filter_map(|d| d.platform().as_ref().map(platform_name))
                    .collect();
                let note = (!is_index_type(&media_type_str(old.media_type()))).then(|| {
                    format!(
                        "{} now holds {} of index {index_id}",
                        self.name,
                        held.join(", ")
                    )
                });
                return Ok((index_view, note));
            }
        }
        let mut ann = chosen.annotations().clone().unwrap_or_default();
        ann.insert(SOURCE_INDEX.into(), index_id);
        chosen.set_annotations(Some(ann));
        let note = replacement_note(self.store, &self.name, &chosen);
        Ok((chosen, note))
    }

    /// Pulls one image manifest's config and layers, checking each, and stores the
    /// manifest; returns the descriptor to tag (its platform set). An artifact (a
    /// manifest whose config is not an image config) is stored unchecked when
    /// `artifacts_ok` (the other entries of an index), else refused. With `expect`, an
    /// image whose config declares another platform is refused once its config is read,
    /// before any layer is fetched.
    async fn image(
        &mut self,
        raw: &[u8],
        digest: &str,
        media_type: &str,
        artifacts_ok: bool,
        expect: Option<&PlatformSpec>,
    ) -> Result<Descriptor, RegistryError> {
        let name = self.name.clone();
        let manifest: ImageManifest = serde_json::from_slice(raw)
            .map_err(|e| self.bad(format!("{name}: invalid image manifest {digest} ({e})")))?;
        let config_desc = manifest.config();
        let config_type = config_desc.media_type().to_string();
        let artifact = !is_image_config(&config_type);
        if artifact && !artifacts_ok {
            return Err(self.bad(format!(
                "{name}: {digest} is not a container image (its config has media type {})",
                super::wire::printable(config_type.as_bytes())
            )));
        }
        if config_desc.size() > MAX_CONFIG {
            return Err(self.bad(format!(
                "{name}: its config {} is {} bytes, more than the {} MiB imgtool reads",
                config_desc.digest(),
                config_desc.size(),
                MAX_CONFIG >> 20
            )));
        }
        if !artifact {
            check_manifest(&manifest).map_err(|m| self.bad(format!("{name}: {m}")))?;
        }
        let config_digest = config_desc.digest().to_string();
        self.fetch(&config_digest, config_desc.size(), None).await?;
        let mut platform = None;
        let layers = manifest.layers().clone();
        if artifact {
            for l in &layers {
                self.fetch(l.digest().as_ref(), l.size(), None).await?;
            }
        } else {
            let config_raw = self.store.read_blob(&config_digest)?;
            let config = check_config(&config_raw, layers.len())
                .map_err(|p| self.bad(format!("{name}: its image config {config_digest} {p}")))?;
            platform = config_platform(&config);
            if let Some(want) = expect {
                check_platform(&name, want, platform.as_ref())?;
            }
            let diff_ids = config.rootfs().diff_ids().clone();
            let mode = unpack::mode(self.opts.unpack);
            let unpacker = Unpacker::start(self.store, mode, &layers, &diff_ids);
            let downloaded = {
                let this = &*self;
                futures_util::stream::iter(layers.iter().enumerate())
                    .map(|(i, l)| {
                        let feed = Some(unpacker.layer_feed(i));
                        this.fetch_owned(l.digest().to_string(), l.size(), feed)
                    })
                    .buffer_unordered(PARALLEL_DOWNLOADS)
                    .try_collect::<Vec<()>>()
                    .await
            };
            if let Err(e) = downloaded {
                unpacker.abandon();
                return Err(e);
            }
            let spinner = self.progress.spinner(match mode {
                unpack::Mode::Cache => "unpacking layers",
                unpack::Mode::Verify => "verifying layers",
            });
            let checked = unpacker.finish();
            spinner.finish(if checked.is_ok() { "done" } else { "failed" });
            checked.map_err(|e| layer_error(&name, &layers, e))?;
            self.blobs
                .extend(layers.iter().map(|l| l.digest().to_string()));
        }
        self.blobs.push(config_digest);
        let mut view = self.store.put_served_manifest(raw, media_type)?;
        if platform.is_some() {
            view.set_platform(platform);
        }
        Ok(view)
    }

    async fn fetch(
        &mut self,
        digest: &str,
        size: u64,
        feed: Option<std::sync::Arc<crate::store::feed::BlobFeed>>,
    ) -> Result<(), RegistryError> {
        self.fetch_owned(digest.to_string(), size, feed).await?;
        self.blobs.push(digest.to_string());
        Ok(())
    }

    async fn fetch_owned(
        &self,
        digest: String,
        size: u64,
        feed: Option<std::sync::Arc<crate::store::feed::BlobFeed>>,
    ) -> Result<(), RegistryError> {
        let bar = self.progress.blob(short_digest(&digest), size);
        let fetched = fetch_blob(
            &self.conn,
            self.store,
            &digest,
            size,
            self.policy,
            &bar,
            feed,
        )
        .await?;
        if let FetchedBlob::Replaced(why) = fetched {
            let mut replaced = self.replaced.lock().unwrap_or_else(|p| p.into_inner());
            replaced.push(format!("blob {digest} in the store was damaged ({why})"));
        }
        Ok(())
    }
}

/// A layer check's failure, naming the image and which layer.
fn layer_error(name: &str, layers: &[Descriptor], e: StoreError) -> RegistryError {
    let position = |digest: &str| {
        layers
            .iter()
            .position(|l| l.digest().to_string() == digest)
            .map(|i| format!("layer {} of {}", i + 1, layers.len()))
            .unwrap_or_else(|| "a layer".into())
    };
    let message = match &e {
        StoreError::DiffIdMismatch {
            layer,
            actual,
            expected,
        } => format!(
            "{name}: {} ({layer}) uncompresses to {actual}, but the image config's diff_id for it is {expected}",
            position(layer)
        ),
        StoreError::Layer { digest, message } => {
            format!("{name}: {} ({digest}): {message}", position(digest))
        }
        _ => return RegistryError::Store(e),
    };
    RegistryError::BadManifest {
        reference: name.to_string(),
        message,
    }
}

/// Refuses an image whose config's platform is not `want`.
fn check_platform(
    name: &str,
    want: &PlatformSpec,
    actual: Option<&Platform>,
) -> Result<(), RegistryError> {
    match actual {
        Some(p) if want.matches(p) => Ok(()),
        _ => Err(RegistryError::PlatformMismatch {
            reference: name.to_string(),
            wanted: want.to_string(),
            actual: actual.map_or_else(|| "unknown".into(), platform_name),
        }),
    }
}

/// The platform an image config declares.
fn config_platform(c: &oci_spec::image::ImageConfiguration) -> Option<Platform> {
    let mut b = PlatformBuilder::default()
        .os(c.os().clone())
        .architecture(c.architecture().clone());
    if let Some(v) = c.variant() {
        b = b.variant(v.clone());
    }
    b.build().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_image_of_another_platform_is_refused() {
        let p = |os: &str, arch: &str| {
            PlatformBuilder::default()
                .os(os)
                .architecture(arch)
                .build()
                .unwrap()
        };
        let want: PlatformSpec = "linux/arm64".parse().unwrap();
        assert!(check_platform("r", &want, Some(&p("linux", "arm64"))).is_ok());
        let err = check_platform("r", &want, Some(&p("linux", "amd64"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "image with reference r was found but does not match the specified platform: wanted linux/arm64, actual: linux/amd64"
        );
        assert!(check_platform("r", &want, None).is_err());
    }

    #[test]
    fn manifest_kinds() {
        let k = |s: &str| kind_of("r", s.as_bytes(), None);
        assert_eq!(
            k(r#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json"}"#)
                .unwrap(),
            Kind::Manifest(DOCKER_MANIFEST.into())
        );
        assert_eq!(
            k(r#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            Kind::Index(OCI_INDEX.into())
        );
        assert_eq!(
            kind_of(
                "r",
                br#"{"schemaVersion":2,"manifests":[]}"#,
                Some(DOCKER_LIST)
            )
            .unwrap(),
            Kind::Index(DOCKER_LIST.into())
        );
        assert!(k(r#"{"schemaVersion":1}"#).is_err());
        assert!(k(r#"{"schemaVersion":2,"mediaType":"x/y"}"#).is_err());
        assert!(k("nope").is_err());
    }
}
