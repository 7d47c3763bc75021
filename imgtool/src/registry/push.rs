//! Pushing a stored image to a registry (distribution-spec "push"): for every blob (config
//! and layers, several at once) the registry is asked first whether it has it (HEAD);
//! if not, a cross-repository mount is tried from repositories of the same registry the
//! blob is known to be in (see [`super::sources`]); only then is it uploaded, streamed
//! from the store in one request (POST for a session, then one PUT with the digest and
//! the whole blob, as containerd pushes) and retried from a new upload session on
//! transient failures. Manifests are PUT last, byte for byte as
//! stored, so the registry's digest is the store's; for an image index the child
//! manifests go first. Mirrors are for reads: a push always goes to the registry itself.

use std::io::Read;
use std::sync::{Arc, Mutex};

use futures_util::{StreamExt, TryStreamExt};
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use sha2::{Digest as _, Sha256};

use super::auth::AuthFile;
use super::client::{connect, Connection};
use super::config::RegistriesConfig;
use super::identity_token::Access;
use super::progress::{short_digest, BlobProgress, Progress};
use super::retry::{gave_up, map_error, retrying, RetryPolicy};
use super::wire::{Mount, WireError};
use super::{sources, RegistryError};
use crate::reference::{self, store_name, Reference};
use crate::store::identity::identity;
use crate::store::{Store, StoreError, StoredImage};

/// How many blobs are pushed at once.
pub const PARALLEL_UPLOADS: usize = 4;

/// The pieces a blob is read from the store in and handed to the connection; only
/// [`READ_AHEAD`] + 1 of them are in memory per upload.
pub const UPLOAD_CHUNK: usize = 1024 * 1024;

/// How many pieces of a blob are read ahead of the connection.
const READ_AHEAD: usize = 4;

/// How many repositories a blob is tried to be mounted from before it is uploaded.
const MAX_MOUNT_TRIES: usize = 3;

/// Options of one push.
#[derive(Debug, Clone, Default)]
pub struct PushOptions {
    /// Treat the registry as insecure (`--insecure`).
    pub insecure: bool,
    pub retry: RetryPolicy,
}

/// What happened to the blobs of a push.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobCounts {
    /// Already in the destination repository.
    pub present: usize,
    /// Mounted from another repository of the registry.
    pub mounted: usize,
    /// Uploaded.
    pub uploaded: usize,
}

/// The result of a push.
#[derive(Debug, Clone)]
pub struct Pushed {
    /// The destination, normalized (`host:5000/repo:tag`).
    pub name: String,
    /// The digest of the manifest (or index) the destination now names.
    pub digest: String,
    pub blobs: BlobCounts,
    /// Something the user should know (e.g. only one platform of an index was pushed).
    pub note: Option<String>,
}

/// A manifest (or index) to PUT, as stored.
struct ManifestToPush {
    digest: String,
    media_type: String,
    bytes: Vec<u8>,
}

/// Everything one push sends.
struct Plan {
    /// Manifests of an index, PUT by digest before the index.
    children: Vec<ManifestToPush>,
    /// The manifest or index the destination tag names.
    top: ManifestToPush,
    /// (digest, size) of every config and layer, each once.
    blobs: Vec<(String, u64)>,
    note: Option<String>,
}

enum BlobOutcome {
    Present,
    Mounted,
    Uploaded,
}

fn is_index(media_type: &str) -> bool {
    media_type.ends_with("image.index.v1+json") || media_type.ends_with("manifest.list.v2+json")
}

