//! `imgtool bundle` and the store commands, driven as a user would: images made offline
//! are copied into a private store with skopeo (an OCI layout is what our store is), then
//! bundled and run with the runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

use spec_tests::bins;
use spec_tests::container::{capture, Outcome, Runtime};
use spec_tests::images::{self, Image};
use spec_tests::imgtool_store::{inspected, put_image};
use tempfile::TempDir;

/// A private store with guards: every bundle made through it is unbundled on drop.
struct Store {
    dir: TempDir,
    bundles: std::cell::RefCell<Vec<PathBuf>>,
}

impl Store {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("spec-store-")
                .tempdir()
                .unwrap(),
            bundles: Default::default(),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn imgtool(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(bins::imgtool());
        cmd.arg("--store").arg(self.path()).args(args);
        capture(cmd)
    }

    /// Puts `image` into the store under `name` (through an OCI layout and skopeo).
    fn add(&self, image: &Image, name: &str) -> String {
        put_image(self.path(), image, name)
    }

    fn bundle(&self, image: &str, dir: &Path, extra: &[&str]) -> Outcome {
        self.bundles.borrow_mut().push(dir.to_path_buf());
        // Not about networks: no bridge network on the host (imgtool_network.rs is).
        let mut args = vec!["bundle", image, dir.to_str().unwrap(), "--network", "none"];
        args.extend_from_slice(extra);
        self.imgtool(&args)
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        for b in self.bundles.borrow().iter() {
            let _ = Command::new(bins::imgtool())
                .arg("unbundle")
                .arg(b)
                .output();
            spec_tests::host::unmount_under(b);
        }
        spec_tests::host::unmount_under(self.dir.path());
    }
}

fn mounts_under(dir: &Path) -> usize {
    let d = dir.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mounts")
        .unwrap()
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(1)
                .is_some_and(|m| m.starts_with(&d))
        })
        .count()
}

#[test]
fn bundle_runs_busybox_with_the_image_config() {
    let store = Store::new();
    let mut img = Image::busybox();
    img.config = serde_json::json!({
        "Entrypoint": ["sh", "-c"],
        "Cmd": ["echo \"$(id -u):$(id -g) $(pwd) $GREETING $HOME\""],
        "Env": ["GREETING=hi", "PATH=/bin"],
        "User": "user",
        "WorkingDir": "/home/user",
    });
    store.add(&img, "localhost/greeter:1");
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("b");
    store.bundle("localhost/greeter:1", &b, &[]).ok();
    let rt = Runtime::new();
    let g = rt.guard("bundle");
    let id = g.id().to_string();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.stdout.trim(), "1000:1000 /home/user hi /home/user");
}

/// Our overlay bundle, our copied bundle and umoci's unpack of the same multi-layer
/// image (whiteouts, opaque dirs, hardlinks across layers, symlinks, a fifo, an xattr,
/// owners and set-id modes) are the same tree.
#[test]
fn overlay_and_copy_match_umoci_unpack() {
    let store = Store::new();
    let image = images::multi_layer();
    store.add(&image, "localhost/multi:1");
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    image.write_layout(&layout, "multi");
    let theirs = spec_tests::tree::umoci_unpack(
        &format!("{}:multi", layout.display()),
        &work.path().join("umoci"),
    );
    // The comparison covers every xattr namespace: the image's file capability is there
    // to be compared (and would be a difference if either side lost it).
    assert!(
        theirs["data/cap-net-raw"]
            .xattrs
            .iter()
            .any(|(name, _)| name == "security.capability"),
        "umoci's tree has the file capability: {:?}",
        theirs["data/cap-net-raw"]
    );

    let overlay = work.path().join("overlay");
    store.bundle("localhost/multi:1", &overlay, &[]).ok();
    assert_eq!(
        mounts_under(&overlay),
        1,
        "the overlay bundle's rootfs is a mount"
    );
    let marker: serde_json::Value =
        serde_json::from_slice(&std::fs::read(overlay.join("imgtool.json")).unwrap()).unwrap();
    assert_eq!(marker["mode"], "overlay");
    spec_tests::tree::assert_same(
        &spec_tests::tree::listing(&overlay.join("rootfs")),
        &theirs,
        "overlay vs umoci",
    );

    let copy = work.path().join("copy");
    store.bundle("localhost/multi:1", &copy, &["--copy"]).ok();
    assert_eq!(mounts_under(&copy), 0, "--copy makes a plain directory");
    spec_tests::tree::assert_same(
        &spec_tests::tree::listing(&copy.join("rootfs")),
        &theirs,
        "copy vs umoci",
    );

    // The hardlink to a lower layer's file is one inode with it, in both forms.
    use std::os::unix::fs::MetadataExt;
    for root in [overlay.join("rootfs"), copy.join("rootfs")] {
        let a = std::fs::metadata(root.join("data/keep.txt")).unwrap();
        let b = std::fs::metadata(root.join("data/link-to-keep")).unwrap();
        assert_eq!(a.ino(), b.ino(), "hardlink in {}", root.display());
    }
}

