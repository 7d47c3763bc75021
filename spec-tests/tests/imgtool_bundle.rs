//! `imgtool bundle` and the store commands, driven as a user would: images made offline
//! are copied into a private store with skopeo (an OCI layout is what our store is), then
//! bundled and run with the runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

use spec_tests::bins;
use spec_tests::container::{capture, unique_id, Outcome, Runtime};
use spec_tests::images::{self, Image};
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
        let layout = tempfile::tempdir().unwrap();
        let digest = image.write_layout(layout.path(), "img");
        let out = Command::new("skopeo")
            .args(["copy", "-q"])
            .arg(format!("oci:{}:img", layout.path().display()))
            .arg(format!("oci:{}:{name}", self.path().display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        digest
    }

    fn bundle(&self, image: &str, dir: &Path, extra: &[&str]) -> Outcome {
        self.bundles.borrow_mut().push(dir.to_path_buf());
        let mut args = vec!["bundle", image, dir.to_str().unwrap()];
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
    let id = unique_id("bundle");
    let _g = rt.guard(&id);
    let out = rt.run(&b, &id).ok();
    assert_eq!(out.stdout.trim(), "1000:1000 /home/user hi /home/user");
}
