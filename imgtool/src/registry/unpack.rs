//! Checking layers while they download. Every pull verifies each layer it stores as docker
//! and podman do: the blob is decompressed, must be a tar, and must have the diff_id the
//! image config gives it; an image that fails is not tagged. As root with overlayfs,
//! where bundles are overlays over the layer cache, the same pass also unpacks the layer
//! into that cache (as containerd and podman unpack on pull), so the first `bundle` of
//! the image finds every layer ready.
//!
//! A thread of its own does this, reading each blob as it arrives through a [`BlobFeed`]
//! (decompression overlaps the transfer), with the layers unpacked side by side
//! ([`Store::build_layer_cache_from`]). What it builds stays in a temp directory until
//! the blob's digest and the layer's diff_id are both verified. If a download started
//! over from byte 0 (the reader cannot rewind) the thread gives up on that layer, and
//! [`Unpacker::finish`] does the work again from the stored blobs once every download is
//! verified; only an error there (a layer that is not what the config says, a full
//! disk) fails the pull.

use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;

use oci_spec::image::Descriptor;

use crate::store::feed::BlobFeed;
use crate::store::layers::BlobSource;
use crate::store::{Store, StoreError};

/// What the pull does with each layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Verify it and unpack it into the layer cache (bundles are overlays of it).
    Cache,
    /// Verify it only (bundles here copy the layers: non-root, no overlayfs, `--no-unpack`).
    Verify,
}

/// The mode a pull into `store` uses: `Cache` where bundles use the layer cache, unless
/// `unpack` is off.
pub fn mode(unpack: bool) -> Mode {
    if unpack && crate::mount::overlay_supported() {
        Mode::Cache
    } else {
        Mode::Verify
    }
}

/// The checking thread of one image and the feeds it reads.
pub struct Unpacker {
    store: Store,
    mode: Mode,
    layers: Vec<Descriptor>,
    diff_ids: Vec<String>,
    feeds: Vec<Arc<BlobFeed>>,
    thread: Option<JoinHandle<Result<(), StoreError>>>,
}

/// Does `mode`'s work on every layer, reading layer `i` from `blob(i)`.
fn run(
    store: &Store,
    mode: Mode,
    layers: &[Descriptor],
    diff_ids: &[String],
    source: BlobSource,
    blob: impl Fn(usize) -> Result<Box<dyn Read + Send>, StoreError> + Sync,
) -> Result<(), StoreError> {
    match mode {
        Mode::Cache => store
            .build_layer_cache_from(layers, diff_ids, source, blob)
            .map(drop),
        Mode::Verify => {
            for (i, desc) in layers.iter().enumerate() {
                let known = store
                    .layer_info(desc.digest().as_ref())
                    .is_some_and(|info| info.diff_id == diff_ids[i]);
                if !known {
                    store.verify_layer_from(desc, &diff_ids[i], blob(i)?, source)?;
                }
            }
            Ok(())
        }
    }
}

impl Unpacker {
    /// Starts checking `layers` (with the config's `diff_ids`) as their blobs arrive
    /// through [`Unpacker::layer_feed`]. Without a thread, everything is left to
    /// [`Unpacker::finish`].
    pub fn start(store: &Store, mode: Mode, layers: &[Descriptor], diff_ids: &[String]) -> Self {
        let feeds: Vec<Arc<BlobFeed>> = layers.iter().map(|_| BlobFeed::new()).collect();
        let thread = {
            let (store, layers, diff_ids, feeds) = (
                store.clone(),
                layers.to_vec(),
                diff_ids.to_vec(),
                feeds.clone(),
            );
            std::thread::Builder::new()
                .name("unpack".into())
                .spawn(move || {
                    run(
                        &store,
                        mode,
                        &layers,
                        &diff_ids,
                        BlobSource::VerifiedDownload,
                        |i| Ok(Box::new(feeds[i].reader())),
                    )
                })
                .ok()
        };
        Self {
            store: store.clone(),
            mode,
            layers: layers.to_vec(),
            diff_ids: diff_ids.to_vec(),
            feeds,
            thread,
        }
    }

    /// The feed layer `index`'s download writes to.
    pub fn layer_feed(&self, index: usize) -> Arc<BlobFeed> {
        Arc::clone(&self.feeds[index])
    }

    /// Stops the thread without waiting for more (the downloads failed).
    pub fn abandon(self) {
        for feed in &self.feeds {
            feed.fail();
        }
        if let Some(t) = self.thread {
            let _ = t.join();
        }
    }

    /// Once every download is verified: waits for the thread, and redoes from the stored
    /// blobs whatever it could not finish. An error here is the pull's.
    pub fn finish(self) -> Result<(), StoreError> {
        for feed in &self.feeds {
            feed.fail(); // no effect on a feed that completed
        }
        let streamed = match self.thread {
            Some(t) => t.join().unwrap_or_else(|_| {
                Err(StoreError::Corrupt("the unpacking thread panicked".into()))
            }),
            None => Err(StoreError::Corrupt("no unpacking thread".into())),
        };
        if streamed.is_ok() {
            return Ok(());
        }
        let store = &self.store;
        run(
            store,
            self.mode,
            &self.layers,
            &self.diff_ids,
            BlobSource::Store,
            |i| Ok(Box::new(store.open_blob(self.layers[i].digest().as_ref())?)),
        )
    }
}