#[test]
fn second_bundle_reuses_the_layer_cache_and_unbundle_cleans_up() {
    let store = Store::new();
    store.add(&images::multi_layer(), "localhost/multi:1");
    let work = tempfile::tempdir().unwrap();
    let first = work.path().join("one");
    store.bundle("localhost/multi:1", &first, &[]).ok();
    let layers = store.path().join("imgtool/layers");
    let before: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    assert_eq!(before.len(), 4, "one cache directory per layer");
    let second = work.path().join("two");
    store.bundle("localhost/multi:1", &second, &[]).ok();
    let after: Vec<_> = std::fs::read_dir(&layers)
        .unwrap()
        .flatten()
        .map(|e| (e.file_name(), e.metadata().unwrap().modified().unwrap()))
        .collect();
    assert_eq!(before, after, "the second bundle unpacked nothing");

    // Writes in one bundle stay in its upper dir.
    std::fs::write(first.join("rootfs/data/new.txt"), "x").unwrap();
    assert!(first.join("overlay/upper/data/new.txt").exists());
    assert!(!second.join("rootfs/data/new.txt").exists());

    store
        .imgtool(&[
            "unbundle",
            first.to_str().unwrap(),
            second.to_str().unwrap(),
        ])
        .ok();
    assert!(!first.exists() && !second.exists());
    assert_eq!(mounts_under(work.path()), 0);
    assert_eq!(
        std::fs::read_dir(store.path().join("imgtool/bundles"))
            .unwrap()
            .count(),
        0
    );

    let not_a_bundle = tempfile::tempdir().unwrap();
    let out = store.imgtool(&["unbundle", not_a_bundle.path().to_str().unwrap()]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not a bundle made by imgtool"),
        "{out:?}"
    );
    assert!(
        not_a_bundle.path().exists(),
        "a foreign directory is never removed"
    );
}

#[test]
fn options_change_the_config_as_docker_would() {
    let store = Store::new();
    let mut img = Image::busybox();
    img.config = serde_json::json!({
        "Entrypoint": ["/bin/echo"], "Cmd": ["from-image"],
        "Env": ["A=image", "B=image", "PATH=/bin"], "Volumes": {"/seeded": {}},
        "Labels": {"org.example": "label"}, "StopSignal": "SIGQUIT",
    });
    // The image has content at its volume path, which the volume starts with.
    let mut extra = images::Layer::new();
    extra
        .dir("seeded", 0o755)
        .file("seeded/hello.txt", b"seed\n", 0o644);
    img.layers.push((extra.finish(), images::Compression::Gzip));
    store.add(&img, "localhost/opts:1");
    let work = tempfile::tempdir().unwrap();
    let host_dir = work.path().join("host");
    std::fs::create_dir(&host_dir).unwrap();
    std::fs::write(host_dir.join("f"), "from host\n").unwrap();
    let b = work.path().join("b");
    let bind = format!("{}:/mnt/host:ro", host_dir.display());
    store
        .bundle(
            "localhost/opts:1",
            &b,
            &[
                "-e",
                "B=cli",
                "-e",
                "C=new",
                "-v",
                &bind,
                "-w",
                "/tmp",
                "-u",
                "1000:2000",
                "--hostname",
                "box",
                "-t",
                "--",
                "a",
                "b",
            ],
        )
        .ok();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    let p = &cfg["process"];
    assert_eq!(
        p["args"],
        serde_json::json!(["/bin/echo", "a", "b"]),
        "ARGS replace Cmd, Entrypoint stays"
    );
    let env: Vec<&str> = p["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for want in ["A=image", "B=cli", "C=new", "PATH=/bin", "TERM=xterm"] {
        assert!(env.contains(&want), "{want} in {env:?}");
    }
    assert!(!env.contains(&"B=image"));
    assert_eq!(p["cwd"], "/tmp");
    assert_eq!(
        (p["user"]["uid"].as_u64(), p["user"]["gid"].as_u64()),
        (Some(1000), Some(2000))
    );
    assert_eq!(p["terminal"], true);
    assert_eq!(cfg["hostname"], "box");
    assert_eq!(cfg["root"]["readonly"], false);
    assert_eq!(cfg["annotations"]["org.example"], "label");
    assert_eq!(
        cfg["annotations"]["org.opencontainers.image.stopSignal"],
        "SIGQUIT"
    );
    let mounts = cfg["mounts"].as_array().unwrap();
    let host = mounts
        .iter()
        .find(|m| m["destination"] == "/mnt/host")
        .expect("bind mount");
    assert!(host["options"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("ro")));
    let vol = mounts
        .iter()
        .find(|m| m["destination"] == "/seeded")
        .expect("volume mount");
    let vol_dir = std::path::PathBuf::from(vol["source"].as_str().unwrap());
    assert!(vol_dir.starts_with(&b), "volumes live in the bundle");
    assert_eq!(
        std::fs::read_to_string(vol_dir.join("hello.txt")).unwrap(),
        "seed\n"
    );

    // And the runtime runs it: the volume and the bind mount are there, writes to the
    // volume land in the bundle's volume dir.
    let run = work.path().join("run");
    store
        .bundle(
            "localhost/opts:1",
            &run,
            &[
                "-v",
                &bind,
                "--entrypoint",
                "sh",
                "--",
                "-c",
                "cat /seeded/hello.txt /mnt/host/f; echo written > /seeded/new; hostname",
            ],
        )
        .ok();
    let rt = Runtime::new();
    let g = rt.guard("opts");
    let id = g.id().to_string();
    let out = rt.run(&run, &id).ok();
    assert_eq!(out.stdout, "seed\nfrom host\nopts\n");
    assert!(run.join("volumes/0/new").exists());
    assert!(
        !run.join("overlay/upper/seeded/new").exists(),
        "volume writes stay out of the rootfs"
    );

    let rootless = work.path().join("rootless");
    store
        .bundle("localhost/opts:1", &rootless, &["--rootless"])
        .ok();
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(rootless.join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = cfg["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user"), "{ns:?}");
    assert_eq!(cfg["linux"]["uidMappings"][0]["containerID"], 0);
}

