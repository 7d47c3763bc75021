//! Building an image's layer cache (see [`super::layers`]) with its layers unpacked side
//! by side, as containerd and c/storage unpack: each layer into an empty directory of its
//! own in overlayfs's form ([`ApplyInto::OverlayLayer`]), one layer per CPU at a time,
//! each as its bytes arrive; then, in order from the bottom, each is completed against
//! the layers below it ([`crate::layer::lower`]) and renamed into the cache.
//!
//! What a layer cannot do on its own (a hardlink to a lower layer's file, a parent path
//! through a symlink, a whiteout in a directory no lower layer has) is done as before
//! this: the layer is applied again on an overlay mount of the layers below it, whose
//! copy-ups and whiteouts give the exact result, one layer after another. The first
//! layer has nothing below it and is always applied as a whole tree.

use std::collections::HashMap;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use oci_spec::image::Descriptor;
use tempfile::TempDir;

use super::layers::{apply_compressed, chain_ids, BlobSource};
use super::{Store, StoreError};
use crate::layer::lower::{self, Completion};
use crate::layer::{ApplyInto, LowerRefs};
use crate::mount;

/// A layer unpacked into a temp directory (its `upper`), not yet in the cache.
struct Unpacked {
    tmp: TempDir,
    lower: LowerRefs,
}

impl Unpacked {
    fn upper(&self) -> PathBuf {
        self.tmp.path().join("upper")
    }
}

/// The layers of one build: their descriptors and diff_ids, their cache directories
/// (bottom first), and where their bytes come from.
struct Stack<'a, B> {
    layers: &'a [Descriptor],
    diff_ids: &'a [String],
    dirs: Vec<PathBuf>,
    source: BlobSource,
    /// A reader of layer `i`'s compressed bytes from the start.
    blobs: B,
}

/// The most layers unpacked at once on any machine: each holds about 10 MiB of buffers
/// (decompressed chunks in flight, the read and copy buffers), and beyond a few the
/// disk, not the CPU, sets the pace.
const MAX_WORKERS: usize = 8;

/// How many layers are unpacked at once: one per CPU (each with a decompressing thread
/// of its own), never more than there are.
fn workers(layers: usize) -> usize {
    std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .min(MAX_WORKERS)
        .clamp(1, layers.max(1))
}

