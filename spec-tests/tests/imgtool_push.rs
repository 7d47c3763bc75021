//! `imgtool push` against a real docker-registry on 127.0.0.1: what the registry serves
//! afterwards is the stored image byte for byte (same manifest digest, same layers, as
//! skopeo sees it); blobs the registry has are not sent again, blobs another repository
//! of the registry has are mounted, big blobs go in several chunks, transient failures
//! are retried, credentials come from the auth file; and the issue-5 round trip: pull →
//! bundle → a container changes files → commit → push → pull into an empty store →
//! bundle shows exactly the changed tree. A push killed with -9 leaves the store intact.
//!
//! Requests are observed through a recording proxy (spec_tests::faulty_proxy) whose port
//! is the registry part of the references, so what the client asked for is visible.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bins;
use spec_tests::container::{unique_id, Runtime};
use spec_tests::faulty_proxy::{Fault, FaultyProxy};
use spec_tests::images::{self, Compression, Image, Layer};
use spec_tests::imgtool_store::{error_line, result_line, StoreEnv};
use spec_tests::registry::{free_port, Registry};
use spec_tests::registry_variants::{TokenServer, VariantRegistry, REFRESH_TOKEN};
use spec_tests::rss::PeakRss;
use spec_tests::tree::{assert_same, listing};
use tempfile::TempDir;

/// A store, a registries config and a docker config dir of one test, all in a temp dir,
/// so nothing from the machine (~/.docker, /etc/imgtool) leaks in: the shared
/// [`StoreEnv`], with push's own helpers.
struct Env(StoreEnv);

impl std::ops::Deref for Env {
    type Target = StoreEnv;
    fn deref(&self) -> &StoreEnv {
        &self.0
    }
}

impl Env {
    fn new() -> Self {
        Self(StoreEnv::new())
    }

    /// Runs imgtool and expects `<name> <digest>` as the one stdout line, nothing on stderr.
    fn ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(args);
        assert!(
            out.stderr.is_empty() || !out.status.success(),
            "no progress output when stderr is not a terminal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        result_line(args.first().copied().unwrap_or_default(), &args[1..], &out)
    }

    fn push_ok(&self, args: &[&str]) -> (String, String) {
        let mut all = vec!["push"];
        all.extend_from_slice(args);
        self.ok(&all)
    }

    /// Pushes and expects the one-line failure; returns the line.
    fn push_err(&self, args: &[&str]) -> String {
        let mut all = vec!["push"];
        all.extend_from_slice(args);
        error_line("push", args, &self.run(&all))
    }

    /// Puts `image` into the store as `name` (offline: an OCI layout copied by skopeo);
    /// returns the stored manifest digest.
    fn store_image(&self, image: &Image, name: &str) -> String {
        let layout = self.dir.path().join(format!("layout-{}", unique_id("l")));
        image.write_layout(&layout, "t");
        self.copy_into_store(&format!("oci:{}:t", layout.display()), name, false);
        self.stored(name)["Digest"].as_str().unwrap().to_string()
    }