#[test]
fn bad_input_leaves_nothing_behind() {
    let store = Store::new();
    store.add(&Image::busybox(), "localhost/bb:1");
    let work = tempfile::tempdir().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec!["bundle", "localhost/nope:1"], "no image tagged"),
        (vec!["bundle", "localhost/bb:1", "-v", "relative:/x"], "-v"),
        (
            vec!["bundle", "localhost/bb:1", "-v", "/does/not/exist:/x"],
            "does not exist",
        ),
        (vec!["bundle", "localhost/bb:1", "-u", "ghost"], "ghost"),
        (
            vec!["bundle", "localhost/bb:1", "-w", "relative"],
            "absolute",
        ),
        (vec!["bundle", "localhost/bb:1", "-e", "=x"], "NAME=VALUE"),
    ];
    for (i, (args, needle)) in cases.iter().enumerate() {
        let dir = work.path().join(format!("b{i}"));
        let mut a = args.clone();
        a.insert(2, dir.to_str().unwrap());
        let out = store.imgtool(&a);
        assert_eq!(out.code, 1, "{a:?}: {out:?}");
        assert_eq!(out.stderr.lines().count(), 1, "one line: {out:?}");
        assert!(out.stderr.contains(needle), "{a:?}: {out:?}");
        assert!(!dir.exists(), "{a:?} left {}", dir.display());
    }
    assert_eq!(mounts_under(work.path()), 0);
    // An existing non-empty directory is refused and left as it was.
    let full = work.path().join("full");
    std::fs::create_dir(&full).unwrap();
    std::fs::write(full.join("mine"), "keep").unwrap();
    let out = store.bundle("localhost/bb:1", &full, &[]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("not an empty directory"), "{out:?}");
    assert_eq!(std::fs::read_dir(&full).unwrap().count(), 1);
}

