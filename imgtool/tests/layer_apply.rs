//! Layer application: every entry type and whiteout kind, and hostile archives that must
//! not write outside the root (a sentinel directory beside it must stay untouched).

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use imgtool::layer::{apply_layer, ApplyError, ApplyInto, ApplyOptions};
use tar::{Builder, EntryType, Header};

const OPTS: ApplyOptions = ApplyOptions {
    preserve_owners: true,
    into: ApplyInto::Root,
};

/// For a layer unpacked into a directory of its own, as an overlay layer.
const AS_LAYER: ApplyOptions = ApplyOptions {
    preserve_owners: true,
    into: ApplyInto::OverlayLayer,
};

/// Builds a layer tar from (path, type, data-or-link-target, mode) records.
struct Layer(Builder<Vec<u8>>);

impl Layer {
    fn new() -> Self {
        Self(Builder::new(Vec::new()))
    }
    fn header(kind: EntryType, mode: u32) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_000_000);
        h.set_size(0);
        h
    }
    /// Appends with the path written raw into the header (the tar crate's safe setters
    /// refuse `..` and absolute paths, which hostile layers use).
    fn raw(mut self, mut h: Header, path: &str, data: &[u8]) -> Self {
        let name = &mut h.as_old_mut().name;
        name.fill(0);
        name[..path.len()].copy_from_slice(path.as_bytes());
        h.set_size(data.len() as u64);
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }
    fn file(self, path: &str, data: &str, mode: u32) -> Self {
        self.raw(
            Self::header(EntryType::Regular, mode),
            path,
            data.as_bytes(),
        )
    }
    fn dir(self, path: &str, mode: u32) -> Self {
        self.raw(Self::header(EntryType::Directory, mode), path, b"")
    }
    fn link(self, kind: EntryType, path: &str, target: &str) -> Self {
        let mut h = Self::header(kind, 0o777);
        let ln = &mut h.as_old_mut().linkname;
        ln.fill(0);
        ln[..target.len()].copy_from_slice(target.as_bytes());
        self.raw(h, path, b"")
    }
    fn node(self, kind: EntryType, path: &str, major: u32, minor: u32) -> Self {
        let mut h = Self::header(kind, 0o640);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.raw(h, path, b"")
    }
    fn xattr_file(mut self, path: &str, key: &str, value: &[u8]) -> Self {
        let record = format!("SCHILY.xattr.{key}");
        self.0
            .append_pax_extensions([(record.as_str(), value)])
            .unwrap();
        self.file(path, "with xattr", 0o644)
    }
    fn bytes(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// A root inside a parent with a sentinel directory beside it.
struct Scene {
    parent: tempfile::TempDir,
}

impl Scene {
    fn new() -> Self {
        let parent = tempfile::tempdir().unwrap();
        std::fs::create_dir(parent.path().join("root")).unwrap();
        std::fs::create_dir(parent.path().join("outside")).unwrap();
        std::fs::write(parent.path().join("outside/keep"), "keep").unwrap();
        Self { parent }
    }
    fn root(&self) -> std::path::PathBuf {
        self.parent.path().join("root")
    }
    fn apply(&self, layer: Layer) -> Result<usize, ApplyError> {
        apply_layer(&self.root(), layer.bytes().as_slice(), OPTS).map(|s| s.entries)
    }
    /// The sentinel is exactly as it was and nothing new appeared beside the root.
    fn assert_outside_untouched(&self) {
        let outside = self.parent.path().join("outside");
        let names: Vec<_> = std::fs::read_dir(&outside)
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(names, ["keep"], "something was written outside the root");
        assert_eq!(
            std::fs::read_to_string(outside.join("keep")).unwrap(),
            "keep"
        );
        let beside: Vec<_> = std::fs::read_dir(self.parent.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name())
            .collect();
        assert_eq!(beside.len(), 2, "{beside:?}");
        assert!(!Path::new("/escaped-by-layer-test").exists());
    }
}

#[test]
fn every_entry_type_with_metadata() {
    let s = Scene::new();
    let layer = Layer::new()
        .dir("etc", 0o755)
        .file("etc/conf", "hello", 0o640)
        .file("bin/tool", "#!/bin/sh\n", 0o4755)
        .link(EntryType::Symlink, "etc/link", "conf")
        .link(EntryType::Link, "etc/hard", "etc/conf")
        .node(EntryType::Fifo, "run/fifo", 0, 0)
        .node(EntryType::Char, "dev/null2", 1, 3)
        .dir("ro", 0o555)
        .file("ro/inside", "x", 0o444);
    s.apply(layer).unwrap();
    let r = s.root();
    assert_eq!(
        std::fs::read_to_string(r.join("etc/conf")).unwrap(),
        "hello"
    );
    let meta = std::fs::metadata(r.join("etc/conf")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    assert_eq!(meta.mtime(), 1_000_000);
    assert_eq!(
        std::fs::metadata(r.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o4755
    );
    assert_eq!(
        std::fs::read_link(r.join("etc/link")).unwrap(),
        Path::new("conf")
    );
    assert_eq!(
        std::fs::metadata(r.join("etc/hard")).unwrap().ino(),
        meta.ino()
    );
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(r.join("run/fifo"))
        .unwrap()
        .file_type()
        .is_fifo());
    let dev = std::fs::symlink_metadata(r.join("dev/null2")).unwrap();
    assert!(dev.file_type().is_char_device());
    assert_eq!(dev.rdev(), libc::makedev(1, 3));
    // A read-only directory still received its contents (mode set last).
    assert_eq!(
        std::fs::metadata(r.join("ro"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o555
    );
    assert_eq!(std::fs::read_to_string(r.join("ro/inside")).unwrap(), "x");
}

#[test]
fn whiteouts_opaque_dirs_and_hardlinks_to_lower_layers() {
    let s = Scene::new();
    s.apply(
        Layer::new()
            .file("a/keep", "1", 0o644)
            .file("a/gone", "2", 0o644)
            .file("opq/old1", "3", 0o644)
            .file("opq/sub/old2", "4", 0o644)
            .file("lower/target", "lower", 0o644),
    )
    .unwrap();
    s.apply(
        Layer::new()
            .file("a/.wh.gone", "", 0o644)
            .file("opq/new", "5", 0o644)
            .file("opq/.wh..wh..opq", "", 0o644)
            .link(EntryType::Link, "upper/hard", "lower/target")
            .file("a/.wh.never-existed", "", 0o644),
    )
    .unwrap();
    let r = s.root();
    assert!(r.join("a/keep").exists());
    assert!(!r.join("a/gone").exists());
    assert!(
        !r.join("a/.wh.gone").exists(),
        "whiteout markers are not written"
    );
    let opq: Vec<_> = std::fs::read_dir(r.join("opq"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(opq, ["new"], "opaque dir keeps only this layer's entries");
    assert_eq!(
        std::fs::read_to_string(r.join("upper/hard")).unwrap(),
        "lower"
    );
}

#[test]
fn a_file_replaces_a_directory_and_back() {
    let s = Scene::new();
    s.apply(Layer::new().file("x/y", "1", 0o644)).unwrap();
    s.apply(Layer::new().file("x", "now a file", 0o644))
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(s.root().join("x")).unwrap(),
        "now a file"
    );
    s.apply(Layer::new().dir("x", 0o755).file("x/z", "2", 0o644))
        .unwrap();
    assert!(s.root().join("x/z").is_file());
}

#[test]
fn hostile_layers_never_write_outside_the_root() {
    let cases: Vec<(&str, Layer)> = vec![
        (
            "dot-dot path",
            Layer::new().file("../outside/evil", "x", 0o644),
        ),
        (
            "nested dot-dot",
            Layer::new().file("a/../../outside/evil", "x", 0o644),
        ),
        (
            "absolute path",
            Layer::new().file("/outside-abs-evil", "x", 0o644),
        ),
        (
            "symlinked parent",
            Layer::new()
                .link(EntryType::Symlink, "l", "../outside")
                .file("l/evil", "x", 0o644),
        ),
        ("absolute symlinked parent", {
            Layer::new().link(EntryType::Symlink, "abs", "/").file(
                "abs/escaped-by-layer-test",
                "x",
                0o644,
            )
        }),
        ("symlink chain", {
            Layer::new()
                .link(EntryType::Symlink, "c1", "c2/..")
                .link(EntryType::Symlink, "c2", "../..")
                .file("c1/outside/evil", "x", 0o644)
        }),
        (
            "hardlink out",
            Layer::new().link(EntryType::Link, "h", "../outside/keep"),
        ),
        (
            "hardlink to /etc/passwd",
            Layer::new()
                .link(EntryType::Link, "p", "/etc/passwd")
                .file("p", "overwritten", 0o644),
        ),
        ("whiteout of ..", Layer::new().file("a/.wh...", "", 0o644)),
        (
            "whiteout through a symlink",
            Layer::new()
                .link(EntryType::Symlink, "w", "../outside")
                .file("w/.wh.keep", "", 0o644),
        ),
        (
            "opaque through a symlink",
            Layer::new()
                .link(EntryType::Symlink, "o", "../outside")
                .file("o/.wh..wh..opq", "", 0o644),
        ),
        ("dir replaced by symlink then written", {
            Layer::new()
                .dir("d", 0o755)
                .link(EntryType::Symlink, "d", "../outside")
                .file("d/evil", "x", 0o644)
        }),
        ("symlink to a device path written through", {
            Layer::new()
                .link(EntryType::Symlink, "s", "/outside/keep")
                .file("s", "replaced link only", 0o644)
        }),
    ];
    let passwd = std::fs::read("/etc/passwd").unwrap();
    for (name, layer) in cases {
        let s = Scene::new();
        let result = s.apply(layer);
        s.assert_outside_untouched();
        if let Err(e) = &result {
            // A refusal must say which entry and why.
            assert!(e.to_string().contains("layer entry"), "{name}: {e}");
        }
        assert_eq!(
            std::fs::read("/etc/passwd").unwrap(),
            passwd,
            "{name}: /etc/passwd changed"
        );
    }
}

#[test]
fn a_climbing_path_is_refused_with_its_name() {
    let s = Scene::new();
    let err = s
        .apply(Layer::new().file("../../x", "x", 0o644))
        .unwrap_err();
    assert!(err.to_string().contains("../../x"), "{err}");
    assert!(err.to_string().contains("climbs above the root"), "{err}");
}

#[test]
fn xattrs_from_pax_records() {
    let s = Scene::new();
    s.apply(Layer::new().xattr_file("x", "user.spec", b"value"))
        .unwrap();
    let path = std::ffi::CString::new(s.root().join("x").to_string_lossy().as_bytes()).unwrap();
    let name = c"user.spec";
    let mut buf = [0u8; 32];
    // SAFETY: getxattr writes at most buf.len() bytes into buf.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    assert_eq!(n, 5, "{}", std::io::Error::last_os_error());
    assert_eq!(&buf[..5], b"value");
}

#[test]
fn a_whiteout_below_a_file_is_a_no_op_and_errors_say_why() {
    let s = Scene::new();
    // "f" is a file: nothing can be below it, so hiding "f/x" or everything in "f/" hides
    // nothing, as for a missing path.
    let layer = Layer::new()
        .file("f", "file", 0o644)
        .file("f/.wh.x", "", 0o644)
        .file("f/.wh..wh..opq", "", 0o644);
    s.apply(layer).unwrap();
    assert_eq!(std::fs::read_to_string(s.root().join("f")).unwrap(), "file");
    // A hardlink to nothing fails naming the entry, the step and the cause.
    let err = s
        .apply(Layer::new().link(EntryType::Link, "h", "missing"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"h\""), "{err}");
    assert!(err.contains("not in the image"), "{err}");
    s.assert_outside_untouched();
}

/// `lib -> usr/lib` before `usr/lib` exists, then `lib/x`: docker and umoci create the
/// link's target inside the root and write through it; so do we (absolute and relative
/// targets, and a chain of links). A link that points "above" the root lands inside it.
#[test]
fn a_layer_writing_through_a_symlink_to_a_path_not_made_yet_is_applied() {
    let s = Scene::new();
    let layer = Layer::new()
        .link(EntryType::Symlink, "lib", "usr/lib")
        .file("lib/x", "through a relative link", 0o644)
        .link(EntryType::Symlink, "lib64", "/usr/lib64")
        .file("lib64/y", "through an absolute link", 0o644)
        .link(EntryType::Symlink, "a", "b")
        .link(EntryType::Symlink, "b", "c/d")
        .file("a/z", "through a chain", 0o644)
        .link(EntryType::Symlink, "up", "../../elsewhere")
        .file("up/w", "clamped at the root", 0o644);
    s.apply(layer).unwrap();
    let root = s.root();
    let read = |p: &str| std::fs::read_to_string(root.join(p)).unwrap();
    assert_eq!(read("usr/lib/x"), "through a relative link");
    assert_eq!(read("usr/lib64/y"), "through an absolute link");
    assert_eq!(read("c/d/z"), "through a chain");
    assert_eq!(read("elsewhere/w"), "clamped at the root");
    assert!(std::fs::symlink_metadata(root.join("lib"))
        .unwrap()
        .file_type()
        .is_symlink());
    s.assert_outside_untouched();
}

/// What cannot be applied says which entry and why, in words.
#[test]
fn refusals_say_what_was_refused_and_why() {
    let cases: Vec<(Layer, &str)> = vec![
        (
            Layer::new()
                .link(EntryType::Symlink, "a", "b")
                .link(EntryType::Symlink, "b", "a")
                .file("a/x", "x", 0o644),
            "loop of symlinks",
        ),
        (
            Layer::new()
                .file("f", "x", 0o644)
                .file("f/sub/x", "x", 0o644),
            "its parent f is not a directory",
        ),
        (
            Layer::new().link(EntryType::Link, "p", "/etc/passwd"),
            "hardlink target /etc/passwd is not in the image",
        ),
        (
            Layer::new().file("../../x", "x", 0o644),
            "climbs above the root",
        ),
    ];
    for (layer, why) in cases {
        let s = Scene::new();
        let err = s.apply(layer).unwrap_err().to_string();
        assert!(
            err.contains("layer entry") && err.contains(why),
            "{why}: {err}"
        );
        s.assert_outside_untouched();
    }
    // Bytes that are not a tar are named as such, never quoted.
    let s = Scene::new();
    let garbage = b"not a tar \x01\x02\xff".repeat(64);
    let err = apply_layer(&s.root(), garbage.as_slice(), OPTS)
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid tar archive"), "{err}");
    assert!(
        !err.contains("not a tar \u{1}") && !err.contains('\u{fffd}'),
        "{err}"
    );
}

fn xattr_of(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = std::ffi::CString::new(path.to_string_lossy().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: lgetxattr writes at most buf.len() bytes into buf.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

/// One xattr policy (imgtool::layer::xattrs): overlayfs's own xattrs, SELinux labels and
/// system.* ACLs from a layer never reach the disk (an image cannot mark a directory
/// opaque for overlayfs or redirect it); the file's own xattrs do.
#[test]
fn overlay_and_host_xattrs_from_a_layer_are_not_written() {
    let s = Scene::new();
    let layer = Layer::new()
        .xattr_file("kept", "user.kept", b"yes")
        .xattr_file("opaque", "trusted.overlay.opaque", b"y")
        .xattr_file("redirect", "trusted.overlay.redirect", b"/elsewhere")
        .xattr_file("userovl", "user.overlay.opaque", b"y")
        .xattr_file("label", "security.selinux", b"system_u:object_r:etc_t:s0");
    s.apply(layer).unwrap();
    let root = s.root();
    assert_eq!(
        xattr_of(&root.join("kept"), "user.kept").as_deref(),
        Some(&b"yes"[..])
    );
    for (file, name) in [
        ("opaque", "trusted.overlay.opaque"),
        ("redirect", "trusted.overlay.redirect"),
        ("userovl", "user.overlay.opaque"),
        ("label", "security.selinux"),
    ] {
        assert_eq!(xattr_of(&root.join(file), name), None, "{file}: {name}");
        assert!(root.join(file).is_file(), "{file} itself is applied");
    }
    // Negative control: the same xattr set by hand is visible to this check.
    let probe = root.join("kept");
    let (p, n) = (
        std::ffi::CString::new(probe.to_string_lossy().as_bytes()).unwrap(),
        c"trusted.overlay.opaque",
    );
    // SAFETY: lsetxattr reads 1 byte from a static slice and two C strings.
    let rc = unsafe { libc::lsetxattr(p.as_ptr(), n.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(
        xattr_of(&probe, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..])
    );
}

/// As an overlay layer of its own: whiteouts are 0/0 character devices, an opaque marker
/// and a directory over a non-directory are `trusted.overlay.opaque`, and what the layer
/// made without entries (parents, parents of whiteouts) is reported for completion.
#[test]
fn as_an_overlay_layer_whiteouts_are_devices_and_made_parents_are_reported() {
    let scene = Scene::new();
    let layer = Layer::new()
        .file("usr/share/doc/new.txt", "x", 0o644)
        .file(".wh.gone", "", 0o644)
        .file("etc/.wh.old.conf", "", 0o644)
        .dir("srv", 0o750)
        .file("srv/.wh..wh..opq", "", 0o644)
        .file("f", "a file first", 0o644)
        .dir("f", 0o755);
    let stats = apply_layer(&scene.root(), layer.bytes().as_slice(), AS_LAYER).unwrap();
    let root = scene.root();
    for wh in ["gone", "etc/old.conf"] {
        let m = std::fs::symlink_metadata(root.join(wh)).unwrap();
        assert!(
            std::os::unix::fs::FileTypeExt::is_char_device(&m.file_type()) && m.rdev() == 0,
            "{wh} is an overlay whiteout"
        );
    }
    for dir in ["srv", "f"] {
        assert_eq!(
            xattr_of(&root.join(dir), "trusted.overlay.opaque").as_deref(),
            Some(&b"y"[..]),
            "{dir} is opaque"
        );
    }
    let made: Vec<String> = stats
        .lower
        .made_dirs
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(made, ["usr", "usr/share", "usr/share/doc", "etc"]);
    let for_whiteouts: Vec<String> = stats
        .lower
        .made_for_whiteouts
        .iter()
        .map(|(p, _)| p.display().to_string())
        .collect();
    assert_eq!(for_whiteouts, ["etc"]);
    assert!(stats.lower.opaque.contains_key(Path::new("srv")));
    scene.assert_outside_untouched();
}

/// What a layer cannot do in a directory of its own fails, so that it is applied on the
/// lower layers' tree: a hardlink to a file it does not have, a parent path through a
/// symlink, an opaque root.
#[test]
fn as_an_overlay_layer_what_needs_the_lower_layers_fails() {
    for (what, layer) in [
        (
            "hardlink",
            Layer::new().link(EntryType::Link, "b", "lower-file"),
        ),
        (
            "symlinked parent",
            Layer::new()
                .link(EntryType::Symlink, "lib", "usr/lib")
                .dir("usr/lib", 0o755)
                .file("lib/x", "x", 0o644),
        ),
        ("opaque root", Layer::new().file(".wh..wh..opq", "", 0o644)),
    ] {
        let scene = Scene::new();
        assert!(
            apply_layer(&scene.root(), layer.bytes().as_slice(), AS_LAYER).is_err(),
            "{what}"
        );
        scene.assert_outside_untouched();
    }
}

/// An entry for a directory that is already there gives all of its metadata: the xattrs
/// it does not list are removed (as umoci does, and as a layer unpacked on its own gets).
#[test]
fn a_directory_given_again_loses_the_xattrs_its_entry_does_not_list() {
    let scene = Scene::new();
    let mut first = Layer::new();
    first
        .0
        .append_pax_extensions([("SCHILY.xattr.user.old", &b"1"[..])])
        .unwrap();
    scene.apply(first.dir("d", 0o755)).unwrap();
    assert!(xattr_of(&scene.root().join("d"), "user.old").is_some());
    scene.apply(Layer::new().dir("d", 0o700)).unwrap();
    assert_eq!(xattr_of(&scene.root().join("d"), "user.old"), None);
}

/// An opaque marker hides the lower layers' entries inside the directories this layer
/// gave again too, not only its direct children (containerd's reading).
#[test]
fn an_opaque_marker_hides_lower_entries_below_directories_the_layer_gave() {
    let scene = Scene::new();
    scene
        .apply(
            Layer::new()
                .dir("c", 0o755)
                .dir("c/a", 0o755)
                .file("c/a/old", "x", 0o644),
        )
        .unwrap();
    scene
        .apply(
            Layer::new()
                .dir("c/a", 0o755)
                .file("c/a/new", "y", 0o644)
                .file("c/.wh..wh..opq", "", 0o644),
        )
        .unwrap();
    assert!(!scene.root().join("c/a/old").exists());
    assert!(scene.root().join("c/a/new").exists());
}

/// A directory's mode is set on the directory its entry made, never on another one its
/// path leads to after a later entry replaced a parent with a symlink.
#[test]
fn a_directory_mode_never_lands_through_a_later_symlink() {
    let scene = Scene::new();
    scene
        .apply(
            Layer::new()
                .dir("c/a", 0o750)
                .link(EntryType::Symlink, "c", "a")
                .dir("a/a", 0o700),
        )
        .unwrap();
    let mode = std::fs::metadata(scene.root().join("a/a"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o700);
}
