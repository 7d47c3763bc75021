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
use spec_tests::imgtool_store::{
    entry_names, error_line, inspected, push, registry_manifest, result_line, succeeded, StoreEnv,
};
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
        succeeded(
            format!("bundle {name}"),
            self.cmd()
                .args(["bundle", name])
                .arg(&bundle)
                .args(args)
                .output()
                .expect("imgtool bundle"),
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
    succeeded(
        "skopeo copy",
        cmd.arg(format!("oci:{}:{tag}", layout.display()))
            .arg(format!("docker://{host}/{repo_tag}"))
            .output()
            .expect("skopeo"),
    );
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

    let rootfs = tree::umoci_unpack(
        &format!("{}:{name}", env.store().display()),
        &env.dir.path().join("bundle"),
    );
    assert_eq!(rootfs["bin/busybox"].kind, "file");

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

/// A registry image that is one platform's manifest (no index to choose from) whose
/// config says another platform than `--platform` asks for is refused as docker refuses
/// it, naming the reference, the wanted and the actual platform, with nothing tagged and
/// no layer fetched; a matching `--platform` pulls it (the negative control), and so
/// does a pull without `--platform` (bundle then warns).
#[test]
fn platform_of_a_single_manifest_image_must_match() {
    let reg = Registry::start();
    let foreign = if images::host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let mut image = Image::busybox();
    image.architecture = foreign.into();
    push(&reg, &image, "single:1");
    let (manifest, digest) = registry_manifest(&reg, "single:1");
    assert!(manifest.get("manifests").is_none(), "a single manifest");
    let reference = format!("{}/single:1", reg.host());
    let host_p = format!("linux/{}", images::host_arch());
    let foreign_p = format!("linux/{foreign}");

    let env = Env::new();
    let err = env.pull_err(&["--platform", &host_p, &reference]);
    assert_eq!(
        err,
        format!(
            "imgtool: pull {reference}: image with reference {reference} was found but does not match the specified platform: wanted {host_p}, actual: {foreign_p}"
        )
    );
    env.assert_nothing_tagged_nor_left();
    assert!(
        !env.has_blob(&first_layer(&manifest)),
        "the layer was not fetched"
    );
    assert_eq!(env.run(&["inspect", &reference]).status.code(), Some(1));

    // Negative control: the platform the config says pulls, as does arm64's default
    // variant spelled out.
    let (_, d) = env.pull_ok(&["--platform", &foreign_p, &reference]);
    assert_eq!(d, digest);
    if foreign == "arm64" {
        let (_, d) = Env::new().pull_ok(&["--platform", "linux/arm64/v8", &reference]);
        assert_eq!(d, digest);
    }
    // Without --platform a foreign single image still pulls; bundle warns.
    let env = Env::new();
    let (name, d) = env.pull_ok(&[&reference]);
    assert_eq!(d, digest);
    let b = env.dir.path().join("b");
    let out = env.run(&["bundle", &name, b.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let warning = String::from_utf8_lossy(&out.stderr);
    assert!(
        warning.contains("warning") && warning.contains(&foreign_p),
        "{warning}"
    );
}

/// A blob the store already has is reused by a pull only while it is what was verified: a
/// layer whose bytes changed on disk (a bit flipped, even with its mtime put back) or a
/// truncated config is downloaded again, with a warning naming it, and the store then
/// serves the right bytes (save reads them back). Negative control: the same damage with
/// the check turned off (`_IMGTOOL_TEST_UNSAFE=stored-blob-check`, debug builds) is
/// reused silently, the bytes stay wrong, and save refuses them.
#[test]
fn a_damaged_blob_in_the_store_is_downloaded_again_on_pull() {
    let (reg, manifest, digest) = registry_with_busybox("bb:1");
    let reference = format!("{}/bb:1", reg.host());
    let env = Env::new();
    env.pull_ok(&[&reference]);
    let layer = first_layer(&manifest);
    let config = manifest["config"]["digest"].as_str().unwrap().to_string();
    let blob = |d: &str| env.store().join("blobs/sha256").join(&d["sha256:".len()..]);
    let stored_digest = |d: &str| images::digest(&std::fs::read(blob(d)).unwrap());
    let flip_a_bit = |d: &str| {
        use std::os::unix::fs::FileExt;
        let path = blob(d);
        let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut byte = [0u8];
        f.read_at(&mut byte, 1000).unwrap();
        f.write_at(&[byte[0] ^ 0x10], 1000).unwrap();
        f.set_modified(mtime).unwrap();
    };
    let truncate = |d: &str| {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(blob(d))
            .unwrap();
        let len = f.metadata().unwrap().len();
        f.set_len(len - 1).unwrap();
    };
    // A warm pull of an intact store says nothing (pull_ok: stderr empty).
    env.pull_ok(&[&reference]);

    flip_a_bit(&layer);
    truncate(&config);
    let out = env.run(&["pull", &reference]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(result_line("pull", &[], &out).1, digest);
    let warnings = String::from_utf8_lossy(&out.stderr);
    assert!(
        warnings.contains(&format!(
            "imgtool: warning: blob {layer} in the store was damaged (its content has digest sha256:"
        )) && warnings.contains("downloaded it again"),
        "{warnings}"
    );
    assert!(
        warnings.contains(&format!("blob {config} in the store was damaged (it is ")),
        "{warnings}"
    );
    assert_eq!(stored_digest(&layer), layer, "the layer is right again");
    assert_eq!(stored_digest(&config), config, "the config is right again");
    // save reads every blob back, checking it: the store serves the right bytes.
    let save = |format: &str| {
        let archive = env.dir.path().join(format!("{format}.tar"));
        env.run(&[
            "save",
            "--format",
            format,
            &reference,
            "-o",
            archive.to_str().unwrap(),
        ])
    };
    for format in ["docker-archive", "oci-archive"] {
        let out = save(format);
        assert!(out.status.success(), "{format}: {out:?}");
    }

    // Negative control: without the check the damaged layer is reused as it is.
    if !spec_tests::not_run::imgtool_negative_control_has_test_switches() {
        return;
    }
    flip_a_bit(&layer);
    let out = env
        .cmd()
        .env("_IMGTOOL_TEST_UNSAFE", "stored-blob-check")
        .args(["pull", &reference])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TEST-ONLY: protection stored-blob-check is off")
            && !stderr.contains("damaged"),
        "{stderr}"
    );
    assert_ne!(stored_digest(&layer), layer, "the damaged bytes stayed");
    for format in ["docker-archive", "oci-archive"] {
        let err = error_line("save", &[format], &save(format));
        assert!(
            err.contains(&layer) && err.contains("changed on disk"),
            "{format}: {err}"
        );
    }
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
    succeeded(
        "imgtool",
        env.cmd()
            .env("REGISTRY_AUTH_FILE", &good)
            .args(["pull", &reference])
            .output()
            .unwrap(),
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

/// A Docker v2 schema 2 image keeps the registry's manifest, byte for byte, and its
/// digest as its identity: pull prints it, `name@sha256:<registry digest>` finds the image
/// for inspect, save, bundle and push, and push sends the same bytes back. skopeo and
/// umoci still read the store (through the OCI form kept beside it).
#[test]
fn docker_schema2_image_keeps_its_registry_digest_everywhere() {
    let reg = Registry::start();
    let dir = tempfile::tempdir().unwrap();
    Image::busybox().write_layout(dir.path(), "t");
    succeeded(
        "skopeo",
        Command::new("skopeo")
            .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:t", dir.path().display()))
            .arg(format!("docker://{}/docker:latest", reg.host()))
            .output()
            .unwrap(),
    );
    let raw = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{}/docker:latest", reg.host()))
        .output()
        .unwrap()
        .stdout;
    let want = images::digest(&raw);
    let manifest: Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(
        manifest["mediaType"],
        "application/vnd.docker.distribution.manifest.v2+json"
    );
    let env = Env::new();
    let (name, digest) = env.pull_ok(&[&format!("{}/docker", reg.host())]);
    assert_eq!(digest, want, "pull prints the registry's digest");
    assert_eq!(
        std::fs::read(
            env.store()
                .join("blobs/sha256")
                .join(&want["sha256:".len()..])
        )
        .unwrap(),
        raw,
        "the registry's manifest is stored byte for byte"
    );
    // index.json tags the OCI form (for skopeo and umoci), standing for the original.
    let index: Value =
        serde_json::from_slice(&std::fs::read(env.store().join("index.json")).unwrap()).unwrap();
    let tagged = &index["manifests"][0];
    assert_eq!(tagged["annotations"]["io.imgtool.original.digest"], want);
    // Negative control: the OCI form has another digest, which the checks above and
    // below would see if it were taken for the image's identity.
    assert_ne!(tagged["digest"], want);
    assert_eq!(
        tagged["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );

    let by_digest = format!("{}/docker@{want}", reg.host());
    let inspect = inspected(env.run(&["inspect", &by_digest]).stdout);
    assert_eq!(inspect["Digest"], want, "inspect NAME@<registry digest>");
    assert_eq!(
        inspect["RepoDigests"],
        json!([format!("{}/docker@{want}", reg.host())])
    );
    let archive = env.dir.path().join("saved.tar");
    env.ok(&["save", &by_digest, "-o", archive.to_str().unwrap()]);
    let oci_archive = env.dir.path().join("saved-oci.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        &name,
        "-o",
        oci_archive.to_str().unwrap(),
    ]);
    // The oci-archive keeps the identity: loaded elsewhere, the same digest.
    let other = Env::new();
    other.ok(&["load", "-i", oci_archive.to_str().unwrap()]);
    let again = inspected(other.run(&["inspect", &name]).stdout);
    assert_eq!(again["Digest"], want, "identity survives save and load");

    let rootfs = env.bundle(&by_digest, "bundle", &[]);
    assert!(rootfs.join("bin/busybox").is_file());

    // Push sends the registry's manifest back unchanged.
    let out = env.ok(&["push", &by_digest, &format!("{}/copy:1", reg.host())]);
    let (_, pushed) = result_line("push", &[], &out);
    assert_eq!(pushed, want);
    let (_, served) = registry_manifest(&reg, "copy:1");
    assert_eq!(served, want, "the registry has the same bytes");

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
        succeeded(
            format!("{cmd:?}"),
            Command::new(&cmd[0]).args(&cmd[1..]).output().unwrap(),
        );
    }
    // gc keeps the original (only the OCI form is in index.json).
    let out = env.run(&["gc"]);
    assert!(out.status.success());
    assert!(env.has_blob(&want), "gc kept the registry's manifest");
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

/// An amd64 + arm64 index pushed as it is; returns its digest and the two manifests'.
fn registry_with_two_platforms(reg: &Registry, repo_tag: &str, cmd: &str) -> (String, Vec<String>) {
    let mut amd = Image::busybox();
    amd.architecture = "amd64".into();
    amd.config["Cmd"] = json!(["echo", format!("amd64 {cmd}")]);
    let mut arm = Image::busybox();
    arm.architecture = "arm64".into();
    arm.variant = Some("v8".into());
    arm.config["Cmd"] = json!(["echo", format!("arm64 {cmd}")]);
    let dir = tempfile::tempdir().unwrap();
    let (index, manifests) = images::write_index_layout(dir.path(), "multi", &[amd, arm]);
    push_exact(reg, dir.path(), "multi", repo_tag);
    (index, manifests)
}

/// (the host's platform argument and manifest, another platform's and its manifest).
fn host_and_foreign(manifests: &[String]) -> ((&'static str, &str), (&'static str, &str)) {
    if images::host_arch() == "arm64" {
        (
            ("linux/arm64", &manifests[1]),
            ("linux/amd64", &manifests[0]),
        )
    } else {
        (
            ("linux/amd64", &manifests[0]),
            ("linux/arm64", &manifests[1]),
        )
    }
}

/// `pull --all-platforms` keeps the whole index as what the name holds: push and an
/// oci-archive save send all of it, with the registry's digests.
#[test]
fn all_platforms_keeps_the_index_and_push_and_save_send_it_whole() {
    let reg = Registry::start();
    let (index, manifests) = registry_with_two_platforms(&reg, "multi:1", "");
    let reference = format!("{}/multi:1", reg.host());
    let env = Env::new();
    let (name, digest) = env.pull_ok(&["--all-platforms", &reference]);
    assert_eq!(digest, index, "the name holds the index");
    for m in &manifests {
        assert!(env.has_blob(m), "platform {m} stored");
    }
    let inspect = inspected(env.run(&["inspect", &name]).stdout);
    assert_eq!(
        inspect["Architecture"],
        images::host_arch(),
        "this host's platform"
    );

    let out = env.ok(&["push", &name, &format!("{}/copy:1", reg.host())]);
    assert!(
        out.stderr.is_empty(),
        "no note: the whole index went: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(result_line("push", &[], &out).1, index);
    assert_eq!(registry_manifest(&reg, "copy:1").1, index);
    for m in &manifests {
        assert_eq!(&registry_manifest(&reg, &format!("copy@{m}")).1, m);
    }

    let archive = env.dir.path().join("multi.tar");
    env.ok(&[
        "save",
        "--format",
        "oci-archive",
        &name,
        "-o",
        archive.to_str().unwrap(),
    ]);
    let listing = Command::new("tar")
        .arg("-tf")
        .arg(&archive)
        .output()
        .unwrap()
        .stdout;
    let listing = String::from_utf8(listing).unwrap();
    for d in manifests.iter().chain([&index]) {
        assert!(
            listing.contains(&d["sha256:".len()..]),
            "{d} in the archive"
        );
    }
    let other = Env::new();
    assert!(other
        .run(&["load", "-i", archive.to_str().unwrap()])
        .status
        .success());
    let again = inspected(other.run(&["inspect", &name]).stdout);
    assert_eq!(again["Digest"], index, "loaded whole: the index again");

    // Negative control: a one-platform pull holds one manifest, and its push says that
    // only it went.
    let single = Env::new();
    let ((host_p, host_m), _) = host_and_foreign(&manifests);
    let (_, d) = single.pull_ok(&["--platform", host_p, &reference]);
    assert_eq!(d, host_m);
    let out = single.run(&["push", &name, &format!("{}/single:1", reg.host())]);
    assert!(out.status.success());
    assert_eq!(result_line("push", &[], &out).1, host_m);
    // --platform and --all-platforms together are a usage error.
    let out = single.run(&["pull", "--all-platforms", "--platform", host_p, &reference]);
    assert_eq!(out.status.code(), Some(2));
}

/// A pull of another platform of the index a name came from keeps the first platform
/// (the name then holds the index); a pull that does replace an image of another
/// platform says so; bundling an image of another platform warns, as docker does.
#[test]
fn another_platform_is_kept_beside_the_first_or_its_replacement_is_told() {
    let reg = Registry::start();
    let (index, manifests) = registry_with_two_platforms(&reg, "multi:1", "v1");
    let reference = format!("{}/multi:1", reg.host());
    let ((host_p, host_m), (foreign_p, foreign_m)) = host_and_foreign(&manifests);

    let env = Env::new();
    let (name, d) = env.pull_ok(&["--platform", foreign_p, &reference]);
    assert_eq!(d, foreign_m);
    // The foreign image bundles, with docker's warning.
    let b = env.dir.path().join("foreign");
    let out = env.ok(&["bundle", &name, b.to_str().unwrap()]);
    let warning = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        warning.contains("warning")
            && warning.contains(foreign_p)
            && warning.contains("does not match"),
        "{warning}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(b.to_str().unwrap()),
        "bundle says what it made"
    );

    let out = env.ok(&["pull", "--platform", host_p, &reference]);
    let note = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        note.contains("now holds") && note.contains("linux/amd64") && note.contains("linux/arm64"),
        "{note}"
    );
    assert_eq!(
        result_line("pull", &[], &out).1,
        index,
        "the name holds the index now"
    );
    assert!(
        env.has_blob(foreign_m) && env.has_blob(host_m),
        "both platforms kept"
    );
    // This host's platform is what the name means here: no warning.
    let b = env.dir.path().join("host");
    let out = env.run(&["bundle", &name, b.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("warning"),
        "{out:?}"
    );
    let config: Value =
        serde_json::from_slice(&std::fs::read(b.join("config.json")).unwrap()).unwrap();
    assert!(config["process"]["args"][1]
        .as_str()
        .unwrap()
        .starts_with(images::host_arch()));

    // The tag moves upstream to a new index: a pull of one platform replaces the image
    // of the other platform, and says so.
    let env = Env::new();
    env.pull_ok(&["--platform", foreign_p, &reference]);
    let (_, new_manifests) = registry_with_two_platforms(&reg, "multi:1", "v2");
    let ((_, new_host), _) = host_and_foreign(&new_manifests);
    let out = env.ok(&["pull", "--platform", host_p, &reference]);
    let note = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        note.contains("held the") && note.contains(foreign_m) && note.contains("untagged"),
        "{note}"
    );
    assert_eq!(result_line("pull", &[], &out).1, new_host);
}

/// A pull that cannot finish its work fails: on a nearly full store whose blobs fit but
/// whose unpacked layers do not, pull says the disk is full, exits non-zero and tags
/// nothing (before, it reported success and `bundle` failed later).
#[test]
fn a_pull_that_cannot_unpack_fails_and_tags_nothing() {
    let reg = Registry::start();
    // 48 MiB of zeros compress to almost nothing.
    let mut big = Layer::new();
    big.file("zeros", &vec![0u8; 48 << 20], 0o644);
    let image = Image::new(
        vec![
            (images::busybox_layer(), Compression::Gzip),
            (big.finish(), Compression::Gzip),
        ],
        &["sh"],
    );
    push(&reg, &image, "zeros:1");
    let reference = format!("{}/zeros:1", reg.host());
    let mount = |env: &Env, size: &str| {
        std::fs::create_dir_all(env.store()).unwrap();
        succeeded(
            "mount",
            Command::new("mount")
                .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                .arg(env.store())
                .output()
                .unwrap(),
        );
    };
    let env = Env::new();
    mount(&env, "24m");
    let err = env.pull_err(&[&reference]);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(env.tags().is_empty(), "nothing tagged: {:?}", env.tags());
    assert!(
        env.layer_cache().iter().all(|l| !l.is_empty()),
        "only complete layers in the cache"
    );

    // With --no-unpack the layers are only verified: the pull fits, and the first bundle
    // reports the full disk instead.
    let env = Env::new();
    mount(&env, "24m");
    let (name, _) = env.pull_ok(&["--no-unpack", &reference]);
    let out = env
        .cmd()
        .args(["bundle", &name])
        .arg(env.dir.path().join("b"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"));

    // Negative control: with room, the same pull succeeds and unpacks.
    let env = Env::new();
    mount(&env, "256m");
    env.pull_ok(&[&reference]);
    assert_eq!(env.layer_cache().len(), 2);
}

/// Every kind of content the corpus that found imgtool's failures had, built offline:
/// whiteouts, an opaque directory, hardlinks within and across layers, set-id bits, a
/// file capability, a fifo, devices, unicode and long names, uid 3000000, an empty layer,
/// and a config with every field a Dockerfile sets.
fn corpus_image(compression: Compression) -> Image {
    // VFS_CAP_REVISION_2 with the effective bit, permitting CAP_NET_BIND_SERVICE (10).
    let mut cap = Vec::new();
    cap.extend_from_slice(&0x0200_0001u32.to_le_bytes());
    cap.extend_from_slice(&(1u32 << 10).to_le_bytes());
    cap.extend_from_slice(&[0u8; 12]);
    let long = "l".repeat(200);
    let deep = format!(
        "corpus/deep/{}f.txt",
        format!("{}/", "d".repeat(50)).repeat(6)
    );
    let mut l2 = Layer::new();
    l2.dir("corpus", 0o755)
        .file("corpus/setuid", b"#!/bin/sh\necho setuid\n", 0o4755)
        .file("corpus/setgid", b"#!/bin/sh\n", 0o2750)
        .file_with_xattr("corpus/cap", b"capable\n", "security.capability", &cap)
        .file_with_xattr("corpus/user-xattr", b"x\n", "user.corpus", b"value")
        .fifo("corpus/fifo")
        .device("corpus/null", false, 1, 3)
        .device("corpus/loop9", true, 7, 9)
        .dir("corpus/données", 0o755)
        .file(
            "corpus/données/日本語 ファイル.txt",
            "unicode\n".as_bytes(),
            0o644,
        )
        .file(
            "corpus/données/old",
            b"hidden by the opaque marker\n",
            0o644,
        )
        .file(&format!("corpus/{long}"), b"a 200-byte name\n", 0o644)
        .file(&deep, b"a path longer than 255 bytes\n", 0o644)
        .file_owned(
            "corpus/big-uid",
            b"owned by 3000000\n",
            0o640,
            3_000_000,
            3_000_000,
        )
        .hardlink("corpus/hard", "corpus/setuid")
        .dir("srv", 0o755)
        .dir("srv/app", 0o755);
    let empty = Layer::new().finish();
    let mut l4 = Layer::new();
    l4.dir("corpus", 0o755)
        .whiteout("corpus/fifo")
        .dir("corpus/données", 0o700)
        .opaque("corpus/données")
        .file("corpus/données/new", b"after the opaque marker\n", 0o644)
        .hardlink("corpus/hard-across", "corpus/big-uid");
    let mut image = Image::new(
        vec![
            (images::busybox_layer(), compression),
            (l2.finish(), compression),
            (empty, compression),
            (l4.finish(), compression),
        ],
        &[],
    );
    image.config = json!({
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo \"$(id -u):$(id -g) $(pwd) $GREETING $HOME\""],
        "Env": ["GREETING=corpus", "PATH=/bin"],
        "WorkingDir": "/srv/app",
        "User": "3000000:3000000",
        "Labels": {"org.example.corpus": "yes"},
        "ExposedPorts": {"80/tcp": {}, "53/udp": {}},
        "Volumes": {"/srv/data": {}},
        "StopSignal": "SIGQUIT",
    });
    image
}

/// The corpus as OCI gzip, OCI zstd and Docker v2 schema 2 (gzip): each pulls with the
/// registry's digest, bundles (overlay and copy) to the tree umoci unpacks from the gzip
/// form, keeps its file capability, and runs with the image's uid, gid, cwd, env and
/// args (HOME=/ for a user without a passwd entry).
#[test]
fn a_corpus_of_every_kind_pulls_bundles_and_runs_like_umoci() {
    let reg = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let gzip_layout = work.path().join("gzip");
    corpus_image(Compression::Gzip).write_layout(&gzip_layout, "c");
    let zstd_layout = work.path().join("zstd");
    corpus_image(Compression::Zstd).write_layout(&zstd_layout, "c");
    push_exact(&reg, &gzip_layout, "c", "corpus:oci-gzip");
    push_exact(&reg, &zstd_layout, "c", "corpus:oci-zstd");
    succeeded(
        "skopeo",
        Command::new("skopeo")
            .args(["copy", "-q", "--format", "v2s2", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:c", gzip_layout.display()))
            .arg(format!("docker://{}/corpus:docker", reg.host()))
            .output()
            .unwrap(),
    );
    let theirs = tree::umoci_unpack(
        &format!("{}:c", gzip_layout.display()),
        &work.path().join("umoci"),
    );
    let rt = spec_tests::container::Runtime::new();
    for tag in ["oci-gzip", "oci-zstd", "docker"] {
        let env = Env::new();
        let reference = format!("{}/corpus:{tag}", reg.host());
        let (name, digest) = env.pull_ok(&[&reference]);
        assert_eq!(
            digest,
            registry_manifest(&reg, &format!("corpus:{tag}")).1,
            "{tag}"
        );
        for (dir, args) in [("overlay", &[][..]), ("copy", &["--copy"][..])] {
            let root = env.bundle(&name, &format!("{tag}-{dir}"), args);
            tree::assert_same(
                &tree::listing(&root),
                &theirs,
                &format!("{tag} {dir} vs umoci"),
            );
            let mut cap = [0u8; 32];
            let path = std::ffi::CString::new(root.join("corpus/cap").to_string_lossy().as_bytes())
                .unwrap();
            // SAFETY: getxattr writes at most cap.len() bytes into cap.
            let n = unsafe {
                libc::getxattr(
                    path.as_ptr(),
                    c"security.capability".as_ptr(),
                    cap.as_mut_ptr().cast(),
                    cap.len(),
                )
            };
            assert_eq!(n, 20, "{tag} {dir}: the file capability is kept");
        }
        let bundle = env.dir.path().join(format!("{tag}-overlay"));
        let g = rt.guard("corpus");
        let out = rt.run(&bundle, g.id()).ok();
        assert_eq!(
            out.stdout.trim(),
            "3000000:3000000 /srv/app corpus /",
            "{tag}"
        );
        let config: Value =
            serde_json::from_slice(&std::fs::read(bundle.join("config.json")).unwrap()).unwrap();
        assert_eq!(config["annotations"]["org.example.corpus"], "yes");
        assert_eq!(
            config["annotations"]["org.opencontainers.image.stopSignal"],
            "SIGQUIT"
        );
        assert!(
            config["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|m| m["destination"] == "/srv/data"),
            "the volume is mounted"
        );
    }
}

/// A 300 MB file (uncompressed layer, as the corpus had): pulled, bundled both ways,
/// every byte there.
#[test]
fn a_300_mb_file_pulls_and_bundles() {
    let reg = Registry::start();
    const SIZE: usize = 300 * 1000 * 1000;
    let mut big = Layer::new();
    big.file("big.bin", &vec![0x5a; SIZE], 0o644);
    let image = Image::new(
        vec![
            (images::busybox_layer(), Compression::Gzip),
            (big.finish(), Compression::None),
        ],
        &["sh"],
    );
    push(&reg, &image, "big:1");
    let env = Env::new();
    let (name, _) = env.pull_ok(&[&format!("{}/big:1", reg.host())]);
    for (dir, args) in [("overlay", &[][..]), ("copy", &["--copy"][..])] {
        let root = env.bundle(&name, dir, args);
        let mut f = std::fs::File::open(root.join("big.bin")).unwrap();
        assert_eq!(f.metadata().unwrap().len(), SIZE as u64, "{dir}");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = f.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            assert!(
                buf[..n].iter().all(|b| *b == 0x5a),
                "{dir}: content at {total}"
            );
            total += n;
        }
        assert_eq!(total, SIZE);
    }
}
