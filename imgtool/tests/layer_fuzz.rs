//! Property-based fuzzing of layer application: random tar streams (every entry type,
//! hostile names and link targets, whiteouts, opaque markers, long GNU names, pax xattrs,
//! random modes, and raw byte mutations of valid archives) are applied, one to three
//! layers in a row, into a temp root that sits beside a sentinel directory. Errors are
//! fine; a panic, or any change outside the root, is a finding.
//!
//! `cargo test` runs a bounded number of cases (a few seconds). `hack/fuzz-layers.sh`
//! runs many more with `PROPTEST_CASES=N` and prints the statistics this test reports;
//! `FUZZ_SHOW_ERRORS=1` prints why each refused layer was refused.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use imgtool::layer::{apply_layer, ApplyInto, ApplyOptions};
use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence, TestRunner};

/// Cases `cargo test` runs when PROPTEST_CASES is not set.
const DEFAULT_CASES: u32 = 600;

/// One generated archive member.
#[derive(Debug, Clone)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(String),
    Hardlink(String),
    Fifo,
    CharDev,
    BlockDev,
    /// A `.wh.NAME` entry (the name is part of `path`).
    Whiteout,
    /// A `.wh..wh..opq` marker in `path`'s directory.
    Opaque,
    /// An entry type the applier does not know (e.g. 'x' pax, 'g', 'V', random).
    Odd(u8),
}

#[derive(Debug, Clone)]
struct Entry {
    path: String,
    kind: Kind,
    mode: u32,
    uid: u64,
    gid: u64,
    xattr: Option<(String, Vec<u8>)>,
}

/// A layer, and how to damage its bytes afterwards.
#[derive(Debug, Clone)]
struct Layer {
    entries: Vec<Entry>,
    /// (offset modulo the length, xor mask) pairs.
    flips: Vec<(usize, u8)>,
    /// Cut the archive to this fraction (per mille) of its length.
    truncate: Option<u16>,
    /// Leave out the two zero end blocks.
    no_end_marker: bool,
}

fn component() -> impl Strategy<Value = String> {
    prop_oneof![
        16 => prop::sample::select(vec!["a", "b", "c", "d", "etc", "bin", "outside", "keep", "root"])
            .prop_map(String::from),
        1 => Just("..".to_string()),
        1 => Just(".".to_string()),
        1 => Just(String::new()),
        1 => prop::sample::select(vec![".wh.a", ".wh.b", ".wh..", ".wh...", ".wh.", ".wh..wh..opq", ".wh.outside"])
            .prop_map(String::from),
        1 => (1usize..=255).prop_map(|n| "L".repeat(n)),
        1 => "[a-z\\x{e9}\\n \\\\*]{1,8}",
    ]
}

fn rel_path() -> impl Strategy<Value = String> {
    prop::collection::vec(component(), 1..5).prop_map(|c| c.join("/"))
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        12 => rel_path(),
        3 => rel_path().prop_map(|p| format!("/{p}")),
        1 => rel_path().prop_map(|p| format!("./{p}")),
        1 => rel_path().prop_map(|p| format!("{p}/")),
        1 => (1usize..6).prop_map(|n| "../".repeat(n) + "outside/keep"),
    ]
}

fn link_target() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => path(),
        1 => prop::sample::select(vec![
            "/", "/etc/passwd", "/etc", "..", "../..", "../outside", "../outside/keep",
            "../../../../../../etc/passwd", "/proc/self/root", "/proc/self/fd/0", "", ".",
        ]).prop_map(String::from),
    ]
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        5 => prop::collection::vec(any::<u8>(), 0..64).prop_map(Kind::File),
        1 => (0usize..3).prop_map(|n| Kind::File(vec![b'z'; n * 5000 + 1])),
        4 => Just(Kind::Dir),
        4 => link_target().prop_map(Kind::Symlink),
        3 => link_target().prop_map(Kind::Hardlink),
        1 => Just(Kind::Fifo),
        1 => Just(Kind::CharDev),
        1 => Just(Kind::BlockDev),
        2 => Just(Kind::Whiteout),
        2 => Just(Kind::Opaque),
        1 => any::<u8>().prop_map(Kind::Odd),
    ]
}

