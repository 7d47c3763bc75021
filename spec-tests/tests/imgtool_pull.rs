//! `imgtool pull` against a real docker-registry on 127.0.0.1 holding images pushed with
//! skopeo: what ends up in the store is what the registry serves (same manifest digest),
//! readable by skopeo and umoci; mirrors, platforms, compressions, auth, and failures
//! (corrupt blob, registry gone, killed pull, unreachable host, cut connection) behave as
//! a user expects: one clear line, exit 1, nothing tagged, nothing half-written.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::faulty_proxy::{Fault, FaultyProxy};
use spec_tests::images::{self, Compression, Image, Layer};
use spec_tests::imgtool_store::{entry_names, error_line, result_line, StoreEnv};
use spec_tests::registry::{free_port, Registry};
use spec_tests::registry_variants::{TokenServer, VariantRegistry, REFRESH_TOKEN};
use spec_tests::tree;

/// [`StoreEnv`] (a store, a registries config and a docker config dir in a temp dir, so
/// nothing from the machine leaks in) with pull's own helpers.
struct Env(StoreEnv);

impl std::ops::Deref for Env {
    type Target = StoreEnv;
    fn deref(&self) -> &StoreEnv {
        &self.0
    }
}

impl Drop for Env {
    /// Bundles made in a test are overlay mounts: undo them before the temp dir goes.
    fn drop(&mut self) {
        spec_tests::host::unmount_under(self.dir.path());
    }
}

impl Env {
    fn new() -> Self {
        Self(StoreEnv::new())
    }

    fn config_path(&self) -> PathBuf {
        self.dir.path().join("registries.json")
    }

    fn write_config(&self, config: Value) {
        std::fs::write(self.config_path(), config.to_string()).unwrap();
    }