    fn copy_into_store(&self, source: &str, name: &str, all: bool) {
        // The store exists as imgtool makes it (imgtool/tmp and locks), then skopeo adds.
        self.run(&["images"]);
        let mut cmd = Command::new("skopeo");
        cmd.args(["copy", "-q"]);
        if all {
            cmd.arg("--all");
        }
        let out = cmd
            .arg(source)
            .arg(format!("oci:{}:{name}", self.store().display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "skopeo copy: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `skopeo inspect oci:STORE:NAME` (must succeed).
    fn stored(&self, name: &str) -> Value {
        skopeo_json(&[
            "inspect".to_string(),
            format!("oci:{}:{name}", self.store().display()),
        ])
    }

    /// The tags in the store's index.json (which must be valid JSON).
    fn tags(&self) -> Vec<String> {
        let text = std::fs::read(self.store().join("index.json")).unwrap();
        let index: Value = serde_json::from_slice(&text).expect("index.json is valid JSON");
        index["manifests"]
            .as_array()
            .expect("manifests array")
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(String::from)
            .collect()
    }

    fn write_config(&self, config: Value) {
        std::fs::write(self.dir.path().join("registries.json"), config.to_string()).unwrap();
    }

    fn write_auth(&self, file: &str, host: &str, user: &str, password: &str) -> PathBuf {
        use base64::Engine as _;
        let path = self.dir.path().join(file);
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        std::fs::write(&path, json!({"auths": {host: {"auth": auth}}}).to_string()).unwrap();
        path
    }
}

/// skopeo with `args`, expecting success and JSON on stdout.
fn skopeo_json(args: &[String]) -> Value {
    let out = Command::new("skopeo").args(args).output().expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `skopeo inspect [extra] docker://HOST/REPO_REF` without TLS verification.
fn remote(host: &str, repo_ref: &str, extra: &[&str]) -> Value {
    let mut args: Vec<String> = vec!["inspect".into(), "--tls-verify=false".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.push(format!("docker://{host}/{repo_ref}"));
    skopeo_json(&args)
}

/// The registry's manifest bytes' digest for `repo_ref`.
fn remote_digest(host: &str, repo_ref: &str, creds: Option<&str>) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some(c) = creds {
        cmd.arg(format!("--creds={c}"));
    }
    let out = cmd
        .arg(format!("docker://{host}/{repo_ref}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "skopeo inspect --raw {repo_ref}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    images::digest(&out.stdout)
}

/// A proxy that only records (its fault never matches).
fn recording_proxy(reg: &Registry) -> FaultyProxy {
    FaultyProxy::start(reg.port(), Fault::Status(500), "/never/matches/")
}

/// Request lines (first line of each head) seen by `proxy` that start with `method`.
fn lines(proxy: &FaultyProxy, method: &str) -> Vec<String> {
    proxy
        .requests()
        .iter()
        .filter_map(|r| r.lines().next().map(String::from))
        .filter(|l| l.starts_with(&format!("{method} ")))
        .collect()
}

/// The PUTs that complete a blob upload (each carries a whole blob).
fn blob_puts(proxy: &FaultyProxy) -> Vec<String> {
    lines(proxy, "PUT")
        .into_iter()
        .filter(|l| l.contains("/blobs/uploads/"))
        .collect()
}

/// Blob-upload requests (starting or continuing an upload, or a mount).
fn upload_requests(proxy: &FaultyProxy) -> Vec<String> {
    proxy
        .requests()
        .iter()
        .filter_map(|r| r.lines().next().map(String::from))
        .filter(|l| l.contains("/blobs/uploads/"))
        .collect()
}

/// Deterministic incompressible bytes (xorshift), for layers bigger than one chunk.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// busybox plus an uncompressed layer holding `mib` MiB of noise.
fn big_image(mib: usize, seed: u64) -> Image {
    let mut l = Layer::new();
    l.dir("data", 0o755)
        .file("data/noise", &noise(mib << 20, seed), 0o644);
    Image::new(
        vec![
            (images::busybox_layer(), Compression::Gzip),
            (l.finish(), Compression::None),
        ],
        &["sh"],
    )
}

#[test]
fn push_sends_the_stored_image_byte_for_byte() {
    let reg = Registry::start();
    let env = Env::new();
    let want = env.store_image(&images::multi_layer(), "localhost/multi:1");
    let dest = format!("{}/multi:v1", reg.host());
    let (name, digest) = env.push_ok(&["localhost/multi:1", &dest]);
    assert_eq!(name, dest);
    assert_eq!(digest, want, "the manifest is pushed as stored");
    assert_eq!(remote_digest(&reg.host(), "multi:v1", None), want);
    let inspect = remote(&reg.host(), "multi:v1", &[]);
    assert_eq!(inspect["Digest"], want);
    assert_eq!(
        inspect["Layers"],
        env.stored("localhost/multi:1")["Layers"],
        "the same layer blobs"
    );
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 4);

    // Without DEST the image goes where its name says; the registry name is normalized.
    let own = format!("{}/own", reg.host());
    let out = env.run(&["tag", "localhost/multi:1", &own]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (name, digest) = env.push_ok(&[&own]);
    assert_eq!(name, format!("{own}:latest"));
    assert_eq!(digest, want);

    // What was pushed pulls back as the same image.
    let other = Env::new();
    let (_, pulled) = other.ok(&["pull", &format!("{}/multi:v1", reg.host())]);
    assert_eq!(pulled, want);
}

#[test]
fn a_second_push_sends_no_blob_and_another_repository_mounts_them() {
    let reg = Registry::start();
    let proxy = recording_proxy(&reg);
    let env = Env::new();
    let want = env.store_image(&Image::busybox(), "localhost/bb:1");
    let blobs = 2; // config and one layer

    env.push_ok(&["localhost/bb:1", &format!("{}/a:1", proxy.host())]);
    assert_eq!(
        blob_puts(&proxy).len(),
        blobs,
        "first push uploads each blob: {:#?}",
        proxy.requests()
    );

    let proxy2 = recording_proxy(&reg);
    let (_, digest) = env.push_ok(&["localhost/bb:1", &format!("{}/a:1", proxy2.host())]);
    assert_eq!(digest, want);
    assert!(
        upload_requests(&proxy2).is_empty(),
        "second push uploads nothing: {:#?}",
        proxy2.requests()
    );
    assert_eq!(lines(&proxy2, "HEAD").len(), blobs, "asks for each blob");
    assert_eq!(
        lines(&proxy2, "PUT").len(),
        1,
        "only the manifest is PUT: {:?}",
        lines(&proxy2, "PUT")
    );

    // Another repository of the same registry: blobs are mounted from the first.
    let (_, digest) = env.push_ok(&["localhost/bb:1", &format!("{}/b:1", proxy.host())]);
    assert_eq!(digest, want);
    let uploads = upload_requests(&proxy);
    let mounts: Vec<&String> = uploads
        .iter()
        .filter(|l| l.contains("/v2/b/") && l.contains("mount=sha256") && l.contains("from=a"))
        .collect();
    assert_eq!(mounts.len(), blobs, "{uploads:#?}");
    assert!(
        !blob_puts(&proxy).iter().any(|l| l.contains("/v2/b/")),
        "nothing uploaded to b: {uploads:#?}"
    );
    assert_eq!(remote_digest(&reg.host(), "b:1", None), want);
}

#[test]
fn blobs_pulled_from_one_repository_are_mounted_into_another() {
    let reg = Registry::start();
    let layout = tempfile::tempdir().unwrap();
    Image::busybox().write_layout(layout.path(), "t");
    reg.push_with_skopeo(&format!("oci:{}:t", layout.path().display()), "src:1");
    let proxy = recording_proxy(&reg);
    let env = Env::new();
    let (name, want) = env.ok(&["pull", &format!("{}/src:1", proxy.host())]);
    let (_, digest) = env.push_ok(&[&name, &format!("{}/dst:1", proxy.host())]);
    assert_eq!(digest, want);
    let uploads = upload_requests(&proxy);
    assert!(
        uploads
            .iter()
            .filter(|l| l.contains("mount="))
            .all(|l| l.contains("from=src")),
        "{uploads:#?}"
    );
    assert_eq!(
        uploads.iter().filter(|l| l.contains("mount=")).count(),
        2,
        "config and layer mounted: {uploads:#?}"
    );
    assert!(blob_puts(&proxy).is_empty(), "{uploads:#?}");
    assert_eq!(remote_digest(&reg.host(), "dst:1", None), want);
}

/// Each blob goes in one request (a session POST, then one PUT carrying the whole blob,
/// as containerd pushes; not oci-client's PATCH per 4 MiB), streamed from the store
/// rather than read into memory first.
#[test]
fn each_blob_goes_in_one_request_streamed_from_the_store() {
    let reg = Registry::start();
    let proxy = recording_proxy(&reg);
    let env = Env::new();
    let want = env.store_image(&big_image(64, 7), "localhost/big:1");
    let stored = env.stored("localhost/big:1");
    let out = env
        .cmd()
        .args([
            "push",
            "localhost/big:1",
            &format!("{}/big:1", proxy.host()),
        ])
        .output_with_peak_rss();
    assert!(
        out.0.status.success(),
        "{}",
        String::from_utf8_lossy(&out.0.stderr)
    );
    let puts: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("PUT ") && r.contains("/blobs/uploads/"))
        .collect();
    // The 64 MiB layer, the busybox layer and the config: one PUT each, no PATCH.
    assert_eq!(puts.len(), 3, "{puts:#?}");
    assert!(lines(&proxy, "PATCH").is_empty(), "{:#?}", proxy.requests());
    let biggest = puts
        .iter()
        .filter_map(|p| {
            p.to_ascii_lowercase().lines().find_map(|l| {
                l.strip_prefix("content-length: ")?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
        })
        .max()
        .unwrap_or(0);
    assert!(
        biggest >= 64 << 20,
        "the big layer in one request ({biggest} bytes at most): {puts:#?}"
    );
    // Streamed: the 64 MiB layer never sits in memory at once.
    assert!(
        out.1 < 48 * 1024,
        "imgtool push peaked at {} KiB of memory for a 64 MiB layer",
        out.1
    );
    let inspect = remote(&reg.host(), "big:1", &[]);
    assert_eq!(inspect["Digest"], want);
    assert_eq!(inspect["Layers"], stored["Layers"]);
    let other = Env::new();
    assert_eq!(
        other.ok(&["pull", &format!("{}/big:1", reg.host())]).1,
        want
    );
}

#[test]
fn transient_failures_during_an_upload_are_retried() {
    let reg = Registry::start();
    for code in [503, 429] {
        let env = Env::new();
        let want = env.store_image(&Image::busybox(), "localhost/bb:1");
        let proxy = FaultyProxy::start_any_method(
            reg.port(),
            Fault::Status(code),
            &format!("PUT /v2/retry{code}/blobs/uploads/"),
        );
        let dest = format!("{}/retry{code}:1", proxy.host());
        let (_, digest) = env.push_ok(&["localhost/bb:1", &dest]);
        assert_eq!(digest, want);
        // One upload failed; its blob got a new upload session and was sent again.
        assert_eq!(blob_puts(&proxy).len(), 3, "{:#?}", proxy.requests());
        assert_eq!(
            lines(&proxy, "POST").len(),
            3,
            "a new session: {:#?}",
            proxy.requests()
        );
        assert_eq!(
            remote_digest(&reg.host(), &format!("retry{code}:1"), None),
            want
        );
    }
}

#[test]
fn index_with_all_its_images_is_pushed_whole() {
    let reg = Registry::start();
    let env = Env::new();
    let mut amd = Image::busybox();
    amd.architecture = "amd64".into();
    let mut arm = Image::busybox();
    arm.architecture = "arm64".into();
    arm.config["Cmd"] = json!(["echo", "arm"]);
    let layout = env.dir.path().join("multi");
    let (index_digest, manifests) = images::write_index_layout(&layout, "m", &[amd, arm]);
    env.copy_into_store(
        &format!("oci:{}:m", layout.display()),
        "localhost/multi:1",
        true,
    );
    let (_, digest) = env.push_ok(&["localhost/multi:1", &format!("{}/multi:1", reg.host())]);
    assert_eq!(digest, index_digest);
    assert_eq!(remote_digest(&reg.host(), "multi:1", None), index_digest);
    for m in &manifests {
        assert_eq!(&remote_digest(&reg.host(), &format!("multi@{m}"), None), m);
    }
}

#[test]
fn credentials_from_the_auth_file_and_a_clear_error_without() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    let env = Env::new();
    let want = env.store_image(&Image::busybox(), "localhost/bb:1");
    let dest = format!("{}/private:1", reg.host());

    let err = env.push_err(&["localhost/bb:1", &dest]);
    assert!(
        err.contains("unauthorized") && err.contains(&reg.host()) && err.contains("--authfile"),
        "{err}"
    );
    let bad = env.write_auth("bad.json", &reg.host(), "alice", "wrong");
    let err = env.push_err(&["--authfile", bad.to_str().unwrap(), "localhost/bb:1", &dest]);
    assert!(
        err.contains("unauthorized") && err.contains("rejected"),
        "{err}"
    );

    let good = env.write_auth("auth.json", &reg.host(), "alice", "s3cret");
    let (_, digest) = env.push_ok(&[
        "--authfile",
        good.to_str().unwrap(),
        "localhost/bb:1",
        &dest,
    ]);
    assert_eq!(digest, want);
    assert_eq!(
        remote_digest(&reg.host(), "private:1", Some("alice:s3cret")),
        want
    );
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let tokens = TokenServer::start("alice", "s3cret", &["private"]);
    let reg = VariantRegistry::with_token_auth(&tokens);
    let env = Env::new();
    let want = env.store_image(&Image::busybox(), "localhost/bb:1");
    let dest = format!("{}/private:1", reg.host());
    let good = env.write_auth("auth.json", &reg.host(), "alice", "s3cret");
    let out = env.run(&[
        "push",
        "--authfile",
        good.to_str().unwrap(),
        "localhost/bb:1",
        &dest,
    ]);
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
    assert_eq!(
        remote_digest(&reg.host(), "private:1", Some("alice:s3cret")),
        want
    );
    let err = env.push_err(&["localhost/bb:1", &dest]);
    assert!(
        err.contains("unauthorized") && err.contains(&reg.host()),
        "{err}"
    );

    // An identity token is exchanged for a token scoped to pull and push.
    let id = env.dir.path().join("identity.json");
    std::fs::write(
        &id,
        json!({"auths": {reg.host(): {"identitytoken": REFRESH_TOKEN}}}).to_string(),
    )
    .unwrap();
    let dest2 = format!("{}/private:2", reg.host());
    let out = env.run(&[
        "push",
        "--authfile",
        id.to_str().unwrap(),
        "localhost/bb:1",
        &dest2,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        remote_digest(&reg.host(), "private:2", Some("alice:s3cret")),
        want
    );
    let post = tokens
        .requests()
        .into_iter()
        .find(|r| r.starts_with("POST "))
        .expect("a refresh-token request");
    assert!(
        post.contains("scope=repository%3Aprivate%3Apull%2Cpush"),
        "{post}"
    );
}

#[test]
fn unreachable_registry_unknown_image_and_bad_destination_are_one_line_errors() {
    let env = Env::new();
    env.store_image(&Image::busybox(), "localhost/bb:1");
    let host = format!("127.0.0.1:{}", free_port());
    let err = env.push_err(&["localhost/bb:1", &format!("{host}/x:1")]);
    assert!(
        err.contains(&host) && err.contains("cannot reach registry"),
        "{err}"
    );
    let err = env.push_err(&["localhost/nothing:1", &format!("{host}/x:1")]);
    assert!(
        err.contains("localhost/nothing:1") && err.contains("no image"),
        "{err}"
    );
    let err = env.push_err(&["localhost/bb:1", "Bad/Name"]);
    assert!(err.contains("invalid image reference"), "{err}");
    assert_eq!(env.tags(), ["localhost/bb:1"]);
}

#[test]
fn progress_bars_on_a_terminal() {
    let reg = Registry::start();
    let env = Env::new();
    env.store_image(&Image::busybox(), "localhost/bb:1");
    let dest = format!("{}/bb:1", reg.host());
    let imgtool = bins::imgtool();
    let store = env.store();
    let argv = [
        imgtool.to_str().unwrap(),
        "--store",
        store.to_str().unwrap(),
        "push",
        "localhost/bb:1",
        &dest,
    ];
    let out = spec_tests::host::in_terminal(&argv, &[]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("pushed"), "a bar per blob: {out:?}");
    let again = spec_tests::host::in_terminal(&argv, &[]);
    assert!(
        again.stdout.contains("already in the registry"),
        "{again:?}"
    );
    let mut quiet = argv.to_vec();
    quiet.insert(3, "-q");
    let out = spec_tests::host::in_terminal(&quiet, &[]);
    assert_eq!(
        out.stdout.trim(),
        format!("{dest} {}", remote_digest(&reg.host(), "bb:1", None))
    );
}

#[test]
fn kill_9_mid_push_leaves_the_store_intact_and_the_next_push_succeeds() {
    let reg = Registry::start();
    let env = Env::new();
    let want = env.store_image(&big_image(12, 3), "localhost/big:1");
    let mut proxy =
        FaultyProxy::start_any_method(reg.port(), Fault::Hold, "PUT /v2/big/blobs/uploads/");
    let push = env
        .cmd()
        .args([
            "push",
            "localhost/big:1",
            &format!("{}/big:1", proxy.host()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut push = ChildGuard(push);
    assert!(
        proxy.wait_stalled(Duration::from_secs(30)),
        "upload under way: {:#?}",
        proxy.requests()
    );
    // gc waits for the push in flight (it reads blobs the whole time).
    let gc = env.cmd().arg("gc").stdout(Stdio::null()).spawn().unwrap();
    let mut gc = ChildGuard(gc);
    spec_tests::wait::until_blocked_on_a_lock(&mut gc.0, "gc (the push in flight)");
    push.0.kill().unwrap(); // SIGKILL
    push.0.wait().unwrap();
    assert!(gc.0.wait().unwrap().success());
    proxy.shutdown();

    assert_eq!(env.tags(), ["localhost/big:1"], "index.json intact");
    assert_eq!(env.stored("localhost/big:1")["Digest"], want);
    let (_, digest) = env.push_ok(&["localhost/big:1", &format!("{}/big:1", reg.host())]);
    assert_eq!(digest, want);
    assert_eq!(remote_digest(&reg.host(), "big:1", None), want);
}

#[test]
fn https_registry_with_a_self_signed_certificate_is_pushed_to_as_insecure() {
    let reg = VariantRegistry::with_tls();
    let env = Env::new();
    let want = env.store_image(&Image::busybox(), "localhost/bb:1");
    // Loopback is insecure by default: TLS is detected and the certificate not checked.
    let out = env.run(&["push", "localhost/bb:1", &format!("{}/bb:1", reg.host())]);
    assert!(
        out.status.success(),
        "{} {}",
        String::from_utf8_lossy(&out.stderr),
        reg.log()
    );
    assert_eq!(remote_digest(&reg.host(), "bb:1", None), want);
}

#[test]
fn mirrors_are_for_reads_only() {
    let origin = Registry::start();
    let mirror = Registry::start();
    let env = Env::new();
    let mut mirrors = serde_json::Map::new();
    mirrors.insert(origin.host(), json!([format!("http://{}", mirror.host())]));
    env.write_config(json!({ "mirrors": mirrors }));
    let want = env.store_image(&Image::busybox(), "localhost/bb:1");
    env.push_ok(&["localhost/bb:1", &format!("{}/bb:1", origin.host())]);
    assert_eq!(remote_digest(&origin.host(), "bb:1", None), want);
    let on_mirror = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/bb:1", mirror.host()))
        .output()
        .unwrap();
    assert!(!on_mirror.status.success(), "the mirror got nothing");
}

#[test]
fn a_corrupt_blob_in_the_store_is_not_pushed() {
    let reg = Registry::start();
    let env = Env::new();
    env.store_image(&Image::busybox(), "localhost/bb:1");
    let layer = env.stored("localhost/bb:1")["Layers"][0]
        .as_str()
        .unwrap()
        .to_string();
    let path = env
        .store()
        .join("blobs/sha256")
        .join(layer.trim_start_matches("sha256:"));
    let mut bytes = std::fs::read(&path).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let err = env.push_err(&["localhost/bb:1", &format!("{}/bb:1", reg.host())]);
    assert!(err.contains(&layer) && err.contains("has digest"), "{err}");
    assert_eq!(
        spec_tests::registry::http_status(reg.port(), &format!("/v2/bb/blobs/{layer}")),
        Some(404),
        "the corrupt blob was not committed"
    );
    assert_eq!(
        spec_tests::registry::http_status(reg.port(), "/v2/bb/manifests/1"),
        Some(404),
        "no manifest"
    );
}

/// Kills a child process left running when a test fails.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Bundles made in a test, unbundled (overlay mounts removed) even when it fails.
struct Bundles {
    dir: TempDir,
    stores: Vec<PathBuf>,
}

impl Bundles {
    fn new() -> Self {
        Self {
            dir: tempfile::Builder::new()
                .prefix("imgtool-push-bundles-")
                .tempdir()
                .unwrap(),
            stores: vec![],
        }
    }

    fn make(&mut self, env: &Env, image: &str, name: &str, extra: &[&str]) -> PathBuf {
        let dir = self.dir.path().join(name);
        // Not about networks: no bridge network on the host (imgtool_network.rs is).
        let mut args = vec!["bundle", image, dir.to_str().unwrap(), "--network", "none"];
        args.extend_from_slice(extra);
        let out = env.run(&args);
        assert!(
            out.status.success(),
            "bundle {image}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.stores.push(env.store());
        dir
    }
}

impl Drop for Bundles {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                for store in &self.stores {
                    let _ = Command::new(bins::imgtool())
                        .arg("--store")
                        .arg(store)
                        .arg("unbundle")
                        .arg(e.path())
                        .output();
                }
            }
        }
        spec_tests::host::unmount_under(self.dir.path());
    }
}

/// What the container does to its root filesystem: creates, modifies and deletes files,
/// removes a directory and replaces another.
const CHANGES: &str = "echo new > /data/added.txt; echo more >> /data/keep.txt; \
    rm /data/sym /data/replaced.txt; rm -rf /data/opaque; mkdir /data/opaque; \
    echo fresh > /data/opaque/only.txt; mkdir -p /srv/app; echo app > /srv/app/run; \
    rm -rf /home; chown 1000:2000 /data/added.txt";

fn run_in(bundle: &Path, script: &str) {
    let rt = Runtime::new();
    let g = rt.guard("push");
    let id = g.id().to_string();
    let cfg = bundle.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&cfg).unwrap()).unwrap();
    v["process"]["args"] = json!(["sh", "-ec", script]);
    std::fs::write(&cfg, serde_json::to_vec(&v).unwrap()).unwrap();
    rt.run(bundle, &id).ok();
}

/// Issue 5: pull → bundle → container changes → commit → push → skopeo sees the extra
/// layer and history → pull into an empty store → bundle has exactly the changed tree.
#[test]
fn pull_bundle_change_commit_push_pull_bundle_round_trip() {
    let reg = Registry::start();
    let layout = tempfile::tempdir().unwrap();
    images::multi_layer().write_layout(layout.path(), "t");
    reg.push_with_skopeo(&format!("oci:{}:t", layout.path().display()), "base:1");
    let base_layers = remote(&reg.host(), "base:1", &[])["Layers"]
        .as_array()
        .unwrap()
        .len();

    let mut bundles = Bundles::new();
    let first = Env::new();
    let (base, _) = first.ok(&["pull", &format!("{}/base:1", reg.host())]);
    let b = bundles.make(&first, &base, "b", &[]);
    run_in(&b, CHANGES);
    let changed = format!("{}/changed:1", reg.host());
    let out = first.run(&["commit", b.to_str().unwrap(), &changed, "-m", "my change"]);
    assert!(
        out.status.success(),
        "commit: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (name, digest) = first.push_ok(&[&changed]);
    assert_eq!(name, changed);

    let inspect = remote(&reg.host(), "changed:1", &[]);
    assert_eq!(inspect["Digest"], digest);
    assert_eq!(
        inspect["Layers"].as_array().unwrap().len(),
        base_layers + 1,
        "one more layer: {inspect}"
    );
    let config = remote(&reg.host(), "changed:1", &["--config"]);
    let last = config["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["comment"], "my change", "{last}");

    let second = Env::new();
    let (pulled, pulled_digest) = second.ok(&["pull", &changed]);
    assert_eq!(pulled_digest, digest);
    let again = bundles.make(&second, &pulled, "again", &["--copy"]);
    // Less the mount targets of the files the bundle bind-mounts (/etc/hosts, hostname,
    // resolv.conf), which commits leave out as docker's do.
    let mut changed_tree = listing(&b.join("rootfs"));
    for generated in ["etc/hosts", "etc/hostname", "etc/resolv.conf"] {
        changed_tree.remove(generated);
    }
    assert_same(
        &listing(&again.join("rootfs")),
        &changed_tree,
        "pushed and pulled vs changed",
    );
}
