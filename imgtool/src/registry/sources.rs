//! Where blobs of the store are known to exist in registries: `STORE/imgtool/sources.json`
//! maps a blob digest to the repositories (`registry/repository`) it was pulled from or
//! pushed to, most recent first. Push uses it to ask a registry to mount a blob from
//! another of its repositories (distribution-spec cross-repository mount) instead of
//! uploading it again. The record is a hint only: a stale entry costs one failed mount.
//!
//! Written atomically (temp file + rename) under its own exclusive flock, so concurrent
//! pulls and pushes never lose each other's entries or leave a torn file; entries of
//! blobs no longer in the store are dropped on each write, which keeps the file bounded
//! by the store's content.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use crate::store::{Store, StoreError};

/// How many repositories are remembered per blob.
const MAX_PER_BLOB: usize = 4;

type Record = BTreeMap<String, Vec<String>>;

fn path(store: &Store) -> PathBuf {
    store.root().join("imgtool/sources.json")
}

fn io_err(path: &std::path::Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Reads the record; a missing or unreadable file is an empty record (it is only a hint).
fn read(store: &Store) -> Record {
    std::fs::read(path(store))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// The repositories (`registry/repository`) `digest` is known to be in.
pub fn repositories_of(store: &Store, digest: &str) -> Vec<String> {
    read(store).remove(digest).unwrap_or_default()
}

/// Records that `digests` exist in `repository` (`registry/repository`).
pub fn record(store: &Store, repository: &str, digests: &[String]) -> Result<(), StoreError> {
    let lock_path = store.root().join("imgtool/sources.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| io_err(&lock_path, e))?;
    // SAFETY: flock on an fd we own; it blocks until granted and is released on close.
    if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(io_err(&lock_path, std::io::Error::last_os_error()));
    }
    let mut rec = read(store);
    for d in digests {
        let list = rec.entry(d.clone()).or_default();
        list.retain(|r| r != repository);
        list.insert(0, repository.to_string());
        list.truncate(MAX_PER_BLOB);
    }
    rec.retain(|d, _| store.has_blob(d));
    let target = path(store);
    let data = serde_json::to_vec(&rec).map_err(|e| io_err(&target, e))?;
    let tmp = tempfile::Builder::new()
        .prefix("sources-")
        .tempfile_in(store.root().join("imgtool/tmp"))
        .map_err(|e| io_err(&target, e))?;
    let mut f = tmp.as_file();
    f.write_all(&data).map_err(|e| io_err(&target, e))?;
    f.sync_all().map_err(|e| io_err(&target, e))?;
    tmp.persist(&target).map_err(|e| io_err(&target, e.error))?;
    drop(lock);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_most_recent_first_and_forgets_missing_blobs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let a = store
            .put_bytes(oci_spec::image::MediaType::ImageConfig, b"a")
            .unwrap()
            .digest()
            .to_string();
        let missing = format!("sha256:{}", "0".repeat(64));
        record(&store, "r:1/x", &[a.clone(), missing.clone()]).unwrap();
        record(&store, "r:1/y", std::slice::from_ref(&a)).unwrap();
        record(&store, "r:1/x", std::slice::from_ref(&a)).unwrap();
        assert_eq!(repositories_of(&store, &a), ["r:1/x", "r:1/y"]);
        assert!(repositories_of(&store, &missing).is_empty());
        for i in 0..10 {
            record(&store, &format!("r:1/z{i}"), std::slice::from_ref(&a)).unwrap();
        }
        assert_eq!(repositories_of(&store, &a).len(), MAX_PER_BLOB);
        assert_eq!(
            std::fs::read_dir(dir.path().join("imgtool/tmp"))
                .unwrap()
                .count(),
            0
        );
    }
}