    /// Pulls and expects success, with nothing on stderr (no progress output when stderr
    /// is not a terminal); returns (stored name, digest) from the one stdout line.
    fn pull_ok(&self, args: &[&str]) -> (String, String) {
        let out = self.run(&[&["pull"], args].concat());
        assert!(
            out.stderr.is_empty() || !out.status.success(),
            "no progress output when stderr is not a terminal: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        result_line("pull", args, &out)
    }

    /// Replaces `$DOCKER_CONFIG/config.json` with `config`.
    fn write_docker_config(&self, config: Value) {
        std::fs::write(
            self.dir.path().join("docker/config.json"),
            config.to_string(),
        )
        .unwrap();
    }

    /// Writes the credential helper `docker-credential-NAME`, a shell script with `body`,
    /// into the directory [`Env::cmd_with_cred_helpers`] puts first in PATH.
    fn write_cred_helper(&self, name: &str, body: &str) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.dir.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let path = bin.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// [`Env::cmd`] finding the helpers of [`Env::write_cred_helper`] in PATH.
    fn cmd_with_cred_helpers(&self) -> Command {
        let path = format!(
            "{}:{}",
            self.dir.path().join("bin").display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut c = self.cmd();
        c.env("PATH", path);
        c
    }

    /// The layers unpacked in the store's layer cache (`imgtool/layers/<chain-id>`).
    fn layer_cache(&self) -> Vec<String> {
        entry_names(&self.store().join("imgtool/layers"))
    }

    /// `imgtool bundle NAME DIR [ARGS]` (must succeed); returns DIR's rootfs.
    fn bundle(&self, name: &str, dir: &str, args: &[&str]) -> PathBuf {
        let bundle = self.dir.path().join(dir);
        let out = self
            .cmd()
            .args(["bundle", name])
            .arg(&bundle)
            .args(args)
            .output()
            .expect("imgtool bundle");
        assert!(
            out.status.success(),
            "bundle {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bundle.join("rootfs")
    }

    /// Starts `imgtool pull` of `repo` through a proxy in front of `reg` that stalls the
    /// download of `layer` after `bytes`, and waits until it has stalled. The pull's
    /// stderr is piped.
    fn stalled_pull(
        &self,
        reg: &Registry,
        repo: &str,
        layer: &str,
        bytes: usize,
    ) -> (FaultyProxy, ChildGuard) {
        let proxy = FaultyProxy::start(reg.port(), Fault::StallAfter(bytes), layer);
        let child = self
            .cmd()
            .args(["pull", &format!("{}/{repo}", proxy.host())])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let child = ChildGuard(child);
        assert!(
            proxy.wait_stalled(Duration::from_secs(30)),
            "pull of {repo} under way"
        );
        (proxy, child)
    }

    fn has_blob(&self, digest: &str) -> bool {
        self.store()
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:"))
            .exists()
    }
}

/// A registry holding busybox as `repo_tag`, with its manifest and manifest digest.
fn registry_with_busybox(repo_tag: &str) -> (Registry, Value, String) {
    let reg = Registry::start();
    push(&reg, &Image::busybox(), repo_tag);
    let (manifest, want) = registry_manifest(&reg, repo_tag);
    (reg, manifest, want)
}

/// Pushes `image` to `reg` as `repo_tag` (through a temp OCI layout and skopeo).
fn push(reg: &Registry, image: &Image, repo_tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    image.write_layout(dir.path(), "t");
    reg.push_with_skopeo(&format!("oci:{}:t", dir.path().display()), repo_tag);
}

/// Pushes an OCI layout's `tag` byte for byte: every image of an index (`--all`) and no
/// recompression of uncompressed layers (`--preserve-digests`), which a plain skopeo copy
/// to a registry would do.
fn push_exact(reg: &Registry, layout: &Path, tag: &str, repo_tag: &str) {
    skopeo_push(&reg.host(), None, layout, tag, repo_tag);
}

/// skopeo copy of `oci:LAYOUT:TAG` to `docker://HOST/REPO_TAG`, with credentials if given.
fn skopeo_push(host: &str, creds: Option<&str>, layout: &Path, tag: &str, repo_tag: &str) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["copy", "-q", "--all", "--preserve-digests"])
        .arg("--dest-tls-verify=false");
    if let Some(c) = creds {
        cmd.arg(format!("--dest-creds={c}"));
    }
    let out = cmd
        .arg(format!("oci:{}:{tag}", layout.display()))
        .arg(format!("docker://{host}/{repo_tag}"))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo copy: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The registry's manifest for `repo_ref` (raw bytes) and its digest.
fn registry_manifest(reg: &Registry, repo_ref: &str) -> (Value, String) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((u, p)) = &reg.credentials {
        cmd.arg(format!("--creds={u}:{p}"));
    }
    let out = cmd
        .arg(format!("docker://{}/{repo_ref}", reg.host()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        serde_json::from_slice(&out.stdout).unwrap(),
        images::digest(&out.stdout),
    )
}

/// The digest of the first layer of a manifest.
fn first_layer(manifest: &Value) -> String {
    manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string()
}

fn write_auth_file(path: &Path, key: &str, user: &str, password: &str) {
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let config = json!({"auths": {key: {"auth": auth}}});
    std::fs::write(path, config.to_string()).unwrap();
}

#[test]
fn pull_by_tag_stores_what_the_registry_serves_for_skopeo_and_umoci() {
    let (reg, _, want) = registry_with_busybox("busybox:latest");
    let env = Env::new();
    let (name, digest) = env.pull_ok(&[&format!("{}/busybox", reg.host())]);
    assert_eq!(name, format!("{}/busybox:latest", reg.host()));
    assert_eq!(digest, want);
    assert_eq!(env.tags(), std::slice::from_ref(&name));
    assert_eq!(env.skopeo_inspect(&name)["Digest"], want);
    assert!(env.tmp_files().is_empty());

    let bundle = env.dir.path().join("bundle");
    let out = Command::new("umoci")
        .args([
            "unpack",
            "--image",
            &format!("{}:{name}", env.store().display()),
        ])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "umoci: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());

    // A second pull finds everything present and changes nothing.
    let again = env.pull_ok(&[&name]);
    assert_eq!(again, (name.clone(), want));
    assert_eq!(env.tags(), [name]);
}

#[test]
fn pull_by_digest() {
    let (reg, _, want) = registry_with_busybox("busybox:v1");
    let env = Env::new();
    let reference = format!("{}/busybox@{want}", reg.host());
    let (name, digest) = env.pull_ok(&[&reference]);
    assert_eq!(name, reference);
    assert_eq!(digest, want);
    assert_eq!(env.skopeo_inspect(&name)["Digest"], want);

    let wrong = format!("{}/busybox@sha256:{}", reg.host(), "0".repeat(64));
    let err = Env::new().pull_err(&[&wrong]);
    assert!(err.contains("not found"), "{err}");
}

#[test]
fn docker_hub_names_go_through_registry_mirrors() {
    let (reg, _, want) = registry_with_busybox("library/busybox:latest");
    let env = Env::new();
    env.write_config(json!({"registry-mirrors": [format!("http://{}", reg.host())]}));
    let (name, digest) = env.pull_ok(&["busybox"]);
    assert_eq!(name, "docker.io/library/busybox:latest");
    assert_eq!(digest, want);
    assert_eq!(env.skopeo_inspect(&name)["Digest"], want);
}

#[test]
fn per_registry_mirror_down_falls_back_to_origin_and_a_live_mirror_is_used() {
    let origin = Registry::start();
    push(&origin, &Image::busybox(), "busybox:latest");
    let (_, want) = registry_manifest(&origin, "busybox:latest");
    let env = Env::new();
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut mirrors = serde_json::Map::new();
    mirrors.insert(origin.host(), json!([dead]));
    env.write_config(json!({ "mirrors": mirrors }));
    let (name, digest) = env.pull_ok(&[&format!("{}/busybox", origin.host())]);
    assert_eq!(name, format!("{}/busybox:latest", origin.host()));
    assert_eq!(digest, want);

    // With the origin gone, a live mirror serves the image under the origin's name.
    let mirror = Registry::start();
    push(&mirror, &Image::busybox(), "busybox:latest");
    let mut stopped = origin;
    let origin_host = stopped.host();
    stopped.stop();
    let env = Env::new();
    let mut mirrors = serde_json::Map::new();
    mirrors.insert(
        origin_host.clone(),
        json!([dead, format!("http://{}", mirror.host())]),
    );
    env.write_config(json!({ "mirrors": mirrors }));
    let (name, digest) = env.pull_ok(&[&format!("{origin_host}/busybox")]);
    assert_eq!(name, format!("{origin_host}/busybox:latest"));
    assert_eq!(digest, want);

    // Everything down: the error names the registry and the mirrors tried.
    let mut mirror = mirror;
    mirror.stop();
    let env = Env::new();
    env.write_config(json!({ "mirrors": mirrors }));
    let err = env.pull_err(&[&format!("{origin_host}/busybox")]);
    assert!(
        err.contains(&format!("cannot reach registry {origin_host}")),
        "{err}"
    );
    assert!(err.contains(dead.trim_start_matches("http://")), "{err}");
    assert!(err.contains(&mirror.host()), "{err}");
    env.assert_nothing_tagged_nor_left();
}

#[test]
fn platform_is_chosen_from_a_two_platform_index() {
    let reg = Registry::start();
    let mut amd = Image::busybox();
    amd.architecture = "amd64".into();
    amd.config["Cmd"] = json!(["echo", "amd64"]);
    let mut arm = Image::busybox();
    arm.architecture = "arm64".into();
    arm.variant = Some("v8".into());
    arm.config["Cmd"] = json!(["echo", "arm64"]);
    let dir = tempfile::tempdir().unwrap();
    let (index_digest, manifests) = images::write_index_layout(dir.path(), "multi", &[amd, arm]);
    push_exact(&reg, dir.path(), "multi", "multi:latest");
    let (_, served) = registry_manifest(&reg, "multi:latest");
    assert_eq!(served, index_digest, "skopeo pushed the index unchanged");
    let reference = format!("{}/multi", reg.host());

    for (platform, want) in [
        ("linux/amd64", &manifests[0]),
        ("linux/arm64", &manifests[1]),
    ] {
        let env = Env::new();
        let (_, digest) = env.pull_ok(&["--platform", platform, &reference]);
        assert_eq!(&digest, want, "{platform}");
        assert!(env.has_blob(&index_digest), "the index is stored too");
        let inspect = env.skopeo_inspect(&format!("{reference}:latest"));
        assert_eq!(inspect["Architecture"], platform.split('/').nth(1).unwrap());
    }

    let env = Env::new();
    let (_, digest) = env.pull_ok(&[&reference]);
    let host = if images::host_arch() == "arm64" {
        &manifests[1]
    } else {
        &manifests[0]
    };
    assert_eq!(&digest, host, "default is the host's platform");

    let env = Env::new();
    let err = env.pull_err(&["--platform", "linux/s390x", &reference]);
    assert!(
        err.contains("linux/s390x") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
    env.assert_nothing_tagged_nor_left();
    let err = env.pull_err(&["--platform", "linux", &reference]);
    assert!(err.contains("invalid platform"), "{err}");
}

#[test]
fn gzip_zstd_and_uncompressed_layers() {
    let reg = Registry::start();
    let mut extra = Layer::new();
    extra
        .dir("etc", 0o755)
        .file("etc/zstd.txt", b"zstd layer\n", 0o644);
    let mut plain = Layer::new();
    plain
        .dir("etc", 0o755)
        .file("etc/plain.txt", b"plain layer\n", 0o644);
    let image = Image::new(
        vec![
            (images::busybox_layer(), Compression::Gzip),
            (extra.finish(), Compression::Zstd),
            (plain.finish(), Compression::None),
        ],
        &["sh"],
    );
    let dir = tempfile::tempdir().unwrap();
    let want = image.write_layout(dir.path(), "t");
    push_exact(&reg, dir.path(), "t", "layers:latest");
    let (manifest, served) = registry_manifest(&reg, "layers:latest");
    assert_eq!(served, want, "pushed unchanged");
    let types: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            Compression::Gzip.media_type(),
            Compression::Zstd.media_type(),
            Compression::None.media_type()
        ]
    );
    let env = Env::new();
    let (name, digest) = env.pull_ok(&[&format!("{}/layers", reg.host())]);
    assert_eq!(digest, want);
    for layer in manifest["layers"].as_array().unwrap() {
        assert!(env.has_blob(layer["digest"].as_str().unwrap()), "{layer}");
    }
    let inspect = env.skopeo_inspect(&name);
    assert_eq!(inspect["Digest"], want);
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 3);
}