/// Pushes the stored image `source` (any name `Store::find` accepts) to `dest`, by
/// default the image's own name.
pub async fn push_image(
    store: &Store,
    source: &str,
    dest: Option<&Reference>,
    config: &RegistriesConfig,
    auth: &AuthFile,
    opts: &PushOptions,
    progress: &Progress,
) -> Result<Pushed, RegistryError> {
    // Blobs are read for the whole push: keep gc out.
    let _op = store.lock_operation()?;
    let stored = store.find(source)?;
    let dest = match dest {
        Some(d) => d.clone(),
        None => reference::parse(&stored.name).map_err(|e| RegistryError::BadManifest {
            reference: stored.name.clone(),
            message: e.to_string(),
        })?,
    };
    let plan = plan(store, &stored)?;
    if let Some(want) = dest.digest() {
        if want != plan.top.digest {
            return Err(RegistryError::BadManifest {
                reference: store_name(&dest),
                message: format!(
                    "the destination names digest {want} but the image's manifest is {}",
                    plan.top.digest
                ),
            });
        }
    }
    let endpoint = config
        .endpoints(dest.registry(), opts.insecure)
        .into_iter()
        .rfind(|e| !e.is_mirror)
        .ok_or_else(|| RegistryError::Protocol {
            registry: dest.registry().to_string(),
            message: "no endpoint to push to".into(),
        })?;
    let conn = connect(&dest, &endpoint, auth, Access::Push, None).await?;
    let policy = opts.retry;

    let outcomes: Vec<BlobOutcome> = futures_util::stream::iter(plan.blobs.iter())
        .map(|(digest, size)| {
            let conn = &conn;
            let candidates = mount_candidates(store, &dest, digest);
            async move {
                let bar = progress.blob(short_digest(digest), *size);
                push_blob(conn, store, digest, *size, &candidates, policy, &bar).await
            }
        })
        .buffer_unordered(PARALLEL_UPLOADS)
        .try_collect()
        .await?;
    let mut counts = BlobCounts::default();
    for o in outcomes {
        match o {
            BlobOutcome::Present => counts.present += 1,
            BlobOutcome::Mounted => counts.mounted += 1,
            BlobOutcome::Uploaded => counts.uploaded += 1,
        }
    }

    for child in &plan.children {
        put_manifest(&conn, policy, &child.digest, child).await?;
    }
    let top_ref = dest
        .tag()
        .map(String::from)
        .unwrap_or_else(|| plan.top.digest.clone());
    put_manifest(&conn, policy, &top_ref, &plan.top).await?;

    // A hint for later mounts; failing to write it does not fail the push.
    let digests: Vec<String> = plan.blobs.iter().map(|(d, _)| d.clone()).collect();
    let _ = sources::record(
        store,
        &format!("{}/{}", dest.registry(), dest.repository()),
        &digests,
    );
    Ok(Pushed {
        name: store_name(&dest),
        digest: plan.top.digest,
        blobs: counts,
        note: plan.note,
    })
}

/// Repositories of `dest`'s registry other than its own that hold `digest`, as far as
/// the store knows.
fn mount_candidates(store: &Store, dest: &Reference, digest: &str) -> Vec<String> {
    sources::repositories_of(store, digest)
        .into_iter()
        .filter_map(|entry| {
            let (registry, repo) = entry.split_once('/')?;
            (registry == dest.registry() && repo != dest.repository()).then(|| repo.to_string())
        })
        .take(MAX_MOUNT_TRIES)
        .collect()
}

/// The manifest (or index) `d` stands for, as its registry served it (see
/// [`crate::store::identity`]), and the digest of its stored OCI form.
fn as_served(store: &Store, d: &Descriptor) -> Result<(ManifestToPush, String), StoreError> {
    let id = identity(d);
    let bytes = store.read_blob(&id.digest)?;
    Ok((
        ManifestToPush {
            digest: id.digest,
            media_type: id.media_type,
            bytes,
        },
        d.digest().to_string(),
    ))
}

/// What to send for `stored`: its manifest and blobs, or an index with all its images,
/// each as its registry served it.
fn plan(store: &Store, stored: &StoredImage) -> Result<Plan, RegistryError> {
    let desc = &stored.descriptor;
    let (top, view) = as_served(store, desc)?;
    if !stored.is_index() {
        let blobs = manifest_blobs(store, &stored.name, &view)?;
        return Ok(Plan {
            children: vec![],
            top,
            blobs,
            note: None,
        });
    }
    let view_bytes = store.read_blob(&view)?;
    let index: ImageIndex = serde_json::from_slice(&view_bytes).map_err(|e| {
        StoreError::Corrupt(format!("image index {} is not valid: {e}", top.digest))
    })?;
    let mut children = Vec::new();
    let mut blobs = Vec::new();
    let mut incomplete = None;
    for m in index.manifests() {
        let served = as_served(store, m)
            .ok()
            .filter(|_| !is_index(m.media_type().as_ref()));
        let Some((child, child_view)) = served else {
            incomplete = Some(identity(m).digest);
            break;
        };
        match manifest_blobs(store, &stored.name, &child_view) {
            Ok(b) => blobs.extend(b),
            Err(_) => {
                incomplete = Some(child.digest);
                break;
            }
        }
        children.push(child);
    }
    let Some(missing) = incomplete else {
        let mut seen = std::collections::HashSet::new();
        blobs.retain(|(d, _)| seen.insert(d.clone()));
        return Ok(Plan {
            children,
            top,
            blobs,
            note: None,
        });
    };
    // Not every platform is in the store (as after a pull of one platform): push the
    // image this host would use, alone, as its own manifest.
    let entry = store.index_entry(desc).map_err(|_| {
        StoreError::Corrupt(format!(
            "image index {} lacks manifest {missing} in the store",
            top.digest
        ))
    })?;
    let (single, single_view) = as_served(store, &entry)?;
    let blobs = manifest_blobs(store, &stored.name, &single_view)?;
    Ok(Plan {
        note: Some(format!(
            "only some platforms of index {} are in the store (missing {missing}); pushed the image {} alone (pull with --all-platforms to push the whole index)",
            top.digest, single.digest
        )),
        children: vec![],
        top: single,
        blobs,
    })
}