fn io_err(path: &Path, e: impl std::fmt::Display) -> StoreError {
    StoreError::Io {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

impl Store {
    /// Builds the cache of `layers` (bottom first, with their `diff_ids`) from `blobs`, a
    /// reader of each layer's compressed bytes from the start (called again for a layer
    /// applied a second time), skipping layers already cached, and returns their
    /// directories. A pull calls this while the blobs are still downloading (see
    /// [`super::feed`]).
    pub fn build_layer_cache_from(
        &self,
        layers: &[Descriptor],
        diff_ids: &[String],
        source: BlobSource,
        blobs: impl Fn(usize) -> Result<Box<dyn Read + Send>, StoreError> + Sync,
    ) -> Result<Vec<PathBuf>, StoreError> {
        if layers.len() != diff_ids.len() {
            return Err(StoreError::Corrupt(format!(
                "the image has {} layers but its config lists {} diff_ids",
                layers.len(),
                diff_ids.len()
            )));
        }
        let stack = Stack {
            layers,
            diff_ids,
            dirs: chain_ids(diff_ids)
                .iter()
                .map(|c| self.layer_dir(c))
                .collect(),
            source,
            blobs,
        };
        let todo: Vec<usize> = (0..stack.dirs.len())
            .filter(|&i| !stack.dirs[i].exists())
            .collect();
        if todo.is_empty() {
            return Ok(stack.dirs);
        }
        let next = AtomicUsize::new(0);
        let stop = AtomicBool::new(false);
        let (tx, rx) = mpsc::channel::<(usize, Result<Unpacked, StoreError>)>();
        std::thread::scope(|scope| {
            for _ in 0..workers(todo.len()) {
                let tx = tx.clone();
                let (next, stop, todo, stack) = (&next, &stop, &todo, &stack);
                scope.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let Some(&i) = todo.get(next.fetch_add(1, Ordering::Relaxed)) else {
                            break;
                        };
                        let unpacked = self.unpack_alone(stack, i);
                        if tx.send((i, unpacked)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            // In order from the bottom: each layer is completed on its final parents.
            let mut arrived: HashMap<usize, Result<Unpacked, StoreError>> = HashMap::new();
            let placed = todo.iter().try_for_each(|&i| {
                let unpacked = loop {
                    if let Some(u) = arrived.remove(&i) {
                        break u;
                    }
                    match rx.recv() {
                        Ok((j, u)) => {
                            arrived.insert(j, u);
                        }
                        Err(_) => {
                            break Err(StoreError::Corrupt(
                                "a layer's unpacking thread ended without a result".into(),
                            ))
                        }
                    }
                };
                self.place_layer(&stack, i, unpacked)
            });
            if placed.is_err() {
                stop.store(true, Ordering::Relaxed);
            }
            placed
        })?;
        Ok(stack.dirs)
    }

    /// Unpacks layer `i` into a new temp directory, checked against its digest and
    /// diff_id: as an overlay layer of its own, or as a whole tree for the first layer.
    fn unpack_alone<B>(&self, stack: &Stack<'_, B>, i: usize) -> Result<Unpacked, StoreError>
    where
        B: Fn(usize) -> Result<Box<dyn Read + Send>, StoreError> + Sync,
    {
        let into = if i == 0 {
            ApplyInto::Root
        } else {
            ApplyInto::OverlayLayer
        };
        let (desc, diff_id) = (&stack.layers[i], &stack.diff_ids[i]);
        let tmp = self.layer_temp_dir()?;
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).map_err(|e| io_err(&upper, e))?;
        let blob = (stack.blobs)(i)?;
        let stats = apply_compressed(blob, stack.source, desc, diff_id, &upper, into)?;
        self.record_layer_info(desc.digest().as_ref(), diff_id, stats.size);
        Ok(Unpacked {
            tmp,
            lower: stats.lower,
        })
    }

    /// Puts layer `i`, unpacked on its own, into the cache at `dirs[i]` once completed
    /// against its parents `dirs[..i]`; a layer that could not be unpacked on its own is
    /// applied on its parents' tree instead.
    fn place_layer<B>(
        &self,
        stack: &Stack<'_, B>,
        i: usize,
        unpacked: Result<Unpacked, StoreError>,
    ) -> Result<(), StoreError>
    where
        B: Fn(usize) -> Result<Box<dyn Read + Send>, StoreError> + Sync,
    {
        let (dirs, parents) = (&stack.dirs, &stack.dirs[..i]);
        match unpacked {
            Ok(u) => match self.complete_layer(&u, parents)? {
                Completion::Done => return move_into_cache(&u.upper(), &dirs[i]),
                Completion::NeedsLowerTree(_) => {}
            },
            // Applied as a whole tree already: the error is the layer's.
            Err(e) if parents.is_empty() => return Err(e),
            Err(_) => {}
        }
        let (desc, diff_id) = (&stack.layers[i], &stack.diff_ids[i]);
        self.build_layer(parents, &dirs[i], |root| {
            let blob = (stack.blobs)(i)?;
            let stats = apply_compressed(blob, stack.source, desc, diff_id, root, ApplyInto::Root)?;
            self.record_layer_info(desc.digest().as_ref(), diff_id, stats.size);
            Ok(())
        })
    }

    /// Completes a layer unpacked on its own against the merged tree of `parents`.
    fn complete_layer(&self, u: &Unpacked, parents: &[PathBuf]) -> Result<Completion, StoreError> {
        if u.lower.is_empty()
            || parents.is_empty()
            || crate::test_switches::unsafe_enabled("layer-completion")
        {
            return Ok(Completion::Done);
        }
        let upper = u.upper();
        if let [only] = parents {
            return lower::complete(&upper, only, &u.lower).map_err(|e| io_err(&upper, e));
        }
        // overlayfs mounts two or more lower layers without an upper one, read-only.
        let view = u.tmp.path().join("lower");
        fs::create_dir(&view).map_err(|e| io_err(&view, e))?;
        let lowers: Vec<PathBuf> = parents.iter().rev().cloned().collect();
        if let Err(e) = mount::mount_overlay_readonly(&lowers, &view) {
            return Ok(Completion::NeedsLowerTree(e.to_string()));
        }
        let completed = lower::complete(&upper, &view, &u.lower);
        let unmounted = mount::unmount(&view);
        let completed = completed.map_err(|e| io_err(&upper, e))?;
        unmounted.map_err(|e| StoreError::Corrupt(e.to_string()))?;
        Ok(completed)
    }

    /// A new temp directory for building a layer, in the store's own temp space.
    fn layer_temp_dir(&self) -> Result<TempDir, StoreError> {
        let parent = self.root().join("imgtool/tmp");
        tempfile::Builder::new()
            .prefix("layer-")
            .tempdir_in(&parent)
            .map_err(|e| io_err(&parent, e))
    }

    /// Builds one layer's cache directory in a temp dir, `apply`ing the layer on an
    /// overlay mount of `parents` (the tree as a whole), and renames it into place.
    fn build_layer(
        &self,
        parents: &[PathBuf],
        dest: &Path,
        apply: impl FnOnce(&Path) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let tmp = self.layer_temp_dir()?;
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).map_err(|e| io_err(&upper, e))?;
        if parents.is_empty() {
            apply(&upper)?;
        } else {
            let work = tmp.path().join("work");
            let merged = tmp.path().join("merged");
            fs::create_dir(&work).map_err(|e| io_err(&work, e))?;
            fs::create_dir(&merged).map_err(|e| io_err(&merged, e))?;
            let lowers: Vec<PathBuf> = parents.iter().rev().cloned().collect();
            mount::mount_overlay_unsynced(&lowers, &upper, &work, &merged)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let applied = apply(&merged);
            let unmounted = mount::unmount(&merged);
            applied?;
            unmounted.map_err(|e| StoreError::Corrupt(e.to_string()))?;
        }
        move_into_cache(&upper, dest)
    }
}

/// Renames a built layer into the cache; a process that lost the race to another
/// building the same layer drops its copy (with the temp directory).
fn move_into_cache(upper: &Path, dest: &Path) -> Result<(), StoreError> {
    if let Some(dir) = dest.parent() {
        fs::create_dir_all(dir).map_err(|e| io_err(dest, e))?;
    }
    match fs::rename(upper, dest) {
        Ok(()) => Ok(()),
        Err(_) if dest.exists() => Ok(()),
        Err(e) => Err(io_err(dest, e)),
    }
}