/// Layers built to escape the rootfs are refused through the command line in both
/// modes; nothing is written outside, no bundle or layer cache is left.
#[test]
fn hostile_images_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let t = target.to_str().unwrap().trim_start_matches('/').to_string();
    let mut escapes: Vec<(&str, images::Layer)> = Vec::new();
    let mut l = images::Layer::new();
    l.symlink("evil", target.to_str().unwrap())
        .file("evil/pwned", b"x", 0o644);
    escapes.push(("absolute symlink parent", l));
    let mut l = images::Layer::new();
    l.symlink("up", &format!("../../../../../../../{t}"))
        .file("up/pwned", b"x", 0o644);
    escapes.push(("relative symlink parent", l));
    let mut l = images::Layer::new();
    l.hardlink("passwd-link", "/etc/passwd");
    escapes.push(("hardlink to a host file", l));
    for (what, layer) in escapes {
        let store = Store::new();
        let mut img = Image::busybox();
        img.layers.push((layer.finish(), images::Compression::Gzip));
        store.add(&img, "localhost/evil:1");
        for mode in [&[][..], &["--copy"][..]] {
            let dir = outside.path().join("bundle");
            let out = store.bundle("localhost/evil:1", &dir, mode);
            // A symlinked parent resolves inside the root: the write lands in the
            // rootfs, never outside. A hardlink out is refused.
            if out.code == 0 {
                let _ = Command::new(bins::imgtool())
                    .arg("unbundle")
                    .arg(&dir)
                    .output();
            } else {
                assert_eq!(out.stderr.lines().count(), 1, "{what}: {out:?}");
                assert!(!dir.exists(), "{what} {mode:?}: bundle dir left");
            }
            assert_eq!(
                std::fs::read_dir(&target).unwrap().count(),
                0,
                "{what} {mode:?} wrote outside"
            );
            assert!(!std::fs::read_to_string("/etc/passwd").unwrap().is_empty());
        }
        assert_eq!(
            std::fs::read_dir(store.path().join("imgtool/tmp"))
                .unwrap()
                .count(),
            0,
            "{what}: temp files left"
        );
    }
}

#[test]
fn store_commands_list_tag_remove_and_gc() {
    let store = Store::new();
    let digest = store.add(&Image::busybox(), "docker.io/library/busybox:latest");
    store.add(&images::multi_layer(), "localhost/multi:1");
    let table = store.imgtool(&["images"]).ok().stdout;
    assert!(table.starts_with("REPOSITORY"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("busybox ") && l.contains("latest")),
        "{table}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&store.imgtool(&["images", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 2);

    let inspect = inspected(store.imgtool(&["inspect", "busybox"]).ok().stdout);
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(inspect["Manifest"]["layers"].as_array().unwrap().len(), 1);
    // docker's fields: Config is the container config, as `docker image inspect` shows.
    assert_eq!(inspect["Config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        inspect["ImageConfig"]["config"]["Cmd"],
        serde_json::json!(["sh"])
    );
    assert_eq!(inspect["RepoTags"], serde_json::json!(["busybox:latest"]));
    // By digest prefix too.
    let by_id = inspected(store.imgtool(&["inspect", &digest[7..19]]).ok().stdout);
    assert_eq!(by_id["Digest"], digest);

    store.imgtool(&["tag", "busybox", "localhost/copy:2"]).ok();
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci:{}:localhost/copy:2", store.path().display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo reads the new tag: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A live bundle keeps its layers through rm + gc; unbundled, gc takes them.
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("b");
    store.bundle("localhost/multi:1", &b, &[]).ok();
    store.imgtool(&["rm", "localhost/multi:1"]).ok();
    let gc = store.imgtool(&["gc"]).ok().stdout;
    assert!(gc.contains("0 layer caches"), "{gc}");
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/data/keep.txt")).unwrap(),
        "keep\n"
    );
    store.imgtool(&["unbundle", b.to_str().unwrap()]).ok();
    let gc = store.imgtool(&["gc"]).ok().stdout;
    assert!(
        gc.contains("3 layer caches"),
        "the three layers only multi used: {gc}"
    );
    let out = store.imgtool(&["inspect", "localhost/multi:1"]);
    assert_eq!(out.code, 1);
    let left: Vec<_> = std::fs::read_dir(store.path().join("blobs/sha256"))
        .unwrap()
        .collect();
    assert_eq!(left.len(), 3, "busybox's manifest, config and layer remain");
    store
        .imgtool(&[
            "bundle",
            "busybox",
            work.path().join("again").to_str().unwrap(),
        ])
        .ok();
    store.bundles.borrow_mut().push(work.path().join("again"));
    let out = store.imgtool(&["rm", "localhost/never:1"]);
    assert_eq!(out.code, 1);
    assert!(out.stderr.contains("localhost/never:1"), "{out:?}");
}

/// The whole story through a real registry: skopeo pushes an image made offline, imgtool
/// pulls it into an empty store and bundles it; the rootfs equals umoci's unpack of the
/// same image, and the runtime runs it as the image's user, with its env and cwd.
#[test]
fn pulled_image_matches_umoci_and_runs() {
    let reg = spec_tests::registry::Registry::start();
    let mut image = images::multi_layer();
    image.config = serde_json::json!({
        "Cmd": ["sh", "-c", "echo $(id -u):$(id -g):$(id -G) $(pwd) $MODE; cat /data/keep.txt; cat /data/replaced.txt 2>&1 | grep -c denied"],
        "Env": ["MODE=pulled", "PATH=/bin"],
        "User": "user",
        "WorkingDir": "/data",
    });
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    image.write_layout(&layout, "multi");
    reg.push_with_skopeo(&format!("oci:{}:multi", layout.display()), "multi:1");
    let theirs = spec_tests::tree::umoci_unpack(
        &format!("{}:multi", layout.display()),
        &work.path().join("umoci"),
    );

    let store = Store::new();
    let name = format!("{}/multi:1", reg.host());
    let pulled = store.imgtool(&["pull", "-q", &name]).ok();
    assert!(pulled.stdout.starts_with(&name), "{pulled:?}");
    let b = work.path().join("b");
    store.bundle(&name, &b, &[]).ok();
    spec_tests::tree::assert_same(
        &spec_tests::tree::listing(&b.join("rootfs")),
        &theirs,
        "pulled bundle vs umoci",
    );
    let rt = Runtime::new();
    let g = rt.guard("pulled");
    let id = g.id().to_string();
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.stdout, "1000:1000:1000 2000 /data pulled\nkeep\n1\n");
}

