//! Differential property test of the layer cache's side-by-side unpacking
//! (imgtool/src/store/layer_build.rs): random stacks of layers whose entries depend on
//! each other across layers (shared paths, parents only lower layers have, symlinks in
//! parent paths, hardlinks to lower files, whiteouts and opaque markers, directories
//! over files and files over directories) are built into the cache by
//! `Store::build_layer_cache_from`, and the overlay of the cached layers must be the
//! tree that applying the same layers one after another to one directory gives: every
//! path's type, mode, owner, content or link target and user xattrs. Stacks the
//! reference refuses are counted and skipped. Must run as root (overlay mounts).
//!
//! `PROPTEST_CASES=N` runs more cases than `cargo test`'s default.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use imgtool::layer::{apply_layer, ApplyInto, ApplyOptions};
use imgtool::store::layers::BlobSource;
use imgtool::store::Store;
use oci_spec::image::{Descriptor, DescriptorBuilder, Digest, MediaType};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};
use sha2::{Digest as _, Sha256};

const DEFAULT_CASES: u32 = 300;

#[derive(Debug, Clone)]
enum Kind {
    File(u8),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
    Whiteout,
    Opaque,
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    kind: Kind,
    mode: u32,
    uid: u64,
    xattr: Option<u8>,
}

fn path() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(vec!["a", "b", "c"]), 1..4).prop_map(|c| c.join("/"))
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        4 => any::<u8>().prop_map(Kind::File),
        6 => Just(Kind::Dir),
        2 => prop::sample::select(vec!["a", "b/c", "../a", "/a/b", "/c", "x"])
            .prop_map(|t| Kind::Symlink(t.to_string())),
        2 => path().prop_map(Kind::Hardlink),
        1 => Just(Kind::Fifo),
        3 => Just(Kind::Whiteout),
        2 => Just(Kind::Opaque),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        path(),
        kind(),
        prop::sample::select(vec![0o755u32, 0o750, 0o700, 0o644, 0o4755]),
        prop::sample::select(vec![0u64, 1000]),
        prop::option::weighted(0.2, any::<u8>()),
    )
        .prop_map(|(path, kind, mode, uid, xattr)| Entry {
            // user.* xattrs exist on files and directories only.
            xattr: xattr.filter(|_| matches!(kind, Kind::File(_) | Kind::Dir)),
            path,
            kind,
            mode,
            uid,
        })
}

/// A layer's entries; most hardlinks name a path an entry of this or an earlier layer
/// made (a random path rarely exists).
fn layers() -> impl Strategy<Value = Vec<Vec<Entry>>> {
    prop::collection::vec(prop::collection::vec(entry(), 0..10), 2..5).prop_map(|mut layers| {
        let mut seen: Vec<String> = Vec::new();
        for layer in &mut layers {
            for (i, e) in layer.iter_mut().enumerate() {
                if let (Kind::Hardlink(_), false) = (&e.kind, seen.is_empty() || i % 4 == 3) {
                    e.kind = Kind::Hardlink(seen[(i * 7 + 3) % seen.len()].clone());
                }
                if matches!(e.kind, Kind::File(_)) {
                    seen.push(e.path.clone());
                }
            }
        }
        layers
    })
}

/// The tar of one layer.
fn tar_of(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (dir, name) = e.path.rsplit_once('/').unwrap_or(("", e.path.as_str()));
        let in_dir = |n: &str| {
            if dir.is_empty() {
                n.to_string()
            } else {
                format!("{dir}/{n}")
            }
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(e.mode);
        h.set_uid(e.uid);
        h.set_gid(e.uid);
        h.set_mtime(1_700_000_000);
        h.set_size(0);
        if let Some(v) = e.xattr {
            b.append_pax_extensions([("SCHILY.xattr.user.x", &[v][..])])
                .expect("pax");
        }
        let appended = match &e.kind {
            Kind::File(c) => {
                let data = vec![*c; usize::from(*c % 5)];
                h.set_entry_type(tar::EntryType::Regular);
                h.set_size(data.len() as u64);
                b.append_data(&mut h, &e.path, data.as_slice())
            }
            Kind::Dir => {
                h.set_entry_type(tar::EntryType::Directory);
                b.append_data(&mut h, &e.path, &[][..])
            }
            Kind::Symlink(t) => {
                h.set_entry_type(tar::EntryType::Symlink);
                b.append_link(&mut h, &e.path, t)
            }
            Kind::Hardlink(t) => {
                h.set_entry_type(tar::EntryType::Link);
                b.append_link(&mut h, &e.path, t)
            }
            Kind::Fifo => {
                h.set_entry_type(tar::EntryType::Fifo);
                b.append_data(&mut h, &e.path, &[][..])
            }
            Kind::Whiteout => {
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, in_dir(&format!(".wh.{name}")), &[][..])
            }
            Kind::Opaque => {
                h.set_entry_type(tar::EntryType::Regular);
                b.append_data(&mut h, in_dir(".wh..wh..opq"), &[][..])
            }
        };
        appended.expect("append");
    }
    b.into_inner().expect("tar")
}

