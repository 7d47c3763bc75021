//! A throw-away imgtool store for the registry-fault, concurrency and kill tests: the
//! store, a registries config and a docker config dir in one temp dir (nothing from the
//! machine leaks in), with the checks those tests share: index.json valid, what is
//! tagged, what is left in `imgtool/tmp`, and skopeo reading an image back.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use tempfile::TempDir;

use crate::bins;
use crate::images::{self, Image};
use crate::registry::Registry;

/// One test's store and config.
pub struct StoreEnv {
    pub dir: TempDir,
}

impl Default for StoreEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl StoreEnv {
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("imgtool-store-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir_all(dir.path().join("docker")).expect("docker config dir");
        std::fs::write(dir.path().join("registries.json"), "{}").expect("registries.json");
        Self { dir }
    }

    pub fn store(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// `imgtool --store STORE` with this test's registries file
    /// (`IMGTOOL_REGISTRIES_CONF`) and docker config dir, the rest of the environment
    /// cleaned.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(bins::imgtool());
        c.arg("--store")
            .arg(self.store())
            .env(
                "IMGTOOL_REGISTRIES_CONF",
                self.dir.path().join("registries.json"),
            )
            .env("DOCKER_CONFIG", self.dir.path().join("docker"))
            .env_remove("REGISTRY_AUTH_FILE")
            .env_remove("IMGTOOL_STORE");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run imgtool")
    }

    /// `imgtool ARGS`, which must succeed (a failure panics with its stderr).
    pub fn ok(&self, args: &[&str]) -> Output {
        succeeded(format!("imgtool {}", args.join(" ")), self.run(args))
    }

    /// Pulls and expects success: returns (stored name, digest) from the one stdout line.
    pub fn pull_ok(&self, args: &[&str]) -> (String, String) {
        let out = self.cmd().arg("pull").args(args).output().expect("imgtool");
        result_line("pull", args, &out)
    }

    /// Pulls and expects the one-line failure (exit 1, nothing on stdout); returns it.
    pub fn pull_err(&self, args: &[&str]) -> String {
        let out = self.cmd().arg("pull").args(args).output().expect("imgtool");
        error_line("pull", args, &out)
    }

    /// The tags in the store's index.json, which must be valid JSON of an image index.
    pub fn tags(&self) -> Vec<String> {
        let path = self.store().join("index.json");
        let Ok(text) = std::fs::read(&path) else {
            return vec![];
        };
        let index: Value = serde_json::from_slice(&text).expect("index.json is valid JSON");
        assert_eq!(index["schemaVersion"], 2, "index.json: {index}");
        index["manifests"]
            .as_array()
            .expect("manifests array")
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(String::from)
            .collect()
    }

    /// What is in the store's `imgtool/tmp`.
    pub fn tmp_files(&self) -> Vec<String> {
        entry_names(&self.store().join("imgtool/tmp"))
    }

    /// `skopeo inspect oci:STORE:NAME`, which must succeed.
    pub fn skopeo_inspect(&self, name: &str) -> Value {
        let out = Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{name}", self.store().display()))
            .output()
            .expect("skopeo");
        assert!(
            out.status.success(),
            "skopeo inspect {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("skopeo json")
    }

    /// The checks after a failed operation: nothing tagged, nothing left in tmp.
    pub fn assert_nothing_tagged_nor_left(&self) {
        assert!(self.tags().is_empty(), "tagged: {:?}", self.tags());
        assert!(
            self.tmp_files().is_empty(),
            "temp files: {:?}",
            self.tmp_files()
        );
    }

    /// Every blob under `blobs/sha256` has the digest its name says.
    pub fn assert_blobs_verified(&self) {
        let dir = self.store().join("blobs/sha256");
        for e in std::fs::read_dir(&dir).expect("blobs dir").flatten() {
            let data = std::fs::read(e.path()).expect("read blob");
            assert_eq!(
                images::digest(&data),
                format!("sha256:{}", e.file_name().to_string_lossy()),
                "blob {} has the wrong content",
                e.path().display()
            );
        }
    }
}

/// Puts `image` into the OCI layout `store` as `name`, offline: written as a layout in a
/// temp dir, then copied with skopeo. Returns the manifest digest.
pub fn put_image(store: &Path, image: &Image, name: &str) -> String {
    let layout = tempfile::tempdir().expect("tempdir");
    let digest = image.write_layout(layout.path(), "img");
    let out = Command::new("skopeo")
        .args(["copy", "-q"])
        .arg(format!("oci:{}:img", layout.path().display()))
        .arg(format!("oci:{}:{name}", store.display()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "skopeo copy into {}: {}",
        store.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    digest
}

/// The names of the entries of `dir` (none when it does not exist).
pub fn entry_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Pushes `image` to `reg` as `repo_tag` (through a temp OCI layout and skopeo).
/// The `<name> <digest>` line that a successful `imgtool pull`, `push` or `commit`
/// prints as its only stdout line, split in two.
pub fn result_line(command: &str, args: &[&str], out: &Output) -> (String, String) {
    assert!(
        out.status.success(),
        "imgtool {command} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout.clone()).expect("utf-8");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stdout: {stdout:?}");
    let (name, digest) = lines[0].split_once(' ').expect("name digest");
    (name.to_string(), digest.to_string())
}

/// The one error line of a failed imgtool command (exit 1, nothing on stdout).
pub fn error_line(command: &str, args: &[&str], out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "imgtool {command} {args:?} should fail: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    let stderr = String::from_utf8(out.stderr.clone()).expect("utf-8");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one error line: {stderr:?}");
    lines[0].to_string()
}

/// `out` of a command that must have succeeded: a failure panics naming `what`, with
/// its stderr.
pub fn succeeded(what: impl std::fmt::Display, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The one image of `imgtool inspect REF`'s stdout: a JSON array (docker's shape, even for
/// one image) that must hold exactly one object.
pub fn inspected(stdout: impl AsRef<[u8]>) -> Value {
    let stdout = stdout.as_ref();
    let all: Value = serde_json::from_slice(stdout).unwrap_or_else(|e| {
        panic!(
            "inspect printed no JSON ({e}): {}",
            String::from_utf8_lossy(stdout)
        )
    });
    match all.as_array().map(Vec::as_slice) {
        Some([one]) => one.clone(),
        _ => panic!("inspect of one image printed {all}"),
    }
}

/// Pushes `image` to `reg` as `repo_tag` (through a temp OCI layout and skopeo).
pub fn push(reg: &Registry, image: &Image, repo_tag: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    image.write_layout(dir.path(), "t");
    reg.push_with_skopeo(&format!("oci:{}:t", dir.path().display()), repo_tag);
}

/// The registry's manifest for `repo_ref` (parsed) and the digest of its raw bytes, read
/// with the registry's credentials if it has any.
pub fn registry_manifest(reg: &Registry, repo_ref: &str) -> (Value, String) {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--raw", "--tls-verify=false"]);
    if let Some((u, p)) = &reg.credentials {
        cmd.arg(format!("--creds={u}:{p}"));
    }
    let out = succeeded(
        format!("skopeo inspect {repo_ref}"),
        cmd.arg(format!("docker://{}/{repo_ref}", reg.host()))
            .output()
            .expect("skopeo"),
    );
    (
        serde_json::from_slice(&out.stdout).expect("manifest json"),
        images::digest(&out.stdout),
    )
}

/// Mount points at or under `dir`, from /proc/self/mountinfo.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let prefix = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(String::from))
        .filter(|m| m.starts_with(&prefix))
        .collect()
}