/// Layers are unpacked side by side, each on its own, and completed against the layers
/// below (imgtool/src/store/layer_build.rs): an image whose upper layers depend on the
/// lower ones in every way layer.md allows (parent directories only the lower layers
/// have, whiteouts and opaque markers in them, a directory recreated after its whiteout,
/// a write through a lower symlink, a hardlink to a lower file, a whiteout in a
/// directory no layer has) gives umoci's tree, pulled (the layers read as they download)
/// and bundled from the store (read back), as an overlay and as a plain copy (one tree,
/// layer after layer). Negative control: with the completion against the lower layers
/// turned off (`_IMGTOOL_TEST_UNSAFE=layer-completion`, debug builds), a parent
/// directory's mode, the symlink the layer wrote through and a whiteout of nothing (which
/// overlayfs lists) are seen to differ.
#[test]
fn layers_unpacked_side_by_side_give_umocis_tree() {
    let reg = spec_tests::registry::Registry::start();
    let image = images::cross_layer();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    image.write_layout(&layout, "cross");
    reg.push_with_skopeo(&format!("oci:{}:cross", layout.display()), "cross:1");
    let theirs = spec_tests::tree::umoci_unpack(
        &format!("{}:cross", layout.display()),
        &work.path().join("umoci"),
    );
    // What the image is about, in umoci's tree: a wrong reference proves nothing.
    let mode = |p: &str| theirs[p].mode & 0o7777;
    assert_eq!(mode("srv"), 0o750, "{:?}", theirs["srv"]);
    assert_eq!(mode("opt/lib/app"), 0o711);
    assert!(theirs.contains_key("opt/lib/app/through-symlink"));
    assert!(!theirs.contains_key("tree/sub/old.txt") && !theirs.contains_key("tree2/old.txt"));
    assert!(!theirs.contains_key("conf/a.txt") && theirs.contains_key("conf/b.txt"));

    let name = format!("{}/cross:1", reg.host());
    let pulled = Store::new();
    pulled.imgtool(&["pull", "-q", &name]).ok();
    let from_store = Store::new();
    from_store.add(&image, "localhost/cross:1");
    for (store, image, form, extra) in [
        (&pulled, name.as_str(), "pulled, overlay", &[][..]),
        (
            &from_store,
            "localhost/cross:1",
            "from the store, overlay",
            &[][..],
        ),
        (
            &from_store,
            "localhost/cross:1",
            "from the store, copy",
            &["--copy"][..],
        ),
    ] {
        let b = work.path().join(form.replace([',', ' '], "-"));
        store.bundle(image, &b, extra).ok();
        let ours = spec_tests::tree::listing(&b.join("rootfs"));
        spec_tests::tree::assert_same(&ours, &theirs, &format!("{form} vs umoci"));
        use std::os::unix::fs::MetadataExt;
        let ino = |p: &str| std::fs::metadata(b.join("rootfs").join(p)).unwrap().ino();
        assert_eq!(
            ino("x.txt"),
            ino("x-link"),
            "{form}: the hardlink to a lower file"
        );
    }

    // Negative control: the same pull without the completion.
    if !spec_tests::not_run::imgtool_negative_control_has_test_switches() {
        return;
    }
    let control = Store::new();
    let mut cmd = Command::new(bins::imgtool());
    cmd.arg("--store")
        .arg(control.path())
        .args(["pull", "-q", &name])
        .env("_IMGTOOL_TEST_UNSAFE", "layer-completion");
    let out = capture(cmd).ok();
    assert!(
        out.stderr
            .contains("TEST-ONLY: protection layer-completion is off"),
        "{out:?}"
    );
    let b = work.path().join("control");
    control.bundle(&name, &b, &[]).ok();
    use std::os::unix::fs::PermissionsExt;
    let rootfs = b.join("rootfs");
    let srv = std::fs::metadata(rootfs.join("srv")).unwrap();
    assert_eq!(
        srv.permissions().mode() & 0o7777,
        0o755,
        "control: srv as made, not the lower one's"
    );
    assert!(
        !rootfs.join("opt/lib/app/through-symlink").exists()
            && std::fs::symlink_metadata(rootfs.join("applink"))
                .unwrap()
                .is_dir(),
        "control: the write through applink made a directory instead"
    );
    let listed: Vec<String> = std::fs::read_dir(rootfs.join("newdir"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        listed.iter().any(|n| n == "ghost"),
        "control: the whiteout of nothing is listed in newdir: {listed:?}"
    );
}

/// umoci's unpack of `image` (through an OCI layout): the reference tree.
fn umoci_tree(
    image: &Image,
    work: &Path,
) -> std::collections::BTreeMap<String, spec_tests::tree::Node> {
    let layout = work.join("umoci-layout");
    image.write_layout(&layout, "img");
    spec_tests::tree::umoci_unpack(&format!("{}:img", layout.display()), &work.join("umoci"))
}

fn lsetxattr(path: &Path, name: &str, value: &[u8]) {
    let p = std::ffi::CString::new(path.to_string_lossy().as_bytes()).unwrap();
    let n = std::ffi::CString::new(name).unwrap();
    // SAFETY: lsetxattr reads value.len() bytes from the slice and two C strings.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            n.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr {name} on {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
}

/// A running container holds its rootfs in its own mount namespace, where unmounting the
/// host's copy cannot see it: `unbundle` refuses while it runs (naming the process), and
/// gc keeps the layer caches its overlay stands on even when no bundle record says so.
/// Once it is gone, both go ahead.
#[test]
fn a_running_container_keeps_its_bundle_and_its_layers() {
    let store = Store::new();
    store.add(&images::multi_layer(), "localhost/multi:1");
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("b");
    store
        .bundle("localhost/multi:1", &b, &["--", "sleep", "1000"])
        .ok();
    let rt = Runtime::new();
    let g = rt.guard("held");
    rt.exec(&["run", "-d", "--bundle", b.to_str().unwrap(), g.id()])
        .ok();
    rt.wait_status(g.id(), "running", std::time::Duration::from_secs(20));

    let out = store.imgtool(&["unbundle", b.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("still in use") && out.stderr.contains("another mount namespace"),
        "{out:?}"
    );
    assert!(b.join("imgtool.json").exists(), "nothing removed");
    assert_eq!(
        std::fs::read_to_string(b.join("rootfs/data/keep.txt")).unwrap(),
        "keep\n"
    );

    // The image untagged and the bundle's record gone (as for a bundle whose record was
    // lost): only the container's mount keeps its four layers.
    store.imgtool(&["rm", "localhost/multi:1"]).ok();
    for e in std::fs::read_dir(store.path().join("imgtool/bundles")).unwrap() {
        std::fs::remove_file(e.unwrap().path()).unwrap();
    }
    let gc = store.imgtool(&["gc"]).ok().stdout;
    assert!(
        gc.contains("0 layer caches") && gc.contains("kept 4 layer caches"),
        "{gc}"
    );
    let cat = rt.exec(&["exec", g.id(), "cat", "/data/keep.txt"]).ok();
    assert_eq!(
        cat.stdout, "keep\n",
        "the container still stands on its layers"
    );

    // Negative control: the container gone, unbundle and gc proceed, even while another
    // mount namespace holds the copy of the bundle's mount it inherited (as every
    // namespace made meanwhile does: a container being set up, an `unshare -m` shell).
    rt.exec(&["delete", "--force", g.id()]).ok();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut copy = Kill(
        Command::new("unshare")
            .args([
                "-m",
                "--propagation",
                "private",
                "sh",
                "-c",
                "echo ready; exec sleep 300",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut ready = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(copy.0.stdout.as_mut().unwrap()),
        &mut ready,
    )
    .unwrap();
    assert_eq!(ready.trim(), "ready");
    let inherited = std::fs::read_to_string(format!("/proc/{}/mountinfo", copy.0.id())).unwrap();
    assert!(
        inherited.contains(b.join("rootfs").to_str().unwrap()),
        "the copy is there"
    );
    store.imgtool(&["unbundle", b.to_str().unwrap()]).ok();
    drop(copy);
    assert!(!b.exists());
    let gc = store.imgtool(&["gc"]).ok().stdout;
    assert!(
        gc.contains("4 layer caches") && !gc.contains("kept"),
        "{gc}"
    );
}

/// One xattr policy: overlayfs's own xattrs in a layer never steer overlayfs (a
/// directory "marked opaque" by an xattr still shows what lower layers put in it; only
/// the OCI marker hides it); commit and export carry the same xattrs (a file's own:
/// `user.*`, `trusted.*`) and drop the same ones (`security.selinux`, overlayfs's).
#[test]
fn overlay_xattrs_in_layers_never_steer_overlayfs_and_commit_and_export_agree() {
    let store = Store::new();
    let mut lower = images::Layer::new();
    lower
        .dir("d", 0o755)
        .file("d/from-lower", b"lower\n", 0o644);
    lower
        .dir("o", 0o755)
        .file("o/from-lower", b"lower\n", 0o644);
    let mut upper = images::Layer::new();
    upper
        .dir_with_xattr("d", "trusted.overlay.opaque", b"y")
        .file("d/from-upper", b"upper\n", 0o644)
        .opaque("o")
        .file("o/from-upper", b"upper\n", 0o644);
    let image = Image::new(
        vec![
            (images::busybox_layer(), images::Compression::Gzip),
            (lower.finish(), images::Compression::Gzip),
            (upper.finish(), images::Compression::Gzip),
        ],
        &["sh"],
    );
    store.add(&image, "localhost/xattrs:1");
    let work = tempfile::tempdir().unwrap();
    let theirs = umoci_tree(&image, work.path());
    for mode in [&[][..], &["--copy"][..]] {
        let b = work.path().join(format!("b{}", mode.len()));
        store.bundle("localhost/xattrs:1", &b, mode).ok();
        let root = b.join("rootfs");
        assert!(
            root.join("d/from-lower").exists(),
            "{mode:?}: the xattr did not hide d"
        );
        assert!(root.join("d/from-upper").exists());
        // Negative control: the OCI opaque marker does hide what was below.
        assert!(
            !root.join("o/from-lower").exists(),
            "{mode:?}: the marker hides o"
        );
        assert!(root.join("o/from-upper").exists());
        spec_tests::tree::assert_same(&spec_tests::tree::listing(&root), &theirs, "vs umoci");
    }

    // commit and export of a file with its own xattrs and host ones.
    let b = work.path().join("b0");
    let f = b.join("rootfs/tagged");
    std::fs::write(&f, "x").unwrap();
    lsetxattr(&f, "user.keep", b"u");
    lsetxattr(&f, "trusted.keep", b"t");
    lsetxattr(&f, "security.selinux", b"system_u:object_r:etc_t:s0");
    let export = work.path().join("export.tar");
    store
        .imgtool(&[
            "export",
            b.to_str().unwrap(),
            "-o",
            export.to_str().unwrap(),
        ])
        .ok();
    store
        .imgtool(&["commit", b.to_str().unwrap(), "localhost/xattrs:2"])
        .ok();
    let inspect = inspected(
        store
            .imgtool(&["inspect", "localhost/xattrs:2"])
            .ok()
            .stdout,
    );
    let layer = inspect["Manifest"]["layers"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let committed = store
        .path()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);
    let xattrs_of = |tar_bytes: Vec<u8>| -> Vec<String> {
        let mut a = tar::Archive::new(tar_bytes.as_slice());
        let mut keys = Vec::new();
        for e in a.entries().unwrap() {
            let mut e = e.unwrap();
            if e.path().unwrap().to_string_lossy().trim_start_matches("./") != "tagged" {
                continue;
            }
            if let Some(exts) = e.pax_extensions().unwrap() {
                for x in exts.flatten() {
                    keys.push(x.key().unwrap().to_string());
                }
            }
        }
        keys.sort();
        keys
    };
    let gunzip = |b: Vec<u8>| {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(b.as_slice()), &mut out)
            .unwrap();
        out
    };
    let from_export = xattrs_of(std::fs::read(&export).unwrap());
    let from_commit = xattrs_of(gunzip(std::fs::read(committed).unwrap()));
    assert_eq!(
        from_export,
        ["SCHILY.xattr.trusted.keep", "SCHILY.xattr.user.keep"]
    );
    assert_eq!(from_commit, from_export, "commit and export agree");
}

/// Blobs read back from the store are checked against their digest: a layer or config
/// changed on disk is refused with the blob named, never unpacked or used.
#[test]
fn blobs_changed_on_disk_are_refused_when_read_back() {
    let store = Store::new();
    let digest = store.add(&Image::busybox(), "localhost/bb:1");
    let work = tempfile::tempdir().unwrap();
    // Negative control: intact, it bundles both ways.
    store
        .bundle("localhost/bb:1", &work.path().join("ok"), &["--copy"])
        .ok();
    let inspect = inspected(store.imgtool(&["inspect", &digest]).ok().stdout);
    let layer = inspect["Manifest"]["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let path = store
        .path()
        .join("blobs/sha256")
        .join(&layer["sha256:".len()..]);
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x55;
    std::fs::write(&path, &bytes).unwrap();
    for mode in [&["--copy"][..], &[][..]] {
        let b = work.path().join(format!("bad{}", mode.len()));
        let out = store.bundle("localhost/bb:1", &b, mode);
        assert_eq!(out.code, 1, "{mode:?}: {out:?}");
        assert!(
            out.stderr.contains(&layer) && out.stderr.contains("changed on disk"),
            "{out:?}"
        );
        assert!(!b.exists(), "nothing left behind");
    }
    let config = inspect["Id"].as_str().unwrap().to_string();
    std::fs::write(
        store
            .path()
            .join("blobs/sha256")
            .join(&config["sha256:".len()..]),
        b"{}",
    )
    .unwrap();
    let out = store.imgtool(&["inspect", "localhost/bb:1"]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains(&config) && out.stderr.contains("changed on disk"),
        "{out:?}"
    );
}

/// docker's defaults for what an image does not say: HOME=/ for a user without a passwd
/// entry; a layer that writes through an in-root symlink to a path not made yet is
/// applied as docker and umoci apply it; and `bundle` says what it made.
#[test]
fn docker_defaults_home_dangling_symlinks_and_a_report() {
    let store = Store::new();
    let mut l = images::Layer::new();
    l.symlink("lib", "usr/lib")
        .file("lib/x", b"through the link\n", 0o644);
    l.symlink("opt", "/srv/app")
        .file("opt/y", b"through an absolute link\n", 0o644);
    let image = Image::new(
        vec![
            (images::busybox_layer(), images::Compression::Gzip),
            (l.finish(), images::Compression::Gzip),
        ],
        &["sh"],
    );
    store.add(&image, "localhost/links:1");
    let work = tempfile::tempdir().unwrap();
    let theirs = umoci_tree(&image, work.path());
    for mode in [&[][..], &["--copy"][..]] {
        let b = work.path().join(format!("b{}", mode.len()));
        let out = store.bundle("localhost/links:1", &b, mode).ok();
        assert!(
            out.stdout.contains(b.to_str().unwrap())
                && out.stdout.contains("rootfs")
                && out.stdout.contains("localhost/links:1"),
            "bundle says what it made: {out:?}"
        );
        let root = b.join("rootfs");
        assert_eq!(
            std::fs::read_to_string(root.join("usr/lib/x")).unwrap(),
            "through the link\n"
        );
        assert_eq!(
            std::fs::read_to_string(root.join("srv/app/y")).unwrap(),
            "through an absolute link\n"
        );
        spec_tests::tree::assert_same(&spec_tests::tree::listing(&root), &theirs, "vs umoci");
    }
    let env_of = |user: &str| -> Vec<String> {
        let b = work.path().join(format!("u{user}"));
        store.bundle("localhost/links:1", &b, &["-u", user]).ok();
        let c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
        serde_json::from_value(c["process"]["env"].clone()).unwrap()
    };
    assert!(
        env_of("4242").contains(&"HOME=/".to_string()),
        "no passwd entry: HOME=/"
    );
    // Negative control: a user with an entry gets its home.
    assert!(env_of("1000").contains(&"HOME=/home/user".to_string()));
    // -q keeps bundle silent.
    let out = store.bundle("localhost/links:1", &work.path().join("quiet"), &[]);
    assert!(out.code == 0);
    let quiet = store.imgtool(&[
        "-q",
        "bundle",
        "localhost/links:1",
        work.path().join("q2").to_str().unwrap(),
    ]);
    store.bundles.borrow_mut().push(work.path().join("q2"));
    assert_eq!(quiet.stdout, "", "{quiet:?}");
}
