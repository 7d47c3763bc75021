//! Eight workers, each running one imgtool process after another against ONE store and a
//! real registry with three images that share layers: pull, bundle (check the rootfs,
//! unbundle), gc, rm then pull again, inspect, for a few seconds. Every command succeeds,
//! or fails only because another worker had just removed the image (and then says so in
//! one line). Afterwards the store is consistent: index.json valid with all three tags,
//! every tagged image readable by imgtool, skopeo and umoci, every blob matching its
//! digest, nothing left in `imgtool/tmp` after a final gc, and no mounts left.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use spec_tests::container::capture;
use spec_tests::images::{self, busybox_layer, Compression, Image, Layer};
use spec_tests::imgtool_store::{mounts_under, push, registry_manifest, StoreEnv};
use spec_tests::registry::Registry;

const WORKERS: usize = 8;
const RUN_FOR: Duration = Duration::from_secs(6);

/// An image served by the registry and a file every bundle of it must have.
struct Served {
    name: String,
    digest: String,
    probe: &'static str,
    probe_content: Option<&'static [u8]>,
}

/// Unmounts whatever a failed run left mounted under a directory.
struct MountSweep(PathBuf);

impl Drop for MountSweep {
    fn drop(&mut self) {
        for m in mounts_under(&self.0).iter().rev() {
            let _ = nix::mount::umount2(m.as_str(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn images() -> Vec<(&'static str, Image, &'static str, Option<&'static [u8]>)> {
    let mut extra = Layer::new();
    extra
        .dir("extra", 0o755)
        .file("extra/marker", b"third image\n", 0o644)
        .whiteout("etc/group");
    vec![
        ("busybox", Image::busybox(), "bin/busybox", None),
        (
            "multi",
            images::multi_layer(),
            "data/opaque/new.txt",
            Some(b"added with the opaque marker\n"),
        ),
        (
            "extra",
            Image::new(
                vec![
                    (busybox_layer(), Compression::Gzip),
                    (extra.finish(), Compression::Zstd),
                ],
                &["sh"],
            ),
            "extra/marker",
            Some(b"third image\n"),
        ),
    ]
}

/// A tiny deterministic generator, so each worker mixes operations differently.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

/// A failure a concurrent `rm` explains: the image was not tagged at that moment.
fn raced_with_rm(stderr: &str) -> bool {
    stderr.lines().count() == 1 && stderr.contains("no image tagged")
}

#[derive(Default, Debug)]
struct Tally {
    pulls: usize,
    bundles: usize,
    raced: usize,
    gcs: usize,
    rms: usize,
    inspects: usize,
    tags: usize,
    lists: usize,
    problems: Vec<String>,
}

fn check_bundle(dir: &Path, img: &Served) -> Result<(), String> {
    let probe = dir.join("rootfs").join(img.probe);
    let meta = std::fs::metadata(&probe).map_err(|e| format!("{}: {e}", probe.display()))?;
    if !meta.is_file() {
        return Err(format!("{} is not a file", probe.display()));
    }
    if let Some(want) = img.probe_content {
        let got = std::fs::read(&probe).map_err(|e| format!("{}: {e}", probe.display()))?;
        if got != want {
            return Err(format!("{} has the wrong content", probe.display()));
        }
    }
    if !dir.join("config.json").is_file() {
        return Err(format!("{}: no config.json", dir.display()));
    }
    Ok(())
}

fn worker(env: &StoreEnv, images: &[Served], work: &Path, id: usize) -> Tally {
    let mut t = Tally::default();
    let mut rng = Lcg(id as u64 * 7919 + 1);
    let deadline = Instant::now() + RUN_FOR;
    let mut n = 0;
    let imgtool = |args: &[&str]| {
        let mut c = env.cmd();
        c.args(args);
        capture(c)
    };
    // Every worker starts with a pull (the first ones race on an empty store), then does
    // each kind of operation once, then random ones until the time is up.
    let mut script = vec![0, 2, 3, 4, 5, 6, 7];
    script.rotate_left(id % 6 + 1);
    script.insert(0, 0);
    while Instant::now() < deadline || n < script.len() {
        let img = &images[(id + n / 3) % images.len()];
        let op = script.get(n).copied().unwrap_or_else(|| rng.next(8));
        n += 1;
        match op {
            0 | 1 => {
                let out = imgtool(&["pull", &img.name]);
                t.pulls += 1;
                if out.code != 0 || !out.stdout.contains(&img.digest) {
                    t.problems.push(format!("pull {}: {out:?}", img.name));
                }
            }
            2 => {
                let dir = work.join(format!("w{id}-{n}"));
                let d = dir.to_str().unwrap();
                let out = imgtool(&["bundle", &img.name, d]);
                if out.code != 0 {
                    if raced_with_rm(&out.stderr) && !dir.exists() {
                        t.raced += 1;
                    } else {
                        t.problems.push(format!("bundle {}: {out:?}", img.name));
                    }
                    continue;
                }
                t.bundles += 1;
                if let Err(e) = check_bundle(&dir, img) {
                    t.problems
                        .push(format!("bundle {} incomplete: {e}", img.name));
                }
                let out = imgtool(&["unbundle", d]);
                if out.code != 0 || dir.exists() {
                    t.problems.push(format!("unbundle {d}: {out:?}"));
                }
            }
            3 => {
                let out = imgtool(&["gc"]);
                t.gcs += 1;
                if out.code != 0 {
                    t.problems.push(format!("gc: {out:?}"));
                }
            }
            4 => {
                let out = imgtool(&["rm", &img.name]);
                t.rms += 1;
                if out.code != 0 && !raced_with_rm(&out.stderr) {
                    t.problems.push(format!("rm {}: {out:?}", img.name));
                }
                let out = imgtool(&["pull", &img.name]);
                t.pulls += 1;
                if out.code != 0 || !out.stdout.contains(&img.digest) {
                    t.problems
                        .push(format!("pull after rm {}: {out:?}", img.name));
                }
            }
            6 => {
                // Another name for the image: never a tag of something gc then removes.
                let copy = format!("localhost/copy-w{id}:{}", n % 3);
                let out = imgtool(&["tag", &img.name, &copy]);
                t.tags += 1;
                if out.code != 0 && !raced_with_rm(&out.stderr) {
                    t.problems.push(format!("tag {} {copy}: {out:?}", img.name));
                } else if out.code != 0 {
                    t.raced += 1;
                }
            }
            7 => {
                let out = imgtool(&["images"]);
                t.lists += 1;
                if out.code != 0 {
                    t.problems.push(format!("images: {out:?}"));
                }
            }
            _ => {
                let out = imgtool(&["inspect", &img.name]);
                t.inspects += 1;
                if out.code != 0 && !raced_with_rm(&out.stderr) {
                    t.problems.push(format!("inspect {}: {out:?}", img.name));
                } else if out.code == 0 && !out.stdout.contains(&img.digest) {
                    t.problems
                        .push(format!("inspect {}: wrong digest", img.name));
                } else if out.code != 0 {
                    t.raced += 1;
                }
            }
        }
    }
    t
}

#[test]
fn eight_processes_pulling_bundling_and_collecting_leave_a_consistent_store() {
    let reg = Registry::start();
    let mut served = Vec::new();
    for (repo, image, probe, probe_content) in images() {
        push(&reg, &image, &format!("{repo}:latest"));
        let (_, digest) = registry_manifest(&reg, &format!("{repo}:latest"));
        served.push(Served {
            name: format!("{}/{repo}:latest", reg.host()),
            digest,
            probe,
            probe_content,
        });
    }
    let env = Arc::new(StoreEnv::new());
    let work = Arc::new(
        tempfile::Builder::new()
            .prefix("imgtool-conc-")
            .tempdir()
            .unwrap(),
    );
    let _sweep = MountSweep(work.path().to_path_buf());
    let _sweep_store = MountSweep(env.store());
    let served = Arc::new(served);

    let handles: Vec<_> = (0..WORKERS)
        .map(|id| {
            let (env, served, work) = (env.clone(), served.clone(), work.clone());
            std::thread::spawn(move || worker(&env, &served, work.path(), id))
        })
        .collect();
    let mut total = Tally::default();
    for h in handles {
        let t = h.join().expect("worker panicked");
        total.pulls += t.pulls;
        total.bundles += t.bundles;
        total.raced += t.raced;
        total.gcs += t.gcs;
        total.rms += t.rms;
        total.inspects += t.inspects;
        total.tags += t.tags;
        total.lists += t.lists;
        total.problems.extend(t.problems);
    }
    eprintln!(
        "{} pulls, {} bundles, {} gcs, {} rms, {} inspects, {} tags, {} listings, {} refused because of a concurrent rm",
        total.pulls,
        total.bundles,
        total.gcs,
        total.rms,
        total.inspects,
        total.tags,
        total.lists,
        total.raced
    );
    assert!(total.problems.is_empty(), "{:#?}", total.problems);
    assert!(
        total.bundles > 0 && total.gcs > 0 && total.rms > 0,
        "{total:?}"
    );

    // Every worker's last rm was followed by its pull: all three are tagged, once each;
    // the other tags are the workers' copies, and every one of them is readable.
    let tags = env.tags();
    for img in served.iter() {
        assert_eq!(
            tags.iter().filter(|t| **t == img.name).count(),
            1,
            "{} in index.json: {tags:?}",
            img.name
        );
    }
    for tag in &tags {
        assert!(
            tag.starts_with("localhost/copy-w") || served.iter().any(|s| &s.name == tag),
            "unexpected tag {tag}"
        );
        let out = env.run(&["inspect", tag]);
        assert!(
            out.status.success(),
            "{tag}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        env.skopeo_inspect(tag);
    }

    let out = env.run(&["gc"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(env.tmp_files().is_empty(), "{:?}", env.tmp_files());
    assert!(
        mounts_under(work.path()).is_empty(),
        "{:?}",
        mounts_under(work.path())
    );
    assert!(mounts_under(&env.store()).is_empty());
    env.assert_blobs_verified();
    let registered = std::fs::read_dir(env.store().join("imgtool/bundles"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(registered, 0, "no bundle records left");

    for img in served.iter() {
        let out = env.run(&["inspect", &img.name]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(env.skopeo_inspect(&img.name)["Digest"], img.digest);
        // The layer caches that survived are sound: a fresh bundle has the whole tree.
        let dir = work
            .path()
            .join(format!("final-{}", img.probe.replace('/', "-")));
        let out = env.run(&["bundle", &img.name, dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        check_bundle(&dir, img).unwrap();
        let out = env.run(&["unbundle", dir.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let multi = &served[1];
    let unpacked = work.path().join("umoci");
    spec_tests::tree::umoci_unpack(
        &format!("{}:{}", env.store().display(), multi.name),
        &unpacked,
    );
    assert_eq!(
        std::fs::read(unpacked.join("rootfs").join(multi.probe)).unwrap(),
        multi.probe_content.unwrap()
    );
    let out = env.run(&["gc"]);
    assert!(out.status.success());
    assert!(env.tmp_files().is_empty(), "{:?}", env.tmp_files());
}
