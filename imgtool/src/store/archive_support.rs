//! Store helpers for commands that add many images at once (load, import): a writer that
//! hashes a blob while it is written so its digest is known only at the end, and tagging
//! several images in one index.json rewrite, so an archive is either wholly tagged or not
//! at all, and a kill -9 leaves either the old index or the new one.

use std::io::{BufWriter, Write};

use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};

use super::verified::Reuse;
use super::{io, tag_of, Store, StoreError, REF_NAME};

/// A blob being written to the store's temp directory; `finish` moves it into place under
/// the digest of what was written. Dropped without `finish`, it leaves nothing behind.
pub struct BlobWriter {
    out: BufWriter<tempfile::NamedTempFile>,
    hasher: Sha256,
    size: u64,
    store: Store,
}

/// Where a finished blob went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBlob {
    /// `sha256:<hex>` of the bytes written.
    pub digest: String,
    pub size: u64,
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

impl BlobWriter {
    /// The digest of what has been written so far.
    pub fn digest_so_far(&self) -> String {
        format!("sha256:{}", hex::encode(self.hasher.clone().finalize()))
    }

    /// Syncs the blob and renames it to its content address (an existing blob of the
    /// same digest is kept as it is, unless it is damaged: see [`Store::reusable_blob`]).
    pub fn finish(self) -> Result<WrittenBlob, StoreError> {
        let digest = format!("sha256:{}", hex::encode(self.hasher.finalize()));
        let dest = self.store.blob_path(&digest)?;
        let tmp = self.out.into_inner().map_err(|e| io(&dest, e.error()))?;
        if self.store.reusable_blob(&digest, self.size) != Reuse::Good {
            tmp.as_file().sync_all().map_err(|e| io(&dest, e))?;
            tmp.persist(&dest).map_err(|e| io(&dest, e.error))?;
            self.store.record_verified(&digest);
        }
        Ok(WrittenBlob {
            digest,
            size: self.size,
        })
    }
}

impl Store {
    /// A writer for a blob whose digest is computed from what is written.
    pub fn blob_writer(&self) -> Result<BlobWriter, StoreError> {
        let tmp_dir = self.root.join("imgtool/tmp");
        let tmp = tempfile::NamedTempFile::new_in(&tmp_dir).map_err(|e| io(&tmp_dir, e))?;
        Ok(BlobWriter {
            out: BufWriter::with_capacity(1 << 17, tmp),
            hasher: Sha256::new(),
            size: 0,
            store: self.clone(),
        })
    }

    /// An anonymous scratch file in the store's temp directory (on the store's file
    /// system, gone when closed).
    pub fn scratch_file(&self) -> Result<std::fs::File, StoreError> {
        let tmp_dir = self.root.join("imgtool/tmp");
        tempfile::tempfile_in(&tmp_dir).map_err(|e| io(&tmp_dir, e))
    }

    /// Records every image in one index.json rewrite: `Some(tag)` points that tag at the
    /// manifest (replacing an earlier image of that tag), `None` keeps the manifest as an
    /// untagged image (once: an untagged entry with the same digest is not repeated).
    /// Call only once every blob of every manifest is stored.
    pub fn tag_all(&self, images: &[(Option<String>, Descriptor)]) -> Result<(), StoreError> {
        let _lock = self.lock_exclusive()?;
        let mut index = self.index()?;
        let mut manifests: Vec<Descriptor> = index.manifests().clone();
        for (tag, manifest) in images {
            match tag {
                Some(tag) => {
                    manifests.retain(|d| tag_of(d) != Some(tag.as_str()));
                    let mut tagged = manifest.clone();
                    let mut ann = tagged.annotations().clone().unwrap_or_default();
                    ann.insert(REF_NAME.to_string(), tag.clone());
                    tagged.set_annotations(Some(ann));
                    manifests.push(tagged);
                }
                None => {
                    let known = manifests
                        .iter()
                        .any(|d| tag_of(d).is_none() && d.digest() == manifest.digest());
                    if !known {
                        let mut untagged = manifest.clone();
                        if let Some(mut ann) = untagged.annotations().clone() {
                            ann.remove(REF_NAME);
                            untagged.set_annotations((!ann.is_empty()).then_some(ann));
                        }
                        manifests.push(untagged);
                    }
                }
            }
        }
        index.set_manifests(manifests);
        self.write_index(&index)
    }
}
