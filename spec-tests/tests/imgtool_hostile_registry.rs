//! `imgtool pull` against registries that misbehave on purpose (a fake registry on
//! 127.0.0.1 serving exactly what each test says): bodies that never end, bytes trickled
//! just fast enough to dodge an idle timeout, token services and error pages that never
//! stop talking, and images that are not what they claim (a config that is not JSON, no
//! rootfs, diff_ids that do not match the layers, a layer that is not a tar). Each is
//! refused quickly, with bounded memory and one line saying what was wrong, and nothing
//! is tagged; the same fake registry serving a valid image is the negative control.

use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::fake_registry::{config_for, Body, FakeRegistry, Response};
use spec_tests::images::{self, Layer};
use spec_tests::imgtool_store::{error_line, result_line, StoreEnv};
use spec_tests::rss::PeakRss;

/// A small valid layer (one file) and its diff_id.
fn small_layer() -> (Vec<u8>, String) {
    let mut l = Layer::new();
    l.file("hello.txt", b"hello from the fake registry\n", 0o644);
    let tar = l.finish();
    let d = images::digest(&tar);
    (tar, d)
}

/// A fake registry serving a valid one-layer image as `ok:1`.
fn with_valid_image() -> (FakeRegistry, String) {
    let reg = FakeRegistry::start();
    let (tar, diff) = small_layer();
    let digest = reg.put_image("ok:1", &config_for(&[diff]), &[tar]);
    (reg, digest)
}

/// `imgtool pull ARGS` with the peak memory (KiB) and the time it took.
fn pull_measured(env: &StoreEnv, args: &[&str]) -> (Output, u64, Duration) {
    let start = Instant::now();
    let (out, peak) = env.cmd().arg("pull").args(args).output_with_peak_rss();
    (out, peak, start.elapsed())
}

const MEMORY_BOUND_KIB: u64 = 96 * 1024;