/// The config and layers of the stored manifest `view`, all of which must be in the
/// store.
fn manifest_blobs(store: &Store, name: &str, view: &str) -> Result<Vec<(String, u64)>, StoreError> {
    let manifest: ImageManifest = serde_json::from_slice(&store.read_blob(view)?)
        .map_err(|e| StoreError::Corrupt(format!("manifest {view} of {name} is not valid: {e}")))?;
    let mut blobs = vec![(
        manifest.config().digest().to_string(),
        manifest.config().size(),
    )];
    for l in manifest.layers() {
        blobs.push((l.digest().to_string(), l.size()));
    }
    for (d, _) in &blobs {
        if !store.has_blob(d) {
            return Err(StoreError::Corrupt(format!(
                "blob {d} of {name} is missing from the store"
            )));
        }
    }
    let mut seen = std::collections::HashSet::new();
    blobs.retain(|(d, _)| seen.insert(d.clone()));
    Ok(blobs)
}

async fn put_manifest(
    conn: &Connection,
    policy: RetryPolicy,
    target: &str,
    m: &ManifestToPush,
) -> Result<(), RegistryError> {
    let body = bytes::Bytes::from(m.bytes.clone());
    retrying(conn, policy, &format!("manifest {}", m.digest), || {
        conn.wire.put_manifest(target, &m.media_type, &body)
    })
    .await?;
    Ok(())
}

/// Makes sure the registry has blob `digest`: already there, mounted, or uploaded.
async fn push_blob(
    conn: &Connection,
    store: &Store,
    digest: &str,
    size: u64,
    mount_from: &[String],
    policy: RetryPolicy,
    bar: &BlobProgress,
) -> Result<BlobOutcome, RegistryError> {
    let what = format!("blob {digest}");
    let exists = retrying(conn, policy, &what, || conn.wire.blob_exists(digest)).await?;
    if exists {
        bar.finish("already in the registry");
        return Ok(BlobOutcome::Present);
    }
    // A registry that cannot mount (the blob is gone there, or no access) answers 202
    // with an upload session instead of 201: the blob is then uploaded into it.
    let mut session = None;
    for repo in mount_from {
        match conn.wire.mount_blob(digest, repo).await {
            Ok(Mount::Mounted) => {
                bar.finish(&format!("mounted from {repo}"));
                return Ok(BlobOutcome::Mounted);
            }
            Ok(Mount::Session(location)) => session = Some(location),
            Err(_) => {}
        }
    }
    let mut attempt = 1;
    loop {
        match upload(conn, store, digest, size, bar, session.take()).await {
            Ok(()) => break,
            Err(Upload::Local(e)) => return Err(e),
            Err(Upload::Remote(e)) => match map_error(conn, &what, &e) {
                (err, Some(throttled)) if attempt < policy.attempts => {
                    bar.message(&format!("retrying: {err}"));
                    tokio::time::sleep(policy.wait(attempt, throttled, e.retry_after())).await;
                    attempt += 1;
                }
                (err, Some(_)) => return Err(gave_up(err, attempt)),
                (err, None) => return Err(err),
            },
        }
    }
    bar.finish("pushed");
    Ok(BlobOutcome::Uploaded)
}

/// Why one upload attempt failed.
enum Upload {
    /// Reading the blob from the store failed, or it is not what its name says.
    Local(RegistryError),
    Remote(WireError),
}

/// One upload: a session (`session`, or a new one), then the blob in one PUT, streamed
/// from the store in [`UPLOAD_CHUNK`] pieces by a reader on the blocking pool that stays
/// up to [`READ_AHEAD`] pieces ahead of the network and verifies the blob against its
/// digest as it reads it: a corrupt store blob fails the stream before its last piece,
/// so the registry never receives the whole of it.
async fn upload(
    conn: &Connection,
    store: &Store,
    digest: &str,
    size: u64,
    bar: &BlobProgress,
    session: Option<reqwest::Url>,
) -> Result<(), Upload> {
    let path = store
        .blob_path(digest)
        .map_err(|e| Upload::Local(e.into()))?;
    // Opened here so a missing blob is a local error before any request.
    std::fs::File::open(&path).map_err(|e| {
        Upload::Local(
            StoreError::Io {
                path: path.clone(),
                message: format!("blob {digest}: {e}"),
            }
            .into(),
        )
    })?;
    let location = match session {
        Some(l) => l,
        None => conn
            .wire
            .start_upload(digest)
            .await
            .map_err(Upload::Remote)?,
    };
    let local_error: Arc<Mutex<Option<StoreError>>> = Arc::default();
    let body = || blob_body(&path, digest, size, bar, &local_error);
    match conn.wire.finish_upload(&location, digest, size, body).await {
        Ok(()) => Ok(()),
        Err(e) => {
            let local = local_error.lock().ok().and_then(|mut s| s.take());
            match local {
                Some(l) => Err(Upload::Local(l.into())),
                None => Err(Upload::Remote(e)),
            }
        }
    }
}