fn entry() -> impl Strategy<Value = Entry> {
    (
        path(),
        kind(),
        prop_oneof![3 => Just(0o755u32), 3 => Just(0o644u32), 4 => 0u32..0o10000, 1 => any::<u32>()],
        prop_oneof![4 => Just(0u64), 1 => 0u64..70000],
        prop_oneof![4 => Just(0u64), 1 => 0u64..70000],
        prop::option::weighted(
            0.1,
            (
                prop::sample::select(vec![
                    "user.x",
                    "trusted.overlay.opaque",
                    "security.capability",
                    "bogus",
                    "",
                ]),
                prop::collection::vec(any::<u8>(), 0..8),
            )
                .prop_map(|(k, v)| (k.to_string(), v)),
        ),
    )
        .prop_map(|(path, kind, mode, uid, gid, xattr)| {
            let path = match &kind {
                Kind::Whiteout => match path.rsplit_once('/') {
                    Some((dir, name)) => format!("{dir}/.wh.{name}"),
                    None => format!(".wh.{path}"),
                },
                Kind::Opaque => match path.rsplit_once('/') {
                    Some((dir, _)) => format!("{dir}/.wh..wh..opq"),
                    None => ".wh..wh..opq".to_string(),
                },
                _ => path,
            };
            Entry {
                path,
                kind,
                mode,
                uid,
                gid,
                xattr,
            }
        })
}

fn layer() -> impl Strategy<Value = Layer> {
    (
        prop::collection::vec(entry(), 0..14),
        prop_oneof![
            3 => Just(Vec::new()),
            1 => prop::collection::vec((any::<usize>(), 1u8..=255), 1..6),
        ],
        prop::option::weighted(0.1, 0u16..1000),
        prop::bool::weighted(0.1),
        any::<bool>(),
    )
        .prop_map(|(mut entries, flips, truncate, no_end_marker, tame)| {
            if tame {
                // Half the layers keep hostile link targets but no entry name the applier
                // refuses outright, so that whole layers get applied and later entries
                // meet the symlinks earlier ones planted.
                for e in &mut entries {
                    e.path = tame_path(&e.path);
                }
                // Hardlinks mostly to what an earlier entry made (a random path rarely
                // exists), which may by then be a symlink or a directory.
                for i in 1..entries.len() {
                    if let Kind::Hardlink(_) = entries[i].kind {
                        if i % 4 != 0 {
                            let earlier = entries[(i * 7 + 3) % i].path.clone();
                            entries[i].kind = Kind::Hardlink(earlier);
                        }
                    }
                }
            }
            Layer {
                entries,
                flips: if tame { Vec::new() } else { flips },
                truncate: if tame { None } else { truncate },
                no_end_marker,
            }
        })
}

