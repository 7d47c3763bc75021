//! A blob that can be read while it is still being downloaded, so a pull can unpack a layer
//! as its bytes arrive instead of after the whole blob is stored: the download and the
//! decompression then overlap. The reader follows the download's temp file like `tail -f`
//! (positional reads on its own handle, so the writer's rename of the file into `blobs/`
//! does not disturb it) and waits when it has caught up.
//!
//! Nothing read from a feed is trusted: the blob's digest is only known to be right once
//! the download completes, so a reader reports an error unless the feed ends
//! [`complete`](BlobFeed::complete) (digest verified). What the unpacker built from it stays
//! in a temp directory until then.

use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// How a feed's download ended, if it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Open,
    /// Size and digest verified.
    Complete,
    /// Failed, or restarted from byte 0 (a reader cannot rewind what it has consumed).
    Failed,
}

#[derive(Debug)]
struct State {
    file: Option<Arc<File>>,
    written: u64,
    end: End,
    /// For a blob that was already stored (not downloaded): the digest its reader checks
    /// the bytes against as it reads them.
    stored_digest: Option<String>,
}

/// One blob's bytes as they are written; shared by the writer and one reader.
#[derive(Debug)]
pub struct BlobFeed {
    state: Mutex<State>,
    changed: Condvar,
}

impl BlobFeed {
    /// A feed whose download has not started yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                file: None,
                written: 0,
                end: End::Open,
                stored_digest: None,
            }),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding this lock cannot leave the state inconsistent (plain
        // field stores), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn update(&self, f: impl FnOnce(&mut State)) {
        f(&mut self.lock());
        self.changed.notify_all();
    }

    /// The download writes into `file` (a handle of its own on the temp file).
    pub fn attach(&self, file: File) {
        self.update(|s| {
            s.file = Some(Arc::new(file));
            s.written = 0;
        });
    }

    /// The blob `digest` was already stored: all of it is readable, and the reader
    /// checks it against its digest as it reads (a stored blob may have changed on disk).
    pub fn already_stored(&self, file: File, size: u64, digest: &str) {
        self.update(|s| {
            s.file = Some(Arc::new(file));
            s.written = size;
            s.end = End::Complete;
            s.stored_digest = Some(digest.to_string());
        });
    }

    /// `written` bytes are now in the file.
    pub fn grew(&self, written: u64) {
        self.update(|s| s.written = written);
    }

    /// The download verified the blob's size and digest.
    pub fn complete(&self) {
        self.update(|s| {
            if s.end == End::Open {
                s.end = End::Complete;
            }
        });
    }

    /// The download failed or started over: the reader gives up.
    pub fn fail(&self) {
        self.update(|s| {
            if s.end == End::Open {
                s.end = End::Failed;
            }
        });
    }

    /// A reader from byte 0; it blocks until bytes arrive or the download ends.
    pub fn reader(self: &Arc<Self>) -> FeedReader {
        FeedReader {
            feed: Arc::clone(self),
            pos: 0,
            hasher: None,
        }
    }
}

/// Reads a [`BlobFeed`] from the start; see the module docs. It ends with an error unless
/// what it read has the blob's digest: a download's is checked by the download before
/// the feed completes; an already stored blob's by the reader itself.
pub struct FeedReader {
    feed: Arc<BlobFeed>,
    pos: u64,
    hasher: Option<(sha2::Sha256, String)>,
}

impl Read for FeedReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        use sha2::Digest as _;
        let (file, available) = {
            let mut s = self.feed.lock();
            if self.pos == 0 && self.hasher.is_none() {
                if let Some(d) = &s.stored_digest {
                    self.hasher = Some((sha2::Sha256::new(), d.clone()));
                }
            }
            loop {
                match (&s.file, s.end) {
                    (_, End::Failed) => {
                        return Err(io::Error::other("the download of this blob failed"))
                    }
                    (Some(f), _) if s.written > self.pos => break (Arc::clone(f), s.written),
                    (_, End::Complete) => {
                        if let Some((h, want)) = self.hasher.take() {
                            let got = format!("sha256:{}", hex::encode(h.finalize()));
                            if got != want {
                                return Err(io::Error::other(format!(
                                    "blob {want} has changed on disk: its content has digest {got}"
                                )));
                            }
                        }
                        return Ok(0);
                    }
                    _ => {
                        s = self.feed.changed.wait(s).unwrap_or_else(|p| p.into_inner());
                    }
                }
            }
        };
        let want = buf.len().min((available - self.pos) as usize);
        let n = file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the blob's temp file is shorter than what was written to it",
            ));
        }
        if let Some((h, _)) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn reads_while_written_then_ends_when_complete() {
        let mut tmp = tempfile::tempfile().unwrap();
        let feed = BlobFeed::new();
        feed.attach(tmp.try_clone().unwrap());
        let mut reader = feed.reader();
        let read = std::thread::spawn(move || {
            let mut out = Vec::new();
            reader.read_to_end(&mut out).map(|_| out)
        });
        for i in 0..50u8 {
            tmp.write_all(&[i; 1000]).unwrap();
            feed.grew((i as u64 + 1) * 1000);
        }
        feed.complete();
        let out = read.join().unwrap().unwrap();
        assert_eq!(out.len(), 50_000);
        assert!(out
            .chunks(1000)
            .enumerate()
            .all(|(i, c)| c.iter().all(|&b| b == i as u8)));
    }

    #[test]
    fn a_failed_download_is_an_error_for_the_reader() {
        let mut tmp = tempfile::tempfile().unwrap();
        let feed = BlobFeed::new();
        feed.attach(tmp.try_clone().unwrap());
        let mut reader = feed.reader();
        tmp.write_all(b"partial").unwrap();
        feed.grew(7);
        let mut buf = [0u8; 7];
        reader.read_exact(&mut buf).unwrap();
        feed.fail();
        assert!(reader.read(&mut buf).is_err());
        // Completing after a failure does not revive it.
        feed.complete();
        assert!(reader.read(&mut buf).is_err());
    }

    const STORED: &str = "sha256:87b04e58961f9a99d853d4046a0b5b793e7c3e4bbd21f5aca8fb17c20cdb1d8b";

    #[test]
    fn an_already_stored_blob_reads_at_once() {
        let mut tmp = tempfile::tempfile().unwrap();
        tmp.write_all(b"stored").unwrap();
        let feed = BlobFeed::new();
        feed.already_stored(tmp.try_clone().unwrap(), 6, STORED);
        let mut out = String::new();
        feed.reader().read_to_string(&mut out).unwrap();
        assert_eq!(out, "stored");
        // A stored blob changed on disk: its reader ends with an error naming it.
        let mut changed = tempfile::tempfile().unwrap();
        changed.write_all(b"STORED").unwrap();
        let feed = BlobFeed::new();
        feed.already_stored(changed, 6, STORED);
        let err = feed.reader().read_to_string(&mut out).unwrap_err();
        assert!(err.to_string().contains("changed on disk"), "{err}");
    }
}