#[test]
fn corrupt_blob_in_the_registry_is_refused_naming_its_digest() {
    let (reg, manifest, _) = registry_with_busybox("busybox:latest");
    let layer = first_layer(&manifest);
    let hex = layer.trim_start_matches("sha256:");
    let data = reg
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&hex[..2])
        .join(hex)
        .join("data");
    let mut bytes = std::fs::read(&data).expect("layer blob in registry storage");
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff; // same size, different content
    std::fs::write(&data, bytes).unwrap();

    let env = Env::new();
    let err = env.pull_err(&[&format!("{}/busybox", reg.host())]);
    assert!(err.contains(&layer), "names the blob: {err}");
    assert!(err.contains(&reg.host()), "names the registry: {err}");
    env.assert_nothing_tagged_nor_left();
    assert!(!env.has_blob(&layer));
    assert!(
        env.layer_cache().is_empty(),
        "nothing unpacked from unverified bytes: {:?}",
        env.layer_cache()
    );
}

#[test]
fn registry_stopped_mid_pull_is_retried_then_a_clear_error() {
    let (mut reg, manifest, _) = registry_with_busybox("busybox:latest");
    let layer = first_layer(&manifest);
    // The registry is reached through a proxy that holds the layer download half-way;
    // then the registry stops and the proxy port closes: the registry is gone mid-pull.
    let env = Env::new();
    let (mut proxy, mut pull) = env.stalled_pull(&reg, "busybox", &layer, 64 * 1024);
    reg.stop();
    proxy.shutdown();
    let status = pull.0.wait().unwrap();
    assert_eq!(status.code(), Some(1));
    let mut stderr = String::new();
    pull.0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&proxy.host()),
        "names the registry: {stderr}"
    );
    assert!(stderr.contains("cannot reach registry"), "{stderr}");
    assert!(
        stderr.contains("gave up after 5 attempts"),
        "retried: {stderr}"
    );
    env.assert_nothing_tagged_nor_left();
}