/// What a user of the tree sees at each path (directory mtimes left out: a parent made
/// for a child has the time it was made).
fn listing(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        names.sort();
        for n in names {
            let p = dir.join(&n);
            let rel = p.strip_prefix(root).expect("inside").display().to_string();
            let m = std::fs::symlink_metadata(&p)
                .unwrap_or_else(|e| panic!("lstat {rel}: {e} (listed, not there)"));
            let ft = m.file_type();
            let what = if ft.is_dir() {
                "dir".to_string()
            } else if ft.is_symlink() {
                format!(
                    "symlink {}",
                    std::fs::read_link(&p).expect("readlink").display()
                )
            } else if ft.is_file() {
                format!(
                    "file {:?} mtime {}",
                    std::fs::read(&p).expect("read"),
                    m.mtime()
                )
            } else {
                format!("other {:o} rdev {}", m.mode() & 0o170000, m.rdev())
            };
            let xattrs = if ft.is_symlink() {
                Vec::new()
            } else {
                imgtool::layer::xattrs::read_portable(&p)
            };
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} owner {}:{} xattrs {xattrs:?}",
                    m.mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
            if ft.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn descriptor(bytes: &[u8]) -> (Descriptor, String) {
    let hex = hex::encode(Sha256::digest(bytes));
    let desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageLayer)
        .digest(Digest::from_str(&format!("sha256:{hex}")).expect("digest"))
        .size(bytes.len() as u64)
        .build()
        .expect("descriptor");
    (desc, format!("sha256:{hex}"))
}

/// An overlay (or the one directory) of `dirs`, bottom first, mounted read-only at
/// `view` until dropped.
struct View(PathBuf);

impl View {
    fn mount(dirs: &[PathBuf], view: &Path) -> Self {
        std::fs::create_dir(view).expect("view dir");
        let lowers: Vec<String> = dirs.iter().rev().map(|d| d.display().to_string()).collect();
        let target = if let [only] = dirs {
            nix::mount::mount(
                Some(only.as_path()),
                view,
                None::<&str>,
                nix::mount::MsFlags::MS_BIND,
                None::<&str>,
            )
        } else {
            nix::mount::mount(
                Some("overlay"),
                view,
                Some("overlay"),
                nix::mount::MsFlags::MS_RDONLY,
                Some(format!("lowerdir={}", lowers.join(":")).as_str()),
            )
        };
        target.expect("mount the cached layers");
        Self(view.to_path_buf())
    }
}

impl Drop for View {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.0, nix::mount::MntFlags::MNT_DETACH);
    }
}

static COMPARED: AtomicU64 = AtomicU64::new(0);
static REFUSED: AtomicU64 = AtomicU64::new(0);

#[test]
fn side_by_side_layers_give_the_tree_of_one_after_another() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "layer_side_by_side needs root (overlay mounts, owners, whiteout devices)"
    );
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    });
    let result = runner.run(&layers(), |layers| {
        let work = tempfile::tempdir().expect("tempdir");
        let tars: Vec<Vec<u8>> = layers.iter().map(|l| tar_of(l)).collect();
        // The reference: one directory, layer after layer.
        let reference = work.path().join("reference");
        std::fs::create_dir(&reference).expect("reference");
        let opts = ApplyOptions {
            preserve_owners: true,
            into: ApplyInto::Root,
        };
        if let Some(e) = tars
            .iter()
            .find_map(|t| apply_layer(&reference, t.as_slice(), opts).err())
        {
            if std::env::var_os("FUZZ_SHOW_ERRORS").is_some() {
                eprintln!("REFUSED {e}");
            }
            REFUSED.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let store = Store::open(&work.path().join("store")).expect("store");
        let (descs, diff_ids): (Vec<Descriptor>, Vec<String>) =
            tars.iter().map(|t| descriptor(t)).unzip();
        let dirs = store
            .build_layer_cache_from(&descs, &diff_ids, BlobSource::Store, |i| {
                Ok(Box::new(std::io::Cursor::new(tars[i].clone())) as Box<dyn Read + Send>)
            })
            .map_err(|e| {
                TestCaseError::fail(format!("the cache refused what one tree took: {e}"))
            })?;
        let view = View::mount(&dirs, &work.path().join("view"));
        let (want, got) = (listing(&reference), listing(&view.0));
        drop(view);
        COMPARED.fetch_add(1, Ordering::Relaxed);
        let differ: Vec<String> = want
            .keys()
            .chain(got.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|p| want.get(*p) != got.get(*p))
            .map(|p| {
                format!(
                    "/{p}: one tree {:?}, the cache {:?}",
                    want.get(p),
                    got.get(p)
                )
            })
            .collect();
        prop_assert!(differ.is_empty(), "{}", differ.join("; "));
        Ok(())
    });
    eprintln!(
        "layer side by side: {cases} cases, {} compared, {} refused by the reference",
        COMPARED.load(Ordering::Relaxed),
        REFUSED.load(Ordering::Relaxed)
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