/// The body of one upload of blob `digest`: its file read (and verified) on the blocking
/// pool. A failure to read or a wrong digest ends the stream with an error, recorded in
/// `failed` so the push reports it rather than the connection's complaint.
fn blob_body(
    path: &std::path::Path,
    digest: &str,
    size: u64,
    bar: &BlobProgress,
    failed: &Arc<Mutex<Option<StoreError>>>,
) -> reqwest::Body {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<bytes::Bytes, StoreError>>(READ_AHEAD);
    let (path, want) = (path.to_path_buf(), digest.to_string());
    tokio::task::spawn_blocking(move || read_blob(&path, &want, size, tx));
    let (bar, failed) = (bar.clone(), failed.clone());
    let stream = futures_util::stream::unfold((rx, 0u64), move |(mut rx, sent)| {
        let (bar, failed) = (bar.clone(), failed.clone());
        async move {
            match rx.recv().await? {
                Ok(chunk) => {
                    let sent = sent + chunk.len() as u64;
                    bar.set_position(sent);
                    Some((Ok(chunk), (rx, sent)))
                }
                Err(e) => {
                    let msg = e.to_string();
                    if let Ok(mut slot) = failed.lock() {
                        *slot = Some(e);
                    }
                    Some((Err(std::io::Error::other(msg)), (rx, sent)))
                }
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}

/// Reads blob `digest` of `size` bytes at `path` in [`UPLOAD_CHUNK`] pieces into `tx`,
/// one piece behind: the last piece is sent only once the whole file is known to have
/// the right size and digest; otherwise an error goes instead. Stops early when the
/// upload is abandoned (the receiver is dropped).
fn read_blob(
    path: &std::path::Path,
    digest: &str,
    size: u64,
    tx: tokio::sync::mpsc::Sender<Result<bytes::Bytes, StoreError>>,
) {
    let io_err = |e: std::io::Error| StoreError::Io {
        path: path.to_path_buf(),
        message: format!("blob {digest}: {e}"),
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = tx.blocking_send(Err(io_err(e)));
            return;
        }
    };
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut pending: Option<bytes::Bytes> = None;
    loop {
        let mut buf = vec![0u8; UPLOAD_CHUNK];
        let mut n = 0;
        while n < buf.len() {
            match file.read(&mut buf[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let _ = tx.blocking_send(Err(io_err(e)));
                    return;
                }
            }
        }
        buf.truncate(n);
        hasher.update(&buf);
        total += n as u64;
        if n == 0 || total > size {
            break;
        }
        if let Some(p) = pending.replace(bytes::Bytes::from(buf)) {
            if tx.blocking_send(Ok(p)).is_err() {
                return;
            }
        }
    }
    let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
    let last = if actual != digest || total != size {
        Err(StoreError::Corrupt(format!(
            "blob {digest} ({total} bytes in {}) has digest {actual}",
            path.display()
        )))
    } else {
        match pending {
            Some(p) => Ok(p),
            None => return,
        }
    };
    let _ = tx.blocking_send(last);
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci_spec::image::MediaType;

    #[test]
    fn mounts_only_from_other_repositories_of_the_same_registry() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = store
            .put_bytes(MediaType::ImageConfig, b"{}")
            .unwrap()
            .digest()
            .to_string();
        for repo in ["r:1/a", "other:2/b", "r:1/dest", "r:1/lib/c"] {
            sources::record(&store, repo, std::slice::from_ref(&d)).unwrap();
        }
        let dest = reference::parse("r:1/dest:v1").unwrap();
        assert_eq!(mount_candidates(&store, &dest, &d), ["lib/c", "a"]);
    }

    #[test]
    fn a_manifest_with_a_missing_blob_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let config = store.put_bytes(MediaType::ImageConfig, b"{}").unwrap();
        let missing = format!("sha256:{}", "1".repeat(64));
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config.digest().to_string(), "size": 2},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": missing, "size": 5}],
        });
        let m = store
            .put_bytes(
                MediaType::ImageManifest,
                &serde_json::to_vec(&manifest).unwrap(),
            )
            .unwrap();
        let err = manifest_blobs(&store, "img", m.digest().as_ref())
            .unwrap_err()
            .to_string();
        assert!(err.contains(&missing) && err.contains("missing"), "{err}");
    }
}
