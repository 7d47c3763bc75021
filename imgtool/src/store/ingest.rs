//! Incremental blob ingestion for downloads: bytes arrive in pieces (possibly over several
//! HTTP requests when a transfer is resumed with a Range request), are hashed as they are
//! written to a temp file in the store's `imgtool/tmp`, and the blob only becomes visible
//! under `blobs/` once its size and sha256 digest are verified. A dropped writer removes
//! its temp file, so a failed download leaves nothing behind (a killed process leaves only
//! an unreferenced temp file, never a wrong blob).

use std::io::{Seek, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};

use super::feed::BlobFeed;
use super::{io, Store, StoreError};

/// A blob being written; see [`Store::begin_blob`].
pub struct BlobWriter {
    tmp: tempfile::NamedTempFile,
    hasher: Sha256,
    written: u64,
    digest: String,
    size: u64,
    dest: PathBuf,
    /// Who reads the blob while it arrives (see [`BlobFeed`]), told of every change.
    feed: Option<FeedGuard>,
}

impl Store {
    /// True when the blob is already stored (downloads of it can be skipped).
    pub fn has_blob(&self, digest: &str) -> bool {
        self.blob_path(digest).map(|p| p.exists()).unwrap_or(false)
    }

    /// Starts writing the blob `digest` of `size` bytes into a temp file of the store.
    pub fn begin_blob(&self, digest: &str, size: u64) -> Result<BlobWriter, StoreError> {
        let dest = self.blob_path(digest)?;
        let tmp = tempfile::Builder::new()
            .prefix("download-")
            .tempfile_in(self.root().join("imgtool/tmp"))
            .map_err(|e| io(&dest, e))?;
        Ok(BlobWriter {
            tmp,
            hasher: Sha256::new(),
            written: 0,
            digest: digest.to_string(),
            size,
            dest,
            feed: None,
        })
    }
}

impl BlobWriter {
    /// Lets `feed`'s reader follow this download from its first byte.
    pub fn follow_with(&mut self, feed: Arc<BlobFeed>) -> Result<(), StoreError> {
        let file = match self.tmp.as_file().try_clone() {
            Ok(file) => file,
            Err(e) => {
                feed.fail();
                return Err(io(&self.dest, e));
            }
        };
        feed.attach(file);
        feed.grew(self.written);
        self.feed = Some(FeedGuard(feed));
        Ok(())
    }

    /// Bytes received so far: where a resumed transfer continues from.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The size this blob must have.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The digest this blob must have.
    pub fn digest(&self) -> &str {
        &self.digest
    }

    /// Appends bytes. More bytes than the descriptor's size is an error right away, so a
    /// lying or broken server cannot fill the disk.
    pub fn write(&mut self, data: &[u8]) -> Result<(), StoreError> {
        let total = self.written + data.len() as u64;
        if total > self.size {
            return Err(StoreError::SizeMismatch {
                digest: self.digest.clone(),
                expected: self.size,
                actual: total,
            });
        }
        self.tmp
            .as_file_mut()
            .write_all(data)
            .map_err(|e| io(&self.dest, e))?;
        self.hasher.update(data);
        self.written = total;
        if let Some(FeedGuard(feed)) = &self.feed {
            feed.grew(total);
        }
        Ok(())
    }

    /// Throws away what was received (the server ignored a Range request and is sending
    /// the whole blob again).
    pub fn restart(&mut self) -> Result<(), StoreError> {
        let f = self.tmp.as_file_mut();
        f.set_len(0).map_err(|e| io(&self.dest, e))?;
        f.rewind().map_err(|e| io(&self.dest, e))?;
        self.hasher = Sha256::new();
        self.written = 0;
        // The reader has consumed bytes that are now gone: it gives up (the layer is
        // unpacked from the stored blob later instead).
        self.feed = None;
        Ok(())
    }

    /// Verifies size and digest, then moves the blob into place. On a mismatch the temp
    /// file is removed and nothing becomes visible.
    pub fn commit(mut self) -> Result<PathBuf, StoreError> {
        let feed = self.feed.take();
        let committed = self.verify_and_persist()?;
        if let Some(guard) = feed {
            guard.complete();
        }
        Ok(committed)
    }

    fn verify_and_persist(self) -> Result<PathBuf, StoreError> {
        if self.written != self.size {
            return Err(StoreError::SizeMismatch {
                digest: self.digest,
                expected: self.size,
                actual: self.written,
            });
        }
        let actual = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        if actual != self.digest {
            return Err(StoreError::DigestMismatch {
                expected: self.digest,
                actual,
                size: self.written,
            });
        }
        self.tmp
            .as_file()
            .sync_all()
            .map_err(|e| io(&self.dest, e))?;
        self.tmp
            .persist(&self.dest)
            .map_err(|e| io(&self.dest, e.error))?;
        Ok(self.dest)
    }
}

/// A writer's link to its feed: dropped before the blob is committed (an error, a
/// restart from byte 0, a cancelled pull), it ends the reader's wait with a failure.
struct FeedGuard(Arc<BlobFeed>);

impl FeedGuard {
    fn complete(self) {
        self.0.complete();
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        // No effect after complete(): a feed ends once.
        self.0.fail();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest_of(data: &[u8]) -> String {
        format!("sha256:{}", hex::encode(Sha256::digest(data)))
    }

    fn tmp_entries(store: &Store) -> usize {
        std::fs::read_dir(store.root().join("imgtool/tmp"))
            .unwrap()
            .count()
    }

    #[test]
    fn pieces_then_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = b"hello blob".repeat(10);
        let d = digest_of(&data);
        assert!(!store.has_blob(&d));
        let mut w = store.begin_blob(&d, data.len() as u64).unwrap();
        w.write(&data[..7]).unwrap();
        assert_eq!(w.written(), 7);
        w.write(&data[7..]).unwrap();
        w.commit().unwrap();
        assert!(store.has_blob(&d));
        assert_eq!(tmp_entries(&store), 0);
    }

    #[test]
    fn restart_discards() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let data = b"0123456789";
        let d = digest_of(data);
        let mut w = store.begin_blob(&d, 10).unwrap();
        w.write(b"xxxx").unwrap();
        w.restart().unwrap();
        w.write(data).unwrap();
        w.commit().unwrap();
        assert_eq!(std::fs::read(store.blob_path(&d).unwrap()).unwrap(), data);
    }

    #[test]
    fn mismatch_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let d = digest_of(b"right");
        let mut w = store.begin_blob(&d, 5).unwrap();
        w.write(b"wrong").unwrap();
        assert!(matches!(w.commit(), Err(StoreError::DigestMismatch { .. })));
        let mut w = store.begin_blob(&d, 5).unwrap();
        assert!(matches!(
            w.write(b"toolong"),
            Err(StoreError::SizeMismatch { .. })
        ));
        drop(w);
        assert!(!store.has_blob(&d));
        assert_eq!(tmp_entries(&store), 0);
    }
}