/// The path with `..` components and whiteouts of `.`/`..`/nothing renamed.
fn tame_path(path: &str) -> String {
    path.split('/')
        .map(|c| match c {
            ".." => "up",
            ".wh." | ".wh.." | ".wh..." => ".wh.x",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Writes `value` as NUL-padded octal into a header field.
fn octal(field: &mut [u8], value: u64) {
    let digits = field.len() - 1;
    let s = format!("{:0width$o}", value, width = digits);
    let s = &s.as_bytes()[s.len().saturating_sub(digits)..];
    field.fill(0);
    field[..s.len()].copy_from_slice(s);
}

/// A 512-byte ustar/GNU header with raw (unchecked) name and link name.
fn header(
    name: &[u8],
    link: &[u8],
    typeflag: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
) -> [u8; 512] {
    let mut h = [0u8; 512];
    let n = name.len().min(100);
    h[..n].copy_from_slice(&name[..n]);
    octal(&mut h[100..108], u64::from(mode & 0o7_777_777));
    octal(&mut h[108..116], uid);
    octal(&mut h[116..124], gid);
    octal(&mut h[124..136], size);
    octal(&mut h[136..148], 1_000_000);
    h[156] = typeflag;
    let l = link.len().min(100);
    h[157..157 + l].copy_from_slice(&link[..l]);
    h[257..263].copy_from_slice(b"ustar ");
    h[263..265].copy_from_slice(b" \0");
    if typeflag == b'3' || typeflag == b'4' {
        let (major, minor) = if typeflag == b'3' { (1, 3) } else { (7, 250) };
        octal(&mut h[329..337], major);
        octal(&mut h[337..345], minor);
    }
    h[148..156].fill(b' ');
    let sum: u64 = h.iter().map(|&b| u64::from(b)).sum();
    octal(&mut h[148..155], sum);
    h[155] = b' ';
    h
}

fn push_data(out: &mut Vec<u8>, data: &[u8]) {
    out.extend_from_slice(data);
    let pad = (512 - data.len() % 512) % 512;
    out.extend(std::iter::repeat_n(0u8, pad));
}

/// A GNU long name ('L') or long link ('K') record, when the value needs one.
fn long_record(out: &mut Vec<u8>, typeflag: u8, value: &[u8]) {
    if value.len() <= 100 {
        return;
    }
    let mut data = value.to_vec();
    data.push(0);
    out.extend_from_slice(&header(
        b"././@LongLink",
        b"",
        typeflag,
        0o644,
        0,
        0,
        data.len() as u64,
    ));
    push_data(out, &data);
}

fn pax_record(key: &str, value: &[u8]) -> Vec<u8> {
    // "LEN KEY=VALUE\n" where LEN counts itself.
    let body_len = 1 + key.len() + 1 + value.len() + 1;
    let mut len = body_len + 1;
    while len.to_string().len() + body_len != len {
        len = len.to_string().len() + body_len;
    }
    let mut r = format!("{len} {key}=").into_bytes();
    r.extend_from_slice(value);
    r.push(b'\n');
    r
}

impl Layer {
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for e in &self.entries {
            let (typeflag, link, data): (u8, &[u8], &[u8]) = match &e.kind {
                Kind::File(d) => (b'0', b"", d),
                Kind::Dir => (b'5', b"", b""),
                Kind::Symlink(t) => (b'2', t.as_bytes(), b""),
                Kind::Hardlink(t) => (b'1', t.as_bytes(), b""),
                Kind::Fifo => (b'6', b"", b""),
                Kind::CharDev => (b'3', b"", b""),
                Kind::BlockDev => (b'4', b"", b""),
                Kind::Whiteout | Kind::Opaque => (b'0', b"", b""),
                Kind::Odd(t) => (*t, b"", b""),
            };
            if let Some((k, v)) = &e.xattr {
                let rec = pax_record(&format!("SCHILY.xattr.{k}"), v);
                out.extend_from_slice(&header(b"pax", b"", b'x', 0o644, 0, 0, rec.len() as u64));
                push_data(&mut out, &rec);
            }
            long_record(&mut out, b'L', e.path.as_bytes());
            long_record(&mut out, b'K', link);
            out.extend_from_slice(&header(
                e.path.as_bytes(),
                link,
                typeflag,
                e.mode,
                e.uid,
                e.gid,
                data.len() as u64,
            ));
            push_data(&mut out, data);
        }
        if !self.no_end_marker {
            out.extend(std::iter::repeat_n(0u8, 1024));
        }
        if !out.is_empty() {
            for (at, mask) in &self.flips {
                let i = at % out.len();
                out[i] ^= mask;
            }
        }
        if let Some(t) = self.truncate {
            out.truncate(out.len() * usize::from(t) / 1000);
        }
        out
    }
}

/// A recursive listing (path → type, mode, size, mtime, content hash) of a tree.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, Vec<u8>)> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("list sentinel").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("stat sentinel");
            let content = if m.is_file() {
                std::fs::read(&p).expect("read sentinel")
            } else {
                Vec::new()
            };
            if m.is_dir() {
                todo.push(p.clone());
            }
            out.insert(p, (m.mode(), m.size(), m.mtime(), content));
        }
    }
    out
}

/// A temp parent holding the root and a sentinel directory beside it.
struct Scene {
    parent: tempfile::TempDir,
    before: BTreeMap<PathBuf, (u32, u64, i64, Vec<u8>)>,
}