#[test]
fn an_endless_or_oversized_manifest_is_refused_with_bounded_memory() {
    let (reg, want) = with_valid_image();
    // Negative control: the same registry and harness serve a valid image.
    let env = StoreEnv::new();
    let (out, peak, _) = pull_measured(&env, &[&format!("{}/ok:1", reg.host())]);
    assert_eq!(result_line("pull", &[], &out).1, want);
    assert!(peak > 0 && peak < MEMORY_BOUND_KIB, "peak {peak} KiB");

    // A manifest that never ends (docker and containerd cap manifests at 4 MiB).
    reg.answer(|r| {
        r.path.contains("/endless/manifests/").then(|| {
            Response::endless(200)
                .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    // One that announces a terabyte.
    reg.answer(|r| {
        r.path.contains("/huge/manifests/").then(|| {
            Response::new(
                200,
                Body::Endless {
                    chunk: vec![b' '; 4096],
                    delay: Duration::from_millis(10),
                    content_length: Some(1 << 40),
                },
            )
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    for repo in ["endless", "huge"] {
        let env = StoreEnv::new();
        let (out, peak, took) = pull_measured(&env, &[&format!("{}/{repo}:1", reg.host())]);
        let err = error_line("pull", &[repo], &out);
        assert!(
            err.contains("manifest") && err.contains("larger than 4 MiB"),
            "{repo}: {err}"
        );
        assert!(
            peak < MEMORY_BOUND_KIB,
            "{repo}: imgtool grew to {peak} KiB reading a manifest"
        );
        assert!(took < Duration::from_secs(20), "{repo}: took {took:?}");
        env.assert_nothing_tagged_nor_left();
    }
}

#[test]
fn a_trickled_manifest_or_blob_is_bounded_in_total_time() {
    let (reg, _) = with_valid_image();
    let (tar, diff) = small_layer();
    let valid = reg.put_image(
        "slowblob:1",
        &config_for(std::slice::from_ref(&diff)),
        std::slice::from_ref(&tar),
    );
    let manifest_bytes = reg.blob(&valid).unwrap();
    assert!(!manifest_bytes.is_empty());
    let layer_blob = images::Compression::Gzip.compress(&tar);
    let layer_digest = images::digest(&layer_blob);

    // Each byte arrives before the 2 s idle timeout, so only a bound on the whole
    // response ends these.
    let slow = Duration::from_millis(400);
    let mb = manifest_bytes.clone();
    reg.answer(move |r| {
        r.path.contains("/trickle/manifests/").then(|| {
            Response::new(
                200,
                Body::Trickle {
                    bytes: mb.clone(),
                    delay: slow,
                },
            )
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    let env = StoreEnv::new();
    let start = Instant::now();
    let err = env.pull_err(&["--timeout", "2", &format!("{}/trickle:1", reg.host())]);
    let took = start.elapsed();
    assert!(
        err.contains("did not arrive within 2 s") && err.contains("gave up after 5 attempts"),
        "{err}"
    );
    assert!(took < Duration::from_secs(40), "took {took:?}");
    env.assert_nothing_tagged_nor_left();

    // A blob: the attempt must average at least 64 KiB/s after the idle allowance.
    let blob = layer_blob.clone();
    let d = layer_digest.clone();
    reg.answer(move |r| {
        (r.path.contains("/slowblob/blobs/") && r.path.contains(&d)).then(|| {
            Response::new(
                200,
                Body::Trickle {
                    bytes: blob.clone(),
                    delay: slow,
                },
            )
        })
    });
    let env = StoreEnv::new();
    let start = Instant::now();
    let err = env.pull_err(&["--timeout", "2", &format!("{}/slowblob:1", reg.host())]);
    let took = start.elapsed();
    assert!(
        err.contains(&layer_digest) && err.contains("KiB/s") && err.contains("gave up"),
        "{err}"
    );
    assert!(took < Duration::from_secs(60), "took {took:?}");
    env.assert_nothing_tagged_nor_left();

    // Negative control: trickled fast enough to finish inside the bounds, both pull.
    let fast = Duration::from_millis(2);
    let mb = manifest_bytes.clone();
    reg.answer(move |r| {
        r.path.contains("/quick/manifests/").then(|| {
            Response::new(
                200,
                Body::Trickle {
                    bytes: mb.clone(),
                    delay: fast,
                },
            )
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
        })
    });
    let env = StoreEnv::new();
    let (_, digest) = env.pull_ok(&["--timeout", "2", &format!("{}/quick:1", reg.host())]);
    assert_eq!(digest, valid);
}

#[test]
fn token_replies_and_error_bodies_are_bounded() {
    let (reg, want) = with_valid_image();
    let realm = format!("http://{}/token", reg.host());
    // Behind a bearer challenge whose token service never stops talking.
    let challenge = format!(r#"Bearer realm="{realm}",service="fake""#);
    reg.answer(move |r| {
        (r.path.starts_with("/v2/private/") && !r.headers.contains_key("authorization")).then(
            || Response::new(401, Body::Bytes(Vec::new())).header("WWW-Authenticate", &challenge),
        )
    });
    reg.answer(|r| r.path.starts_with("/token").then(|| Response::endless(200)));
    // Error pages that never end.
    reg.answer(|r| r.path.contains("/missing/").then(|| Response::endless(404)));
    reg.answer(|r| r.path.contains("/broken/").then(|| Response::endless(500)));

    let env = StoreEnv::new();
    let (out, peak, took) = pull_measured(&env, &[&format!("{}/private:1", reg.host())]);
    let err = error_line("pull", &["private"], &out);
    assert!(
        err.contains("token") && err.contains("larger than 1 MiB"),
        "{err}"
    );
    assert!(peak < MEMORY_BOUND_KIB, "token: {peak} KiB");
    assert!(took < Duration::from_secs(20), "token: {took:?}");

    let (out, peak, took) = pull_measured(&env, &[&format!("{}/missing:1", reg.host())]);
    let err = error_line("pull", &["missing"], &out);
    assert!(err.contains("not found"), "{err}");
    assert!(peak < MEMORY_BOUND_KIB, "404: {peak} KiB");
    assert!(took < Duration::from_secs(20), "404: {took:?}");

    let (out, peak, took) = pull_measured(&env, &[&format!("{}/broken:1", reg.host())]);
    let err = error_line("pull", &["broken"], &out);
    assert!(
        err.contains("HTTP 500") && err.contains("gave up after 5 attempts"),
        "{err}"
    );
    assert!(
        err.len() < 400 && err.contains('…'),
        "the registry's message is cut short: {err}"
    );
    assert!(peak < MEMORY_BOUND_KIB, "500: {peak} KiB");
    assert!(took < Duration::from_secs(30), "500: {took:?}");
    env.assert_nothing_tagged_nor_left();

    // Negative control: the same registry, where it behaves.
    let (_, digest) = env.pull_ok(&[&format!("{}/ok:1", reg.host())]);
    assert_eq!(digest, want);
}

/// docker and podman refuse these at pull; so does imgtool, saying which check failed,
/// and tags nothing (before, they were tagged and then broke `imgtool images` for the
/// whole store).
#[test]
fn invalid_images_are_refused_at_pull_and_nothing_is_tagged() {
    let (reg, want) = with_valid_image();
    let (tar, diff) = small_layer();
    let other_diff = images::digest(b"something else");
    let no_rootfs = serde_json::to_vec(&json!({
        "architecture": images::host_arch(), "os": "linux", "config": {}
    }))
    .unwrap();
    // (repository, config, layers, what the error must say)
    type Case = (&'static str, Vec<u8>, Vec<Vec<u8>>, String);
    let cases: Vec<Case> = vec![
        (
            "notjson",
            b"this is not json {".to_vec(),
            vec![tar.clone()],
            "is not JSON".into(),
        ),
        (
            "norootfs",
            no_rootfs,
            vec![tar.clone()],
            "has no rootfs".into(),
        ),
        (
            "count",
            config_for(&[diff.clone(), diff.clone()]),
            vec![tar.clone()],
            "lists 2 diff_ids for the manifest's 1 layers".into(),
        ),
        (
            "mismatch",
            config_for(std::slice::from_ref(&other_diff)),
            vec![tar.clone()],
            format!(
                "uncompresses to {diff}, but the image config's diff_id for it is {other_diff}"
            ),
        ),
        (
            "notatar",
            config_for(&[images::digest(
                b"\x01\x02garbage \xff\xfe".repeat(100).as_slice(),
            )]),
            vec![b"\x01\x02garbage \xff\xfe".repeat(100)],
            "is not a valid tar archive".into(),
        ),
    ];
    for (repo, config, layers, why) in &cases {
        let manifest = reg.put_image(&format!("{repo}:1"), config, layers);
        for extra in [&[][..], &["--no-unpack"][..]] {
            let env = StoreEnv::new();
            let mut args = extra.to_vec();
            let reference = format!("{}/{repo}:1", reg.host());
            args.push(&reference);
            let err = env.pull_err(&args);
            assert!(err.contains(why), "{repo} {extra:?}: {err}");
            assert!(
                err.contains(&format!("{}/{repo}:1", reg.host())),
                "names the image: {err}"
            );
            assert!(
                !err.contains('\u{fffd}') && !err.contains("garbage"),
                "no raw bytes: {err}"
            );
            if *repo == "mismatch" || *repo == "notatar" {
                assert!(err.contains("layer 1 of 1"), "says which layer: {err}");
            }
            env.assert_nothing_tagged_nor_left();
            let images = env.run(&["images"]);
            assert!(images.status.success(), "images after a refused pull");
        }
        let _ = manifest;
    }
    // Negative control: a valid image from the same registry pulls and bundles.
    let env = StoreEnv::new();
    let (_, digest) = env.pull_ok(&[&format!("{}/ok:1", reg.host())]);
    assert_eq!(digest, want);
}

/// One unreadable image never stops `images` from listing the others: it is listed with
/// its problem.
#[test]
fn images_lists_every_entry_and_a_damaged_one_with_its_problem() {
    let (reg, _) = with_valid_image();
    let mut l = Layer::new();
    l.file("second.txt", b"second\n", 0o644);
    let tar2 = l.finish();
    reg.put_image("two:1", &config_for(&[images::digest(&tar2)]), &[tar2]);
    let env = StoreEnv::new();
    env.pull_ok(&[&format!("{}/ok:1", reg.host())]);
    env.pull_ok(&[&format!("{}/two:1", reg.host())]);
    let listed = |env: &StoreEnv| {
        let out = env.run(&["images"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    // Negative control: both readable, neither damaged.
    let (table, _) = listed(&env);
    assert_eq!(table.lines().count(), 3, "{table}");
    assert!(!table.contains("damaged"), "{table}");

    // The config of two:1 changes on disk.
    let inspect = spec_tests::imgtool_store::inspected(
        env.run(&["inspect", &format!("{}/two:1", reg.host())])
            .stdout,
    );
    let config = inspect["Id"].as_str().unwrap().to_string();
    let path = env
        .store()
        .join("blobs/sha256")
        .join(&config["sha256:".len()..]);
    std::fs::write(&path, b"{}").unwrap();
    let (table, stderr) = listed(&env);
    assert_eq!(table.lines().count(), 3, "{table}");
    let damaged: Vec<&str> = table.lines().filter(|l| l.contains("damaged")).collect();
    assert_eq!(damaged.len(), 1, "{table}");
    assert!(
        damaged[0].contains("two")
            && damaged[0].contains(&config)
            && damaged[0].contains("changed on disk"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.contains("ok") && !l.contains("damaged")),
        "{table}"
    );
    assert!(
        stderr.contains("1 of 2 stored images cannot be read"),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&env.run(&["images", "--format", "json"]).stdout).unwrap();
    let problems: Vec<&serde_json::Value> = json
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["problem"].is_string())
        .collect();
    assert_eq!(problems.len(), 1, "{json}");
}

/// What users typed wrong gets an error in words, never an HTTP client's internals.
#[test]
fn bad_references_and_registries_files_are_explained() {
    let env = StoreEnv::new();
    let err = env.pull_err(&["127.0.0.1:99999/busybox"]);
    assert!(err.contains("invalid registry port 99999"), "{err}");
    assert!(
        !err.contains("Generic error") && !err.contains("Some("),
        "{err}"
    );
    // A mirror without a scheme is refused, as documented (http or https is not guessed).
    std::fs::write(
        env.dir.path().join("registries.json"),
        r#"{"registry-mirrors": ["127.0.0.1:5000"]}"#,
    )
    .unwrap();
    let err = env.pull_err(&["busybox"]);
    assert!(
        err.contains("registries.json") && err.contains("127.0.0.1:5000") && err.contains("scheme"),
        "{err}"
    );
    // Negative control: with its scheme the same mirror is accepted (the pull then fails
    // only for want of a registry there).
    std::fs::write(
        env.dir.path().join("registries.json"),
        r#"{"registry-mirrors": ["http://127.0.0.1:1"]}"#,
    )
    .unwrap();
    let err = env.pull_err(&["--timeout", "1", "localhost:1/x"]);
    assert!(!err.contains("scheme"), "{err}");
}
