//! `imgtool pull` through a fault-injecting proxy in front of a real docker-registry:
//! dropped connections, slow and silent bodies, a Content-Length shorter or longer than
//! the body, server errors then success, 429 with Retry-After. Every pull either succeeds
//! with exactly the registry's manifest digest (and only verified blobs in the store), or
//! fails with one clear line, exit 1, nothing tagged and nothing left in `imgtool/tmp`.

use std::time::{Duration, Instant};

use spec_tests::faulty_proxy::{Fault, FaultyProxy};
use spec_tests::images::Image;
use spec_tests::imgtool_store::{push, registry_manifest, StoreEnv};
use spec_tests::registry::Registry;

/// A registry holding busybox, its manifest digest and its (only) layer digest and size.
struct Served {
    reg: Registry,
    digest: String,
    layer: String,
    layer_size: u64,
}

fn serve_busybox() -> Served {
    let reg = Registry::start();
    push(&reg, &Image::busybox(), "busybox:latest");
    let (manifest, digest) = registry_manifest(&reg, "busybox:latest");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let layer_size = manifest["layers"][0]["size"].as_u64().unwrap();
    assert!(
        layer_size > 300_000,
        "a layer big enough to cut: {layer_size}"
    );
    Served {
        reg,
        digest,
        layer,
        layer_size,
    }
}

impl Served {
    /// Pulls through `proxy` and expects the registry's exact image.
    fn pull_ok(&self, proxy: &FaultyProxy, extra: &[&str], what: &str) {
        let env = StoreEnv::new();
        let reference = format!("{}/busybox", proxy.host());
        let mut args: Vec<&str> = extra.to_vec();
        args.push(&reference);
        let (name, digest) = env.pull_ok(&args);
        assert_eq!(digest, self.digest, "{what}: the registry's digest");
        assert_eq!(env.tags(), std::slice::from_ref(&name), "{what}");
        assert_eq!(env.skopeo_inspect(&name)["Digest"], self.digest, "{what}");
        assert!(env.tmp_files().is_empty(), "{what}: {:?}", env.tmp_files());
        env.assert_blobs_verified();
    }

    /// Pulls through `proxy` and expects a clean one-line failure; returns the line.
    fn pull_err(&self, proxy: &FaultyProxy, extra: &[&str], what: &str) -> String {
        let env = StoreEnv::new();
        let reference = format!("{}/busybox", proxy.host());
        let mut args: Vec<&str> = extra.to_vec();
        args.push(&reference);
        let err = env.pull_err(&args);
        assert!(
            err.contains(&proxy.host()),
            "{what}: names the registry: {err}"
        );
        env.assert_nothing_tagged_nor_left();
        env.assert_blobs_verified();
        err
    }
}

#[test]
fn dropped_connections_are_resumed_and_a_persistent_drop_fails_clearly() {
    let s = serve_busybox();
    // Three drops in a row, each after 50 kB more: resumed each time from where it was.
    let proxy = FaultyProxy::start_repeating(s.reg.port(), Fault::CutAfter(50_000), &s.layer, 3);
    s.pull_ok(&proxy, &[], "three drops");
    let gets = proxy.gets_of(&s.layer);
    assert_eq!(gets.len(), 4, "three cut, the fourth completes: {gets:#?}");
    for (i, (_, head)) in gets.iter().enumerate().skip(1) {
        assert!(
            head.to_ascii_lowercase()
                .contains(&format!("range: bytes={}-", 50_000 * i)),
            "attempt {i} resumes at byte {}: {head}",
            50_000 * i
        );
    }

    // Every request drops after 10 kB: retries run out, and the error says so.
    let proxy =
        FaultyProxy::start_repeating(s.reg.port(), Fault::CutAfter(10_000), &s.layer, usize::MAX);
    let err = s.pull_err(&proxy, &[], "persistent drop");
    assert!(err.contains("cannot reach registry"), "{err}");
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    assert!(err.contains(&s.layer), "names the blob: {err}");
}

#[test]
fn a_slow_body_completes_and_a_silent_one_times_out_clearly() {
    let s = serve_busybox();
    // 32 kB every 20 ms: slow, but never silent for long.
    let chunks = s.layer_size / 32_768 + 1;
    let proxy = FaultyProxy::start(
        s.reg.port(),
        Fault::Trickle {
            chunk: 32_768,
            delay: Duration::from_millis(20),
        },
        &s.layer,
    );
    let started = Instant::now();
    s.pull_ok(&proxy, &[], "slow body");
    assert!(
        started.elapsed() >= Duration::from_millis(20 * (chunks - 1)),
        "the body really trickled"
    );
    assert_eq!(proxy.gets_of(&s.layer).len(), 1, "no retry was needed");

    // The body stops after 64 kB and the connection stays open, on every attempt: each
    // attempt times out after --timeout 1, and the pull gives up with a clear line.
    let mut proxy = FaultyProxy::start_repeating(
        s.reg.port(),
        Fault::StallAfter(65_536),
        &s.layer,
        usize::MAX,
    );
    let started = Instant::now();
    let err = s.pull_err(&proxy, &["--timeout", "1"], "silent body");
    let took = started.elapsed();
    proxy.shutdown();
    assert!(err.contains("gave up after 5 attempts"), "{err}");
    assert!(err.contains(&s.layer), "names the blob: {err}");
    assert!(
        took < Duration::from_secs(30),
        "--timeout bounds each attempt: {took:?}"
    );
    assert_eq!(proxy.gets_of(&s.layer).len(), 5, "five attempts");
}