impl Scene {
    fn new() -> Self {
        let parent = tempfile::Builder::new()
            .prefix("layer-fuzz-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(parent.path().join("root")).expect("root");
        let outside = parent.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).expect("sentinel");
        std::fs::write(outside.join("keep"), "keep").expect("sentinel file");
        std::fs::write(outside.join("dir/inner"), "inner").expect("sentinel file");
        std::os::unix::fs::symlink("../outside/keep", outside.join("link")).expect("symlink");
        let before = Self::outside_snapshot(parent.path());
        Self { parent, before }
    }

    fn outside_snapshot(parent: &Path) -> BTreeMap<PathBuf, (u32, u64, i64, Vec<u8>)> {
        let mut s = snapshot(&parent.join("outside"));
        // The parent's own listing: only root and outside may be there.
        for e in std::fs::read_dir(parent).expect("list parent").flatten() {
            let meta = if e.file_name() == "root" {
                (0, 0, 0, Vec::new())
            } else {
                let m = std::fs::symlink_metadata(e.path()).expect("stat");
                (m.mode(), m.size(), m.mtime(), Vec::new())
            };
            s.insert(e.path(), meta);
        }
        s
    }

    fn root(&self) -> PathBuf {
        self.parent.path().join("root")
    }

    /// Gives the root back to the owner and makes every directory writable so the
    /// temp dir can be removed (a layer may leave 0000 directories behind).
    fn loosen(&self) {
        let mut todo = vec![self.root()];
        while let Some(d) = todo.pop() {
            let _ =
                std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(&d) {
                for e in rd.flatten() {
                    if e.file_type().is_ok_and(|t| t.is_dir()) {
                        todo.push(e.path());
                    }
                }
            }
        }
    }
}

impl Drop for Scene {
    fn drop(&mut self) {
        self.loosen();
    }
}

/// Facts about the host outside any temp dir that a layer must never change.
fn host_state() -> (Vec<u8>, i64, Vec<std::ffi::OsString>) {
    let passwd = std::fs::read("/etc/passwd").expect("read /etc/passwd");
    let mtime = std::fs::metadata("/etc/passwd").expect("stat").mtime();
    let mut top: Vec<_> = std::fs::read_dir("/")
        .expect("list /")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    top.sort();
    (passwd, mtime, top)
}

static APPLIED_OK: AtomicU64 = AtomicU64::new(0);
static APPLIED_ERR: AtomicU64 = AtomicU64::new(0);
static ENTRIES: AtomicU64 = AtomicU64::new(0);

#[test]
fn random_layers_never_panic_nor_write_outside_the_root() {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource("regressions"))),
        ..Config::default()
    });
    let host_before = host_state();
    let result = runner.run(
        &(
            prop::collection::vec(layer(), 1..4),
            any::<bool>(),
            any::<bool>(),
        ),
        |(layers, owners, as_layer)| {
            // Into a whole tree, or into an overlay layer's directory (whiteouts as
            // device nodes, opaque marks, no symlink followed in a parent path).
            let opts = ApplyOptions {
                preserve_owners: owners,
                into: if as_layer {
                    ApplyInto::OverlayLayer
                } else {
                    ApplyInto::Root
                },
            };
            let scene = Scene::new();
            for l in &layers {
                ENTRIES.fetch_add(l.entries.len() as u64, Ordering::Relaxed);
                let bytes = l.bytes();
                match apply_layer(&scene.root(), bytes.as_slice(), opts) {
                    Ok(_) => APPLIED_OK.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        if std::env::var("FUZZ_SHOW_ERRORS").is_ok() {
                            eprintln!("ERR {e}");
                        }
                        APPLIED_ERR.fetch_add(1, Ordering::Relaxed)
                    }
                };
                let after = Scene::outside_snapshot(scene.parent.path());
                prop_assert_eq!(&scene.before, &after, "something changed outside the root");
            }
            prop_assert!(host_state() == host_before, "/etc/passwd or / changed");
            Ok(())
        },
    );
    eprintln!(
        "layer fuzz: {cases} cases, {} layers applied ({} ok, {} refused with an error), {} entries generated",
        APPLIED_OK.load(Ordering::Relaxed) + APPLIED_ERR.load(Ordering::Relaxed),
        APPLIED_OK.load(Ordering::Relaxed),
        APPLIED_ERR.load(Ordering::Relaxed),
        ENTRIES.load(Ordering::Relaxed),
    );
    if let Err(e) = result {
        panic!("{e}");
    }
}
