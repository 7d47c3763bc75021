//! Downloading one blob into the store: skipped when already stored and still good
//! ([`Store::reusable_blob`]: a damaged stored blob is downloaded again and replaced),
//! verified (size and sha256) before it becomes visible, retried on transient failures,
//! and resumed with an HTTP Range request from the bytes already received instead of
//! starting over.

use std::sync::Arc;

use super::client::Connection;
use super::progress::BlobProgress;
use super::retry::{gave_up, map_error, RetryPolicy};
use super::wire::WireError;
use super::RegistryError;
use crate::store::feed::BlobFeed;
use crate::store::ingest::BlobWriter;
use crate::store::verified::Reuse;
use crate::store::{Store, StoreError};

/// Why one attempt stopped.
enum Attempt {
    /// Worth retrying (after `throttled`-aware backoff).
    Transient {
        err: RegistryError,
        throttled: bool,
        retry_after: Option<std::time::Duration>,
    },
    Fatal(RegistryError),
}

/// What [`fetch_blob`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched {
    /// Downloaded it.
    Downloaded,
    /// Found it stored and good.
    Reused,
    /// Found it stored but damaged (why), and downloaded it again in its place.
    Replaced(String),
}

/// Fetches blob `digest` of `size` bytes from `conn` into `store` unless already there
/// and good. With a `feed`, its reader follows the blob as it arrives (or reads the
/// stored one).
pub async fn fetch_blob(
    conn: &Connection,
    store: &Store,
    digest: &str,
    size: u64,
    policy: RetryPolicy,
    progress: &BlobProgress,
    feed: Option<Arc<BlobFeed>>,
) -> Result<Fetched, RegistryError> {
    let damaged = match store.reusable_blob(digest, size) {
        Reuse::Good => {
            if let Some(feed) = feed {
                match store.open_blob(digest) {
                    Ok(file) => feed.already_stored(file, size, digest),
                    Err(_) => feed.fail(),
                }
            }
            progress.finish("already present");
            return Ok(Fetched::Reused);
        }
        Reuse::Missing => None,
        Reuse::Damaged(why) => Some(why),
    };
    let mut writer = store.begin_blob(digest, size)?;
    if let Some(feed) = feed {
        writer.follow_with(feed)?;
    }
    let mut attempt = 1;
    loop {
        match one_attempt(conn, digest, &mut writer, progress).await {
            Ok(()) => break,
            Err(Attempt::Fatal(e)) => return Err(e),
            Err(Attempt::Transient {
                err,
                throttled,
                retry_after,
            }) => {
                if attempt >= policy.attempts {
                    return Err(gave_up(err, attempt));
                }
                progress.message(&format!("retrying: {err}"));
                tokio::time::sleep(policy.wait(attempt, throttled, retry_after)).await;
                attempt += 1;
            }
        }
    }
    // The rename replaces a damaged stored blob at once: there is never a moment
    // without a blob file of that name.
    writer
        .commit()
        .map_err(|e| corrupt_or_store(conn, digest, e))?;
    store.record_verified(digest);
    progress.finish("done");
    Ok(match damaged {
        Some(why) => Fetched::Replaced(why),
        None => Fetched::Downloaded,
    })
}

fn corrupt_or_store(conn: &Connection, digest: &str, e: StoreError) -> RegistryError {
    match e {
        StoreError::DigestMismatch { actual, .. } => RegistryError::Corrupt {
            what: format!("blob {digest}"),
            registry: conn.host().to_string(),
            message: format!("its content has digest {actual}"),
        },
        StoreError::SizeMismatch {
            expected, actual, ..
        } => RegistryError::Corrupt {
            what: format!("blob {digest}"),
            registry: conn.host().to_string(),
            message: format!("expected {expected} bytes, got {actual}"),
        },
        other => RegistryError::Store(other),
    }
}

/// One request: the whole blob when nothing was received yet, else the rest of it.
async fn one_attempt(
    conn: &Connection,
    digest: &str,
    writer: &mut BlobWriter,
    progress: &BlobProgress,
) -> Result<(), Attempt> {
    let what = format!("blob {digest}");
    let map_err = |e: WireError| {
        let (err, transient) = map_error(conn, &what, &e);
        match transient {
            Some(throttled) => Attempt::Transient {
                err,
                throttled,
                retry_after: e.retry_after(),
            },
            None => Attempt::Fatal(err),
        }
    };
    let offset = writer.written();
    let mut body = conn
        .wire
        .get_blob(digest, offset, writer.size() - offset)
        .await
        .map_err(map_err)?;
    if offset > 0 && !body.partial {
        // The server ignored the Range header: start over.
        writer.restart().map_err(|e| Attempt::Fatal(e.into()))?;
    }
    loop {
        match body.next().await {
            Ok(Some(bytes)) => {
                writer
                    .write(&bytes)
                    .map_err(|e| Attempt::Fatal(corrupt_or_store(conn, digest, e)))?;
                progress.set_position(writer.written());
            }
            Ok(None) => break,
            // Every byte arrived and then the connection broke (e.g. the server promised
            // a longer Content-Length): nothing is left to fetch, and commit() verifies
            // the digest of what was received.
            Err(WireError::Transport { .. }) if writer.written() == writer.size() => break,
            Err(e @ WireError::Transport { .. }) => {
                return Err(cut_short(conn, digest, writer, Some(e.to_string())));
            }
            Err(e) => return Err(map_err(e)),
        }
    }
    if writer.written() < writer.size() {
        // The connection ended early without an error (no Content-Length): resume.
        return Err(cut_short(conn, digest, writer, None));
    }
    Ok(())
}

/// A transfer that stopped before the whole blob arrived: retried, resuming from what
/// `writer` holds. `cause` is the connection's error, if it reported one.
fn cut_short(
    conn: &Connection,
    digest: &str,
    writer: &BlobWriter,
    cause: Option<String>,
) -> Attempt {
    let message = match cause {
        Some(cause) => format!(
            "download of {digest} failed after {} bytes: {cause}",
            writer.written()
        ),
        None => format!(
            "download of {digest} ended after {} of {} bytes",
            writer.written(),
            writer.size()
        ),
    };
    Attempt::Transient {
        err: RegistryError::Unreachable {
            registry: conn.host().to_string(),
            message,
        },
        throttled: false,
        retry_after: None,
    }
}
