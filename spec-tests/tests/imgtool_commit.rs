//! `imgtool commit`: a container changes its bundle's rootfs (creates, modifies and
//! deletes files, removes and replaces directories), the bundle is committed, and a
//! bundle of the new image shows exactly the changed tree; for overlay and copied
//! bundles alike.

use std::path::Path;
use std::process::Command;

use spec_tests::bins;
use spec_tests::container::{capture, Outcome, Runtime};
use spec_tests::images;
use spec_tests::imgtool_store::put_image;
use spec_tests::tree::{assert_same, listing};

struct Store {
    dir: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Store {
    fn new() -> Self {
        let s = Self {
            dir: tempfile::Builder::new()
                .prefix("spec-store-")
                .tempdir()
                .unwrap(),
            work: tempfile::Builder::new()
                .prefix("spec-commit-")
                .tempdir()
                .unwrap(),
        };
        put_image(s.dir.path(), &images::multi_layer(), "localhost/base:1");
        s
    }

    fn imgtool(&self, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(bins::imgtool());
        cmd.arg("--store").arg(self.dir.path()).args(args);
        capture(cmd)
    }

    fn bundle(&self, name: &str, image: &str, extra: &[&str]) -> std::path::PathBuf {
        let dir = self.work.path().join(name);
        // Not about networks: no bridge network on the host (imgtool_network.rs is).
        let mut args = vec!["bundle", image, dir.to_str().unwrap(), "--network", "none"];
        args.extend_from_slice(extra);
        self.imgtool(&args).ok();
        dir
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.work.path()) {
            for e in entries.flatten() {
                if e.path().join("imgtool.json").exists() {
                    let _ = Command::new(bins::imgtool())
                        .arg("unbundle")
                        .arg(e.path())
                        .output();
                }
            }
        }
        spec_tests::host::unmount_under(self.work.path());
    }
}

const CHANGES: &str =
    "echo new > /data/added.txt; echo more >> /data/keep.txt; rm /data/sym /data/replaced.txt; \
    rm -rf /data/opaque; mkdir /data/opaque; echo fresh > /data/opaque/only.txt; \
    mkdir -p /srv/app; echo app > /srv/app/run; chmod 750 /srv/app/run; ln -s app/run /srv/link; \
    rm -rf /home; chown 1000:2000 /data/added.txt";

fn run_changes(bundle: &Path) {
    let rt = Runtime::new();
    let g = rt.guard("commit");
    let id = g.id().to_string();
    let cfg = bundle.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["args"] = serde_json::json!(["sh", "-ec", CHANGES]);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    rt.run(bundle, &id).ok();
}

fn check_commit(mode: &[&str]) {
    let store = Store::new();
    let b = store.bundle("b", "localhost/base:1", mode);
    run_changes(&b);
    let out = store
        .imgtool(&[
            "commit",
            b.to_str().unwrap(),
            "localhost/changed:1",
            "-m",
            "my change",
            "-a",
            "Tester <t@example.com>",
            "-c",
            "ENV COMMITTED=yes",
            "-c",
            "CMD [\"cat\", \"/data/added.txt\"]",
        ])
        .ok();
    assert!(
        out.stdout.starts_with("localhost/changed:1 sha256:"),
        "{out:?}"
    );

    // skopeo sees one more layer and our history entry.
    let raw = Command::new("skopeo")
        .args(["inspect", "--config"])
        .arg(format!(
            "oci:{}:localhost/changed:1",
            store.dir.path().display()
        ))
        .output()
        .unwrap();
    assert!(
        raw.status.success(),
        "{}",
        String::from_utf8_lossy(&raw.stderr)
    );
    let cfg: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 5);
    let last = cfg["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["comment"], "my change");
    assert_eq!(last["author"], "Tester <t@example.com>");
    assert!(
        last["created_by"]
            .as_str()
            .unwrap()
            .contains("rm -rf /data/opaque"),
        "{last}"
    );
    assert!(cfg["config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&serde_json::json!("COMMITTED=yes")));
    assert_eq!(
        cfg["config"]["Cmd"],
        serde_json::json!(["cat", "/data/added.txt"])
    );

    // A bundle of the new image (from a plain copy, so no cache is shared) has exactly
    // the tree the container left.
    let again = store.bundle("again", "localhost/changed:1", &["--copy"]);
    // Less the mount targets the runtime made for the files the bundle bind-mounts
    // (/etc/hosts, hostname, resolv.conf): commits leave them out, as docker's do.
    let mut changed = listing(&b.join("rootfs"));
    for generated in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        assert!(
            changed.remove(generated).is_some(),
            "{generated} is a mount target"
        );
    }
    assert_same(
        &listing(&again.join("rootfs")),
        &changed,
        "committed vs changed",
    );
    let rt = Runtime::new();
    let g = rt.guard("committed");
    let id = g.id().to_string();
    assert_eq!(rt.run(&again, &id).ok().stdout, "new\n");

    // A second commit of the now unchanged copy is refused clearly, with nothing tagged.
    let out = store.imgtool(&["commit", again.to_str().unwrap(), "localhost/empty:1"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("no changes"), "{out:?}");
    assert_eq!(store.imgtool(&["inspect", "localhost/empty:1"]).code, 1);
    assert_eq!(
        std::fs::read_dir(store.dir.path().join("imgtool/tmp"))
            .unwrap()
            .count(),
        0,
        "temp files left"
    );
}

#[test]
fn commit_of_an_overlay_bundle() {
    check_commit(&[]);
}

#[test]
fn commit_of_a_copied_bundle() {
    check_commit(&["--copy"]);
}

#[test]
fn commit_leaves_volumes_out_and_takes_zstd() {
    let store = Store::new();
    let mut img = images::Image::busybox();
    img.config["Volumes"] = serde_json::json!({"/vol": {}});
    put_image(store.dir.path(), &img, "localhost/vol:1");
    let b = store.bundle("vb", "localhost/vol:1", &[]);
    let rt = Runtime::new();
    let g = rt.guard("vol");
    let id = g.id().to_string();
    let cfg = b.join("config.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["args"] =
        serde_json::json!(["sh", "-c", "echo v > /vol/data; echo r > /root/file"]);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    rt.run(&b, &id).ok();
    store
        .imgtool(&[
            "commit",
            b.to_str().unwrap(),
            "localhost/vol:2",
            "--compression",
            "zstd",
        ])
        .ok();
    let inspect = spec_tests::imgtool_store::inspected(
        store.imgtool(&["inspect", "localhost/vol:2"]).ok().stdout,
    );
    let layers = inspect["Manifest"]["layers"].as_array().unwrap();
    assert_eq!(
        layers.last().unwrap()["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    let again = store.bundle("vagain", "localhost/vol:2", &["--copy"]);
    assert!(again.join("rootfs/root/file").exists());
    assert!(
        !again.join("rootfs/vol/data").exists(),
        "volume content is not committed"
    );
}

#[test]
fn commit_of_a_non_bundle_is_refused() {
    let store = Store::new();
    let out = store.imgtool(&[
        "commit",
        store.work.path().to_str().unwrap(),
        "localhost/x:1",
    ]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("not a bundle made by imgtool"),
        "{out:?}"
    );
    assert_eq!(out.stderr.lines().count(), 1);
}
