//! `imgtool commit` killed with SIGKILL while it writes a large layer: index.json stays
//! valid, the earlier images stay tagged and readable, the new name is not tagged, `gc`
//! removes what the killed commit left in `imgtool/tmp`, and the same commit then
//! succeeds. (Killed pulls and loads are covered in imgtool_pull.rs / imgtool_archive.rs.)

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use spec_tests::host::unmount_under;
use spec_tests::images::Image;
use spec_tests::imgtool_store::{put_image, StoreEnv};

/// The store, a work dir for bundles; unbundles and unmounts on drop.
struct Scene {
    env: StoreEnv,
    work: tempfile::TempDir,
}

impl Drop for Scene {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.work.path()) {
            for e in entries.flatten() {
                if e.path().join("imgtool.json").exists() {
                    let _ = self.env.run(&["unbundle", e.path().to_str().unwrap_or("")]);
                }
            }
        }
        unmount_under(self.work.path());
    }
}

impl Scene {
    fn new() -> Self {
        let s = Self {
            env: StoreEnv::new(),
            work: tempfile::Builder::new()
                .prefix("imgtool-kill-")
                .tempdir()
                .unwrap(),
        };
        put_image(&s.env.store(), &Image::busybox(), "localhost/base:1");
        s
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.env.run(args);
        assert!(
            out.status.success(),
            "imgtool {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn bundle(&self, name: &str, image: &str) -> PathBuf {
        let dir = self.work.path().join(name);
        self.ok(&["bundle", image, dir.to_str().unwrap()]);
        dir
    }

    /// The largest file in the store's temp dir (what a commit is writing).
    fn largest_tmp_file(&self) -> u64 {
        let mut largest = 0;
        let mut todo = vec![self.env.store().join("imgtool/tmp")];
        while let Some(d) = todo.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => todo.push(e.path()),
                    Ok(m) => largest = largest.max(m.len()),
                    Err(_) => {}
                }
            }
        }
        largest
    }
}

/// Writes `count` files of `size` incompressible bytes under `dir`.
fn write_noise(dir: &Path, count: usize, size: usize) {
    std::fs::create_dir_all(dir).unwrap();
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..count {
        let mut f = std::fs::File::create(dir.join(format!("noise-{i}"))).unwrap();
        let mut buf = vec![0u8; size];
        for chunk in buf.chunks_mut(8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            chunk.copy_from_slice(&seed.to_le_bytes()[..chunk.len()]);
        }
        f.write_all(&buf).unwrap();
    }
}

#[test]
fn kill_9_mid_commit_leaves_a_consistent_store_and_the_commit_then_succeeds() {
    let s = Scene::new();
    // An earlier commit, so that more than the pulled image must survive.
    let small = s.bundle("small", "localhost/base:1");
    std::fs::write(small.join("rootfs/etc/motd"), "earlier commit\n").unwrap();
    s.ok(&["commit", small.to_str().unwrap(), "localhost/prev:1"]);
    let before = s.env.tags();
    assert_eq!(before.len(), 2, "{before:?}");

    // A large change: 8 MB that gzip cannot shrink, so the commit takes a moment.
    let big = s.bundle("big", "localhost/prev:1");
    write_noise(&big.join("rootfs/srv/noise"), 4, 2 << 20);
    let mut child = s
        .env
        .cmd()
        .args(["commit", big.to_str().unwrap(), "localhost/big:1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while s.largest_tmp_file() < 256 * 1024 {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the commit finished before it could be killed"
        );
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "commit never wrote"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap(); // SIGKILL
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9),
        "killed mid-commit"
    );

    // index.json is valid and unchanged; the earlier images read back in full.
    assert_eq!(s.env.tags(), before, "no new, no lost tag");
    for tag in &before {
        s.env.skopeo_inspect(tag);
        s.ok(&["inspect", tag]);
    }
    assert_eq!(
        s.env.run(&["inspect", "localhost/big:1"]).status.code(),
        Some(1)
    );
    s.env.assert_blobs_verified();
    assert!(
        !s.env.tmp_files().is_empty(),
        "the killed commit left its temp layer"
    );

    // gc cleans up what the commit left; the earlier images are untouched by it.
    let report = s.ok(&["gc"]);
    assert!(!report.contains(" 0 temp entries"), "{report}");
    assert!(s.env.tmp_files().is_empty(), "{:?}", s.env.tmp_files());
    for tag in &before {
        s.env.skopeo_inspect(tag);
    }

    // The same commit now succeeds, and a bundle of it has the big files.
    let out = s.ok(&["commit", big.to_str().unwrap(), "localhost/big:1"]);
    assert!(out.starts_with("localhost/big:1 sha256:"), "{out}");
    s.env.skopeo_inspect("localhost/big:1");
    let again = s.bundle("again", "localhost/big:1");
    assert_eq!(
        std::fs::read(again.join("rootfs/srv/noise/noise-3")).unwrap(),
        std::fs::read(big.join("rootfs/srv/noise/noise-3")).unwrap()
    );
    assert_eq!(
        std::fs::read_to_string(again.join("rootfs/etc/motd")).unwrap(),
        "earlier commit\n"
    );
    assert!(s.env.tmp_files().is_empty(), "{:?}", s.env.tmp_files());
}
