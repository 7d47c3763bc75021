//! Unpacking during a pull: as root with overlayfs, where bundles are overlays over the
//! layer cache, a pull builds that cache while the layers download (as containerd and
//! podman unpack on pull), so the first `bundle` of the image finds every layer ready and
//! the decompression overlaps the network transfer instead of following it.
//!
//! A thread of its own reads the config once its download is verified (the diff_ids it
//! lists are trusted only then), then applies each layer in order, reading the blob as it
//! arrives through a [`BlobFeed`]. What it builds stays in a temp directory until the
//! blob's digest and the layer's diff_id are both verified. Unpacking is an optimisation:
//! if it fails (a broken layer, a download that restarted), the pull still stores the
//! image and `bundle` builds the missing layers, reporting any error itself.

use std::io::Read;
use std::sync::Arc;
use std::thread::JoinHandle;

use oci_spec::image::{ImageConfiguration, ImageManifest};

use crate::store::feed::BlobFeed;
use crate::store::{Store, StoreError};

/// The unpacking thread of one pull attempt and the feeds it reads.
pub struct Unpacker {
    config: Arc<BlobFeed>,
    layers: Vec<Arc<BlobFeed>>,
    thread: JoinHandle<Result<(), StoreError>>,
}

/// True when bundles of this store would use the layer cache (root, overlayfs).
pub fn worthwhile() -> bool {
    crate::mount::overlay_supported()
}

impl Unpacker {
    /// Starts unpacking the layers of `manifest` into `store`'s layer cache as their
    /// blobs arrive through [`Unpacker::config_feed`] and [`Unpacker::layer_feed`]; None
    /// when no thread can be started (the pull then just downloads).
    pub fn start(store: &Store, manifest: &ImageManifest) -> Option<Self> {
        let config = BlobFeed::new();
        let layers: Vec<Arc<BlobFeed>> =
            manifest.layers().iter().map(|_| BlobFeed::new()).collect();
        let store = store.clone();
        let descs = manifest.layers().clone();
        let (config_feed, layer_feeds) = (Arc::clone(&config), layers.clone());
        let thread = std::thread::Builder::new().name("unpack".into()).spawn(
            move || -> Result<(), StoreError> {
                let mut raw = Vec::new();
                config_feed
                    .reader()
                    .read_to_end(&mut raw)
                    .map_err(|e| StoreError::Corrupt(format!("image config: {e}")))?;
                let config: ImageConfiguration = serde_json::from_slice(&raw)
                    .map_err(|e| StoreError::Corrupt(format!("image config: {e}")))?;
                store
                    .build_layer_cache_from(&descs, config.rootfs().diff_ids(), |i| {
                        Ok(Box::new(layer_feeds[i].reader()))
                    })
                    .map(drop)
            },
        );
        Some(Self {
            config,
            layers,
            thread: thread.ok()?,
        })
    }

    /// The feed the config's download writes to.
    pub fn config_feed(&self) -> Arc<BlobFeed> {
        Arc::clone(&self.config)
    }

    /// The feed layer `index`'s download writes to.
    pub fn layer_feed(&self, index: usize) -> Arc<BlobFeed> {
        Arc::clone(&self.layers[index])
    }

    /// Waits for the thread once the downloads are over (each feed complete, or failed:
    /// a download that never started, because another failed first, is failed here so
    /// the thread stops waiting for it).
    pub fn finish(self) -> Result<(), StoreError> {
        self.config.fail();
        for feed in &self.layers {
            feed.fail();
        }
        self.thread
            .join()
            .map_err(|_| StoreError::Corrupt("the unpacking thread panicked".into()))?
    }
}