#[test]
fn a_wrong_content_length_never_stores_a_wrong_blob() {
    let s = serve_busybox();
    // Shorter than the body: the client stops early and resumes the rest.
    let proxy = FaultyProxy::start(s.reg.port(), Fault::ContentLengthOff(-100_000), &s.layer);
    s.pull_ok(&proxy, &[], "layer Content-Length too short");
    let gets = proxy.gets_of(&s.layer);
    assert_eq!(gets.len(), 2, "{gets:#?}");
    assert!(
        gets[1]
            .1
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={}-", s.layer_size - 100_000)),
        "resumed after the short body: {}",
        gets[1].1
    );

    // Longer than the body: the connection closes before the promised bytes, yet every
    // byte of the blob arrived; the blob verifies and the pull completes.
    let proxy = FaultyProxy::start(s.reg.port(), Fault::ContentLengthOff(100_000), &s.layer);
    s.pull_ok(&proxy, &[], "layer Content-Length too long");

    // A too-long manifest response is retried.
    let proxy = FaultyProxy::start(s.reg.port(), Fault::ContentLengthOff(50), "/manifests/");
    s.pull_ok(&proxy, &[], "manifest Content-Length too long");

    // A truncated manifest: succeeds on retry or fails clearly, never tags garbage.
    let proxy = FaultyProxy::start(s.reg.port(), Fault::ContentLengthOff(-50), "/manifests/");
    let env = StoreEnv::new();
    let out = env
        .cmd()
        .args(["pull", &format!("{}/busybox", proxy.host())])
        .output()
        .unwrap();
    if out.status.success() {
        let stdout = String::from_utf8(out.stdout).unwrap();
        assert!(stdout.trim_end().ends_with(&s.digest), "{stdout}");
        env.skopeo_inspect(&env.tags()[0]);
    } else {
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        env.assert_nothing_tagged_nor_left();
    }

    // Every response of the layer is 100 kB short: no progress on the resumed requests,
    // the retries run out, and nothing is stored under the blob's digest.
    let proxy = FaultyProxy::start_repeating(
        s.reg.port(),
        Fault::ContentLengthOff(-100_000),
        &s.layer,
        usize::MAX,
    );
    let err = s.pull_err(&proxy, &[], "persistently short");
    assert!(err.contains(&s.layer), "names the blob: {err}");
    assert!(err.contains("gave up after 5 attempts"), "{err}");
}

#[test]
fn server_errors_then_success_and_throttling_with_retry_after() {
    let s = serve_busybox();
    // Two 503s on the layer, two 500s on the manifest: retried until they pass.
    let proxy = FaultyProxy::start_repeating(s.reg.port(), Fault::Status(503), &s.layer, 2);
    s.pull_ok(&proxy, &[], "503 twice on the layer");
    assert_eq!(proxy.gets_of(&s.layer).len(), 3);
    let proxy = FaultyProxy::start_repeating(s.reg.port(), Fault::Status(500), "/manifests/", 2);
    s.pull_ok(&proxy, &[], "500 twice on the manifest");
    assert_eq!(proxy.gets_of("/manifests/").len(), 3);

    // 429 with Retry-After: 1: the next request waits at least that second.
    // (oci-client does not hand out response headers, so imgtool waits at least 1 s after
    // any 429 rather than reading Retry-After; a longer Retry-After is not honoured.)
    let proxy = FaultyProxy::start(s.reg.port(), Fault::Status(429), &s.layer);
    s.pull_ok(&proxy, &[], "429 on the layer");
    let gets = proxy.gets_of(&s.layer);
    assert_eq!(gets.len(), 2);
    let waited = gets[1].0 - gets[0].0;
    assert!(
        waited >= Duration::from_secs(1),
        "waited for Retry-After: {waited:?}"
    );
    let proxy = FaultyProxy::start(s.reg.port(), Fault::Status(429), "/manifests/");
    s.pull_ok(&proxy, &[], "429 on the manifest");

    // A registry that keeps failing: a clear line naming the status, after the retries.
    let proxy =
        FaultyProxy::start_repeating(s.reg.port(), Fault::Status(503), &s.layer, usize::MAX);
    let err = s.pull_err(&proxy, &[], "503 forever");
    assert!(err.contains("503"), "{err}");
    assert!(err.contains("gave up after 5 attempts"), "{err}");
}