#[test]
fn kill_9_mid_pull_leaves_a_consistent_store_and_the_next_pull_succeeds() {
    let reg = Registry::start();
    push(&reg, &Image::busybox(), "first:latest");
    // The same files, zstd-compressed: a layer blob the store does not have yet.
    let second = Image::new(vec![(images::busybox_layer(), Compression::Zstd)], &["sh"]);
    push(&reg, &second, "second:latest");
    let env = Env::new();
    let (first, _) = env.pull_ok(&[&format!("{}/first", reg.host())]);

    let (manifest, want) = registry_manifest(&reg, "second:latest");
    let layer = first_layer(&manifest);
    let (proxy, mut pull) = env.stalled_pull(&reg, "second", &layer, 32 * 1024);
    pull.0.kill().unwrap(); // SIGKILL
    pull.0.wait().unwrap();
    drop(proxy);

    assert_eq!(
        env.tags(),
        std::slice::from_ref(&first),
        "index.json valid, only the earlier tag"
    );
    env.skopeo_inspect(&first);
    let (second, digest) = env.pull_ok(&[&format!("{}/second", reg.host())]);
    assert_eq!(digest, want);
    assert_eq!(env.skopeo_inspect(&second)["Digest"], want);
    env.skopeo_inspect(&first);
}

