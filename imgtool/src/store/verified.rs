//! Whether a stored blob may be reused as it is, cheaply.
//!
//! A pull (or a load, an import, a commit) that finds a blob already stored reuses it
//! instead of downloading it again. A blob file can have been damaged since it was stored:
//! a bit flipped, a partial write, a truncation. Hashing every reused blob on every pull
//! would cost what a warm pull otherwise does not (the Debian layer is ~50 MB: tens of
//! milliseconds of sha256 against a 10 ms pull), so a blob verified whole (size and
//! digest) gets a record, `imgtool/verified/<hex>`, of its file's identity at that moment:
//! inode, size, mtime and ctime (nanoseconds). Any write to the file through the kernel
//! (a write, a truncation, a copy over it, a rename of another file onto its name) changes
//! its ctime, which no program can set back, or its inode; so a blob whose record still
//! matches is the verified content, and anything else is hashed again before it is
//! reused. What this cannot see (the disk returning other bytes under unchanged
//! metadata) is still caught before use: every read of a blob for a bundle, the layer
//! cache, push and save checks its digest (see the store docs).
//!
//! The record is a hint: a missing, stale or unreadable one only costs one hash.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

use super::Store;

/// A blob file's identity at the time it was verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Fingerprint {
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Fingerprint {
    fn of(meta: &fs::Metadata) -> Self {
        Self {
            ino: meta.ino(),
            size: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// What [`Store::reusable_blob`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reuse {
    /// Not stored: fetch it.
    Missing,
    /// Stored and good: reuse it.
    Good,
    /// Stored but damaged (why): fetch it again, replacing it.
    Damaged(String),
}

impl Store {
    fn verified_path(&self, digest: &str) -> Option<PathBuf> {
        let blob = self.blob_path(digest).ok()?;
        Some(self.root().join("imgtool/verified").join(blob.file_name()?))
    }

    /// Records that blob `digest` was verified whole just now (a hint: failing to write
    /// the record only costs a later hash).
    pub fn record_verified(&self, digest: &str) {
        let (Ok(blob), Some(path)) = (self.blob_path(digest), self.verified_path(digest)) else {
            return;
        };
        let Ok(meta) = fs::metadata(&blob) else {
            return;
        };
        let Ok(data) = serde_json::to_vec(&Fingerprint::of(&meta)) else {
            return;
        };
        // No fsync: a record lost or torn in a crash does not parse or does not match,
        // which costs a hash; the blob itself was synced before it was renamed in.
        if let Some(dir) = path.parent() {
            let _ = fs::create_dir_all(dir);
            if let Ok(tmp) = tempfile::NamedTempFile::new_in(dir) {
                if fs::write(tmp.path(), &data).is_ok() {
                    let _ = tmp.persist(&path);
                }
            }
        }
    }

    /// Whether blob `digest`, which must be `size` bytes, can be reused as it is stored:
    /// its size, then its record (see the module docs), else its digest is checked (and,
    /// when good, recorded).
    pub fn reusable_blob(&self, digest: &str, size: u64) -> Reuse {
        let Ok(path) = self.blob_path(digest) else {
            return Reuse::Missing;
        };
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Reuse::Missing,
            Err(e) => return Reuse::Damaged(format!("cannot read it: {e}")),
        };
        // The negative control's switch (debug builds only): reuse it unchecked, as
        // imgtool did before this check.
        if crate::test_switches::unsafe_enabled("stored-blob-check") {
            return Reuse::Good;
        }
        if !meta.is_file() {
            return Reuse::Damaged("it is not a regular file".into());
        }
        if meta.len() != size {
            return Reuse::Damaged(format!("it is {} bytes, not {size}", meta.len()));
        }
        let recorded = self
            .verified_path(digest)
            .and_then(|p| fs::read(p).ok())
            .and_then(|d| serde_json::from_slice::<Fingerprint>(&d).ok());
        if recorded.as_ref() == Some(&Fingerprint::of(&meta)) {
            return Reuse::Good;
        }
        let mut hasher = Sha256::new();
        let hashed = fs::File::open(&path).and_then(|mut f| std::io::copy(&mut f, &mut hasher));
        match hashed {
            Err(e) => Reuse::Damaged(format!("cannot read it: {e}")),
            Ok(_) => {
                let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
                if actual == digest {
                    self.record_verified(digest);
                    Reuse::Good
                } else {
                    Reuse::Damaged(format!("its content has digest {actual}"))
                }
            }
        }
    }

    /// Removes what is recorded of blob `digest` (gc, when the blob goes).
    pub(crate) fn forget_verified(&self, digest: &str) {
        if let Some(path) = self.verified_path(digest) {
            let _ = fs::remove_file(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    fn stored(data: &[u8]) -> (tempfile::TempDir, Store, String) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
        store.put_blob(&digest, data.len() as u64, data).unwrap();
        (dir, store, digest)
    }

    #[test]
    fn a_good_blob_is_hashed_once_then_trusted_by_its_record() {
        let (_dir, store, digest) = stored(b"some layer bytes");
        assert_eq!(store.reusable_blob(&digest, 16), Reuse::Good);
        assert!(store.verified_path(&digest).unwrap().exists());
        assert_eq!(store.reusable_blob(&digest, 16), Reuse::Good);
        assert_eq!(
            store.reusable_blob(&digest, 17),
            Reuse::Damaged("it is 16 bytes, not 17".into())
        );
    }

    #[test]
    fn a_write_to_a_verified_blob_is_caught_even_with_its_mtime_put_back() {
        let (_dir, store, digest) = stored(b"some layer bytes");
        assert_eq!(store.reusable_blob(&digest, 16), Reuse::Good);
        let path = store.blob_path(&digest).unwrap();
        let mtime = fs::metadata(&path).unwrap().modified().unwrap();
        let mut f = fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all(b"S").unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        match store.reusable_blob(&digest, 16) {
            Reuse::Damaged(why) => assert!(why.contains("its content has digest"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn writing_a_blob_again_replaces_a_damaged_copy() {
        let (_dir, store, digest) = stored(b"some layer bytes");
        let path = store.blob_path(&digest).unwrap();
        fs::write(&path, b"some LAYER bytes").unwrap();
        store
            .put_blob(&digest, 16, &b"some layer bytes"[..])
            .unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"some layer bytes");
        fs::write(&path, b"some").unwrap();
        let mut w = store.blob_writer().unwrap();
        w.write_all(b"some layer bytes").unwrap();
        assert_eq!(w.finish().unwrap().digest, digest);
        assert_eq!(fs::read(&path).unwrap(), b"some layer bytes");
        assert_eq!(store.reusable_blob(&digest, 16), Reuse::Good);
    }

    #[test]
    fn missing_and_not_a_file() {
        let (_dir, store, digest) = stored(b"x");
        let other = format!("sha256:{}", "0".repeat(64));
        assert_eq!(store.reusable_blob(&other, 1), Reuse::Missing);
        let path = store.blob_path(&digest).unwrap();
        fs::remove_file(&path).unwrap();
        fs::create_dir(&path).unwrap();
        assert!(matches!(store.reusable_blob(&digest, 1), Reuse::Damaged(_)));
    }
}