#[test]
fn credentials_from_authfile_and_registry_auth_file() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    push(&reg, &Image::busybox(), "private:latest");
    let (_, want) = registry_manifest(&reg, "private:latest");
    let reference = format!("{}/private", reg.host());

    let env = Env::new();
    let good = env.dir.path().join("auth.json");
    write_auth_file(&good, &reg.host(), "alice", "s3cret");
    let (_, digest) = env.pull_ok(&["--authfile", good.to_str().unwrap(), &reference]);
    assert_eq!(digest, want);

    let env = Env::new();
    let out = env
        .cmd()
        .env("REGISTRY_AUTH_FILE", &good)
        .args(["pull", &reference])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // docker's own lookup: $DOCKER_CONFIG/config.json, key with a scheme.
    let env = Env::new();
    write_auth_file(
        &env.dir.path().join("docker/config.json"),
        &format!("http://{}", reg.host()),
        "alice",
        "s3cret",
    );
    env.pull_ok(&[&reference]);
}

/// docker's credential helpers: `credHelpers` for one registry, `credsStore` for the
/// rest. The helper here is a script speaking the helper protocol (server URL on stdin,
/// JSON on stdout), which records what it was asked.
#[test]
fn credentials_from_credential_helpers() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    push(&reg, &Image::busybox(), "private:latest");
    let (_, want) = registry_manifest(&reg, "private:latest");
    let reference = format!("{}/private", reg.host());

    let env = Env::new();
    let asked = env.dir.path().join("asked");
    let helper = |name: &str, body: &str| {
        let record = format!(
            "[ \"$1\" = get ] || exit 3\nread -r server\necho \"{name} $server\" >> {}",
            asked.display()
        );
        env.write_cred_helper(name, &format!("{record}\n{body}"));
    };
    helper(
        "good",
        r#"printf '{"ServerURL":"%s","Username":"alice","Secret":"s3cret"}' "$server""#,
    );
    helper("wrong", r#"echo '{"Username":"alice","Secret":"nope"}'"#);
    helper(
        "empty",
        "echo 'credentials not found in native keychain'; exit 1",
    );
    helper("broken", "echo 'the keyring is locked' >&2; exit 1");
    let pull = |config: Value| {
        env.write_docker_config(config);
        env.cmd_with_cred_helpers()
            .args(["pull", &reference])
            .output()
            .unwrap()
    };

    let out = pull(json!({"credHelpers": {reg.host(): "good"}, "credsStore": "wrong"}));
    let (_, digest) = result_line("pull", &[&reference], &out);
    assert_eq!(digest, want);
    let log = std::fs::read_to_string(&asked).unwrap();
    assert_eq!(
        log.trim(),
        format!("good {}", reg.host()),
        "asked the registry's helper only"
    );

    let out = pull(json!({"credsStore": "good"}));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    for (store, says) in [
        ("wrong", &["unauthorized", "rejected"][..]),
        ("empty", &["unauthorized", "no credentials"]),
        (
            "broken",
            &["docker-credential-broken", "the keyring is locked"],
        ),
        ("absent", &["docker-credential-absent is not in PATH"]),
    ] {
        let err = error_line("pull", &[&reference], &pull(json!({ "credsStore": store })));
        assert!(says.iter().all(|s| err.contains(s)), "{store}: {err}");
    }
    assert!(env.tmp_files().is_empty(), "{:?}", env.tmp_files());
}

#[test]
fn missing_or_wrong_credentials_are_a_clear_unauthorized_error() {
    let reg = Registry::start_with_auth("alice", "s3cret");
    push(&reg, &Image::busybox(), "private:latest");
    let reference = format!("{}/private", reg.host());

    let env = Env::new();
    let err = env.pull_err(&[&reference]);
    assert!(
        err.contains("unauthorized") && err.contains(&reg.host()),
        "{err}"
    );
    assert!(
        err.contains("--authfile"),
        "says how to give credentials: {err}"
    );
    env.assert_nothing_tagged_nor_left();

    let bad = env.dir.path().join("bad.json");
    write_auth_file(&bad, &reg.host(), "alice", "wrong");
    let err = env.pull_err(&["--authfile", bad.to_str().unwrap(), &reference]);
    assert!(
        err.contains("unauthorized") && err.contains("rejected"),
        "{err}"
    );
    env.assert_nothing_tagged_nor_left();

    let missing = env.dir.path().join("missing.json");
    let err = env.pull_err(&["--authfile", missing.to_str().unwrap(), &reference]);
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn unreachable_registry_and_unknown_tag_are_one_line_errors() {
    let env = Env::new();
    let host = format!("127.0.0.1:{}", free_port());
    let err = env.pull_err(&[&format!("{host}/busybox")]);
    assert!(
        err.contains(&host) && err.contains("cannot reach registry"),
        "{err}"
    );
    env.assert_nothing_tagged_nor_left();

    let reg = Registry::start();
    push(&reg, &Image::busybox(), "busybox:latest");
    let err = env.pull_err(&[&format!("{}/busybox:nope", reg.host())]);
    assert!(
        err.contains("busybox:nope") && err.contains("not found"),
        "{err}"
    );
    let err = env.pull_err(&[&format!("{}/nothing-here", reg.host())]);
    assert!(err.contains("not found"), "{err}");
    let err = env.pull_err(&["Bad/Name"]);
    assert!(err.contains("invalid image reference"), "{err}");
    env.assert_nothing_tagged_nor_left();
}

#[test]
fn malformed_registries_config_names_the_file() {
    let env = Env::new();
    std::fs::write(env.config_path(), "{\"insecure-registries\": 5}").unwrap();
    let err = env.pull_err(&["busybox"]);
    assert!(
        err.contains("registries.json") && err.contains("invalid type"),
        "{err}"
    );
    std::fs::write(env.config_path(), "{\"registry-mirror\": []}").unwrap();
    let err = env.pull_err(&["busybox"]);
    assert!(
        err.contains("registries.json") && err.contains("registry-mirror"),
        "{err}"
    );
}

#[test]
fn a_cut_download_resumes_with_a_range_request() {
    let (reg, manifest, want) = registry_with_busybox("busybox:latest");
    let layer = first_layer(&manifest);
    let cut = 100_000;
    assert!(manifest["layers"][0]["size"].as_u64().unwrap() > cut as u64 * 2);
    let proxy = FaultyProxy::start(reg.port(), Fault::CutAfter(cut), &layer);
    let env = Env::new();
    let (name, digest) = env.pull_ok(&[&format!("{}/busybox", proxy.host())]);
    assert_eq!(digest, want);
    let layer_requests: Vec<String> = proxy
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET ") && r.contains(&layer))
        .collect();
    assert_eq!(
        layer_requests.len(),
        2,
        "one cut, one resumed: {layer_requests:#?}"
    );
    assert!(
        layer_requests[1]
            .to_ascii_lowercase()
            .contains(&format!("range: bytes={cut}-")),
        "resumed from byte {cut}: {:#?}",
        layer_requests[1]
    );
    assert_eq!(env.skopeo_inspect(&name)["Digest"], want);
    assert!(env.tmp_files().is_empty());
    // The layer was unpacked as it arrived, across the cut: the overlay bundle over that
    // cache has the same tree as a plain copy applied from the stored blob.
    assert_eq!(env.layer_cache().len(), 1, "unpacked while pulling");
    let overlay = env.bundle(&name, "overlay", &[]);
    let copy = env.bundle(&name, "copy", &["--copy"]);
    tree::assert_same(
        &tree::listing(&overlay),
        &tree::listing(&copy),
        "bundle over the cache unpacked during a resumed pull vs --copy",
    );
}

/// As root with overlayfs a pull unpacks each layer into the layer cache while it
/// downloads; `--no-unpack` leaves that to the first `bundle`. Both give the same tree
/// for an image with whiteouts, an opaque dir, hardlinks across layers, a fifo, xattrs.
#[test]
fn pull_unpacks_layers_as_they_arrive_unless_told_not_to() {
    let reg = Registry::start();
    let image = images::multi_layer();
    push(&reg, &image, "multi:latest");
    let (manifest, _) = registry_manifest(&reg, "multi:latest");
    let layers = manifest["layers"].as_array().unwrap().len();
    let reference = format!("{}/multi", reg.host());

    let unpacked = Env::new();
    let (name, _) = unpacked.pull_ok(&[&reference]);
    assert_eq!(
        unpacked.layer_cache().len(),
        layers,
        "one cache dir per layer"
    );
    assert!(
        unpacked.tmp_files().is_empty(),
        "{:?}",
        unpacked.tmp_files()
    );

    let later = Env::new();
    later.pull_ok(&["--no-unpack", &reference]);
    assert!(later.layer_cache().is_empty(), "{:?}", later.layer_cache());

    let ours = tree::listing(&unpacked.bundle(&name, "b", &[]));
    let theirs = tree::listing(&later.bundle(&name, "b", &[]));
    assert_eq!(later.layer_cache().len(), layers, "built by bundle");
    tree::assert_same(&ours, &theirs, "unpacked during pull vs by bundle");
    assert_eq!(ours.get("data/replaced.txt").map(|n| n.kind), Some("file"));
    assert!(!ours.contains_key("data/gone.txt"), "whiteout applied");
}

#[test]
fn https_registry_with_a_self_signed_certificate_is_pulled_as_insecure() {
    let reg = VariantRegistry::with_tls();
    let dir = tempfile::tempdir().unwrap();
    let want = Image::busybox().write_layout(dir.path(), "t");
    skopeo_push(&reg.host(), None, dir.path(), "t", "busybox:latest");
    // Loopback is insecure by default: TLS is detected and the certificate not checked.
    let env = Env::new();
    let (_, digest) = env.pull_ok(&[&format!("{}/busybox", reg.host())]);
    assert_eq!(digest, want, "{}", reg.log());
}

/// A registry behind a token server for user alice, holding busybox as `private:latest`;
/// returns them and the manifest digest.
fn token_auth_registry() -> (TokenServer, VariantRegistry, String) {
    let tokens = TokenServer::start("alice", "s3cret", &["private"]);
    let reg = VariantRegistry::with_token_auth(&tokens);
    let dir = tempfile::tempdir().unwrap();
    let want = Image::busybox().write_layout(dir.path(), "t");
    skopeo_push(
        &reg.host(),
        Some("alice:s3cret"),
        dir.path(),
        "t",
        "private:latest",
    );
    (tokens, reg, want)
}

#[test]
fn bearer_token_auth_through_a_token_server() {
    let (_tokens, reg, want) = token_auth_registry();
    let reference = format!("{}/private", reg.host());

    let env = Env::new();
    let good = env.dir.path().join("auth.json");
    write_auth_file(&good, &reg.host(), "alice", "s3cret");
    let (_, digest) = env.pull_ok(&["--authfile", good.to_str().unwrap(), &reference]);
    assert_eq!(digest, want, "{}", reg.log());

    let env = Env::new();
    let err = env.pull_err(&[&reference]);
    assert!(
        err.contains("unauthorized") && err.contains(&reg.host()),
        "{err}"
    );
    let bad = env.dir.path().join("bad.json");
    write_auth_file(&bad, &reg.host(), "alice", "wrong");
    let err = env.pull_err(&["--authfile", bad.to_str().unwrap(), &reference]);
    assert!(
        err.contains("unauthorized") && err.contains("rejected"),
        "{err}"
    );
    env.assert_nothing_tagged_nor_left();
}

/// An identity token (what `docker login` stores for registries that issue OAuth2
/// refresh tokens) is exchanged at the token realm with `grant_type=refresh_token` for a
/// pull-scoped token, whether it is in config.json or behind a credential helper.
#[test]
fn identity_token_is_exchanged_at_the_token_realm() {
    let (tokens, reg, want) = token_auth_registry();
    let reference = format!("{}/private", reg.host());

    let env = Env::new();
    env.write_docker_config(json!({"auths": {reg.host(): {"identitytoken": REFRESH_TOKEN}}}));
    let (_, digest) = env.pull_ok(&[&reference]);
    assert_eq!(digest, want, "{}", reg.log());
    let posts: Vec<String> = tokens
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("POST "))
        .collect();
    assert_eq!(posts.len(), 1, "{posts:?}");
    for field in [
        "grant_type=refresh_token",
        "scope=repository%3Aprivate%3Apull",
        "service=",
    ] {
        assert!(posts[0].contains(field), "{field} in {}", posts[0]);
    }

    // The same token from a credential helper (user "<token>").
    env.write_cred_helper(
        "sso",
        &format!(
            "cat >/dev/null\necho '{{\"Username\":\"<token>\",\"Secret\":\"{REFRESH_TOKEN}\"}}'"
        ),
    );
    env.write_docker_config(json!({"credsStore": "sso"}));
    let out = env
        .cmd_with_cred_helpers()
        .args(["pull", &reference])
        .output()
        .unwrap();
    assert_eq!(result_line("pull", &[&reference], &out).1, want);

    let fresh = Env::new();
    fresh.write_docker_config(json!({"auths": {reg.host(): {"identitytoken": "expired"}}}));
    let err = fresh.pull_err(&[&reference]);
    assert!(
        err.contains("unauthorized") && err.contains("rejected the identity token"),
        "{err}"
    );
    fresh.assert_nothing_tagged_nor_left();
}

#[test]
fn docker_schema2_image_is_stored_as_oci_and_bundles() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    Image::busybox().write_layout(dir.path(), "t");
    let out = Command::new("skopeo")
        .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:t", dir.path().display()))
        .arg(format!("docker://{}/docker:latest", reg.host()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (manifest, want) = registry_manifest(&reg, "docker:latest");
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let env = Env::new();
    let (name, digest) = env.pull_ok(&[&format!("{}/docker", reg.host())]);
    assert_ne!(digest, want, "the Docker manifest is stored converted");
    let index: Value =
        serde_json::from_slice(&std::fs::read(env.store().join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    // The same blobs: config and layers keep their registry digests.
    let stored: Value = serde_json::from_slice(
        &std::fs::read(
            env.store()
                .join("blobs/sha256")
                .join(&digest["sha256:".len()..]),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(stored["config"]["digest"], manifest["config"]["digest"]);
    assert_eq!(
        stored["layers"][0]["digest"],
        manifest["layers"][0]["digest"]
    );
    assert_eq!(
        stored["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    // skopeo and umoci read it from the store.
    for cmd in [
        vec![
            "skopeo".to_string(),
            "inspect".into(),
            format!("oci:{}:{name}", env.store().display()),
        ],
        vec![
            "umoci".to_string(),
            "unpack".into(),
            "--image".into(),
            format!("{}:{name}", env.store().display()),
            env.dir.path().join("umoci").display().to_string(),
        ],
    ] {
        let out = Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{cmd:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let bundle = env.dir.path().join("bundle");
    let out = env
        .cmd()
        .args(["bundle", &name])
        .arg(&bundle)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
}

#[test]
fn server_errors_and_throttling_are_retried() {
    let (reg, manifest, want) = registry_with_busybox("busybox:latest");
    let layer = first_layer(&manifest);
    for (fault, target) in [
        (Fault::Status(503), "/manifests/latest".to_string()),
        (Fault::Status(429), layer.clone()),
        (Fault::Status(502), layer),
    ] {
        let proxy = FaultyProxy::start(reg.port(), fault, &target);
        let env = Env::new();
        let (_, digest) = env.pull_ok(&[&format!("{}/busybox", proxy.host())]);
        assert_eq!(digest, want, "{fault:?}");
        let asked = proxy
            .requests()
            .iter()
            .filter(|r| r.starts_with("GET ") && r.contains(&target))
            .count();
        assert_eq!(asked, 2, "{fault:?} on {target}: asked again once");
    }
}

#[test]
fn gc_waits_for_a_pull_in_flight() {
    let (reg, manifest, _) = registry_with_busybox("busybox:latest");
    let layer = first_layer(&manifest);
    let env = Env::new();
    let (mut proxy, _pull) = env.stalled_pull(&reg, "busybox", &layer, 64 * 1024);
    let gc = env.cmd().arg("gc").stdout(Stdio::null()).spawn().unwrap();
    let mut gc = ChildGuard(gc);
    // gc waits while a pull is in flight: it is seen blocked on the store's lock.
    spec_tests::wait::until_blocked_on_a_lock(&mut gc.0, "gc");
    // The partial download, and the layer being unpacked from it as it arrives.
    let tmp = env.tmp_files();
    assert_eq!(
        tmp.iter().filter(|f| f.starts_with("download-")).count(),
        1,
        "the partial download is still there: {tmp:?}"
    );
    assert!(
        tmp.iter()
            .all(|f| f.starts_with("download-") || f.starts_with("layer-")),
        "only the pull's own temp files: {tmp:?}"
    );
    proxy.shutdown(); // the pull fails and ends; then gc runs
    let status = gc.0.wait().unwrap();
    assert!(status.success());
    env.assert_nothing_tagged_nor_left();
}

/// Kills a child process left running when a test fails.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
