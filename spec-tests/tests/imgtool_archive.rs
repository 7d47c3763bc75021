//! `imgtool save`, `load`, `export` and `import` against real peers: podman and docker load
//! what we save, skopeo reads our oci-archive, we load what podman and skopeo write, an
//! exported rootfs imports back to the same tree, bad archives tag nothing, and a load
//! killed with SIGKILL leaves a store that still works. Every test has its own store.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use spec_tests::bins;
use spec_tests::container::{capture, Outcome};
use tempfile::TempDir;

/// A scratch directory with a private store in it.
struct Scene {
    dir: TempDir,
}

impl Scene {
    fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("spec-archive-")
            .tempdir()
            .expect("tempdir");
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn store(&self) -> PathBuf {
        self.path("store")
    }

    /// `imgtool --store STORE ARGS…`.
    fn imgtool(&self, args: &[&str]) -> Outcome {
        self.imgtool_in(&self.store(), args)
    }

    fn imgtool_in(&self, store: &Path, args: &[&str]) -> Outcome {
        let mut cmd = Command::new(bins::imgtool());
        cmd.arg("--store")
            .arg(store)
            .args(args)
            .stdin(Stdio::null());
        capture(cmd)
    }

    /// A busybox root filesystem (static binary, applet symlinks, passwd) at `name`.
    fn busybox_rootfs(&self, name: &str) -> PathBuf {
        let root = self.path(name);
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::copy("/bin/busybox", bin.join("busybox")).expect("install busybox-static");
        for applet in ["sh", "echo", "cat", "ls", "env", "pwd", "id", "true"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        std::fs::create_dir_all(root.join("etc")).unwrap();
        std::fs::write(
            root.join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
        )
        .unwrap();
        std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n").unwrap();
        root
    }

    /// A tar of a directory's contents made by GNU tar (numeric owners, xattrs).
    fn tar_of(&self, dir: &Path, name: &str) -> PathBuf {
        let out = self.path(name);
        run(Command::new("tar")
            .args([
                "--numeric-owner",
                "--xattrs",
                "--xattrs-include=user.*",
                "-C",
            ])
            .arg(dir)
            .arg("-cf")
            .arg(&out)
            .arg("."));
        out
    }

    /// Imports a busybox rootfs as `name`, with `changes`.
    fn import_busybox(&self, name: &str, changes: &[&str]) {
        let rootfs = self.busybox_rootfs(&format!("rootfs-{}", sanitize(name)));
        let tar = self.tar_of(&rootfs, &format!("rootfs-{}.tar", sanitize(name)));
        let mut args = vec!["import", tar.to_str().unwrap(), name];
        for c in changes {
            args.extend(["--change", c]);
        }
        self.imgtool(&args).ok();
    }

    /// Imports busybox as `name` with `changes` and saves it as a docker-archive `file`;
    /// returns the archive and the image's config digest.
    fn saved_busybox(&self, name: &str, changes: &[&str], file: &str) -> (PathBuf, String) {
        self.import_busybox(name, changes);
        let ours = self.skopeo(&self.store(), name, "--raw");
        let config_digest = ours["config"]["digest"].as_str().unwrap().to_string();
        let archive = self.path(file);
        self.imgtool(&["save", name, "-o", archive.to_str().unwrap()])
            .ok();
        (archive, config_digest)
    }

    /// `skopeo inspect [--config|--raw] oci:STORE:NAME` as JSON.
    fn skopeo(&self, store: &Path, name: &str, what: &str) -> Value {
        let mut cmd = Command::new("skopeo");
        cmd.arg("inspect");
        if !what.is_empty() {
            cmd.arg(what);
        }
        cmd.arg(format!("oci:{}:{name}", store.display()));
        let out = capture(cmd).ok();
        serde_json::from_str(&out.stdout).expect("skopeo JSON")
    }

    fn index(&self, store: &Path) -> Value {
        let text = std::fs::read_to_string(store.join("index.json")).expect("index.json");
        serde_json::from_str(&text).expect("index.json is valid JSON")
    }

    /// Every tag in a store's index.json, sorted.
    fn tags(&self, store: &Path) -> Vec<String> {
        let mut tags: Vec<String> = self.index(store)["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|m| m["annotations"]["org.opencontainers.image.ref.name"].as_str())
            .map(str::to_string)
            .collect();
        tags.sort();
        tags
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The runtime podman and docker run containers with: ours when built, else runc.
fn runtime() -> PathBuf {
    let ours = bins::runtime();
    if ours.exists() {
        ours
    } else {
        eprintln!(
            "note: {} is not built; containers run on runc",
            ours.display()
        );
        spec_tests::host::runc()
    }
}

/// An error a user sees: one line, prefixed, mentioning `what`.
fn assert_one_line_error(out: &Outcome, what: &str) {
    assert_ne!(out.code, 0, "{out:?}");
    let err = out.stderr.trim_end();
    assert_eq!(err.lines().count(), 1, "not one line: {out:?}");
    assert!(err.starts_with("imgtool: "), "{out:?}");
    assert!(
        err.to_lowercase().contains(&what.to_lowercase()),
        "expected {what:?} in {err:?}"
    );
}

#[test]
fn docker_archive_is_loaded_by_podman_and_runs() {
    let s = Scene::new();
    let (archive, config_digest) = s.saved_busybox(
        "localhost/arch-pm:v1",
        &[
            "CMD [\"sh\", \"-c\", \"echo saved-by-imgtool $GREETING\"]",
            "ENV GREETING=hi",
        ],
        "pm.tar",
    );

    let Some(pm) = spec_tests::podman::Podman::new(&runtime()) else {
        return;
    };
    let out = pm.podman(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert!(out.stdout.contains("localhost/arch-pm:v1"), "{out:?}");
    let out = pm
        .podman(&["image", "inspect", "localhost/arch-pm:v1"])
        .ok();
    let inspect: Value = serde_json::from_str(&out.stdout).unwrap();
    let img = &inspect[0];
    // podman's image ID is the config digest: the config went through unchanged.
    assert_eq!(
        format!("sha256:{}", img["Id"].as_str().unwrap()),
        config_digest
    );
    assert_eq!(
        img["Config"]["Cmd"],
        serde_json::json!(["sh", "-c", "echo saved-by-imgtool $GREETING"])
    );
    assert!(img["Config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("GREETING=hi")));
    let out = pm.podman(&["run", "--rm", "localhost/arch-pm:v1"]).ok();
    assert_eq!(out.stdout, "saved-by-imgtool hi\n");
}

#[test]
fn docker_archive_is_loaded_by_docker_and_runs() {
    let s = Scene::new();
    let (archive, config_digest) = s.saved_busybox(
        "localhost/arch-dk:v1",
        &[
            "CMD [\"echo\", \"saved-for-docker\"]",
            "LABEL origin=imgtool",
        ],
        "dk.tar",
    );

    let Some(dk) = spec_tests::docker::Dockerd::start(&runtime()) else {
        return;
    };
    let out = dk.docker(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{out:?}\n{}", dk.log());
    assert!(out.stdout.contains("localhost/arch-dk:v1"), "{out:?}");
    let out = dk
        .docker(&["image", "inspect", "localhost/arch-dk:v1"])
        .ok();
    let inspect: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(inspect[0]["Id"].as_str().unwrap(), config_digest);
    assert_eq!(inspect[0]["Config"]["Labels"]["origin"], "imgtool");
    let out = dk.docker(&[
        "run",
        "--rm",
        "--network",
        "none",
        "--runtime",
        spec_tests::docker::RUNTIME_NAME,
        "localhost/arch-dk:v1",
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", dk.log());
    assert_eq!(out.stdout, "saved-for-docker\n");

    // What `docker save` writes loads back as the same image.
    let from_docker = s.path("from-docker.tar");
    dk.docker(&[
        "save",
        "-o",
        from_docker.to_str().unwrap(),
        "localhost/arch-dk:v1",
    ])
    .ok();
    let store2 = s.path("store2");
    let out = s
        .imgtool_in(&store2, &["load", "-i", from_docker.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, "Loaded image: localhost/arch-dk:v1\n");
    let raw = s.skopeo(&store2, "localhost/arch-dk:v1", "--raw");
    assert_eq!(raw["config"]["digest"].as_str().unwrap(), config_digest);
}

#[test]
fn oci_archive_is_read_by_skopeo() {
    let s = Scene::new();
    s.import_busybox("localhost/arch-oci:v1", &["CMD [\"sh\"]"]);
    let ours = s.skopeo(&s.store(), "localhost/arch-oci:v1", "--raw");
    let archive = s.path("oci.tar");
    s.imgtool(&[
        "save",
        "--format",
        "oci-archive",
        "localhost/arch-oci:v1",
        "-o",
        archive.to_str().unwrap(),
    ])
    .ok();
    let out = capture({
        let mut c = Command::new("skopeo");
        c.args(["inspect", &format!("oci-archive:{}", archive.display())]);
        c
    })
    .ok();
    let inspect: Value = serde_json::from_str(&out.stdout).unwrap();
    let want: Vec<&Value> = ours["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| &l["digest"])
        .collect();
    let got: Vec<&Value> = inspect["Layers"].as_array().unwrap().iter().collect();
    assert_eq!(got, want);
    let out = capture({
        let mut c = Command::new("skopeo");
        c.args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}:localhost/arch-oci:v1", archive.display()),
        ]);
        c
    })
    .ok();
    let raw: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(raw, ours, "the manifest is copied byte for byte");

    // Saved to stdout, loaded from stdin into another store: the same image.
    let piped = s.path("piped.tar");
    let status = Command::new(bins::imgtool())
        .arg("--store")
        .arg(s.store())
        .args(["save", "--format", "oci-archive", "localhost/arch-oci:v1"])
        .stdout(File::create(&piped).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let other = s.path("store2");
    let out = capture({
        let mut c = Command::new(bins::imgtool());
        c.arg("--store")
            .arg(&other)
            .arg("load")
            .stdin(File::open(&piped).unwrap());
        c
    })
    .ok();
    assert_eq!(out.stdout, "Loaded image: localhost/arch-oci:v1\n");
    assert_eq!(s.skopeo(&other, "localhost/arch-oci:v1", "--raw"), ours);

    // Two names of one image: both in the index, both loaded.
    s.imgtool(&["tag", "localhost/arch-oci:v1", "localhost/arch-oci:also"])
        .ok();
    let both = s.path("both.tar");
    s.imgtool(&[
        "save",
        "--format",
        "oci-archive",
        "localhost/arch-oci:v1",
        "localhost/arch-oci:also",
        "-o",
        both.to_str().unwrap(),
    ])
    .ok();
    let out = capture({
        let mut c = Command::new("skopeo");
        c.args([
            "inspect",
            "--raw",
            &format!("oci-archive:{}:localhost/arch-oci:also", both.display()),
        ]);
        c
    })
    .ok();
    assert_eq!(serde_json::from_str::<Value>(&out.stdout).unwrap(), ours);
    let store3 = s.path("store3");
    let out = s
        .imgtool_in(&store3, &["load", "-i", both.to_str().unwrap()])
        .ok();
    assert_eq!(
        out.stdout,
        "Loaded image: localhost/arch-oci:v1\nLoaded image: localhost/arch-oci:also\n"
    );
    assert_eq!(
        s.tags(&store3),
        ["localhost/arch-oci:also", "localhost/arch-oci:v1"]
    );
}

#[test]
fn podman_save_archives_load_as_the_same_image() {
    let s = Scene::new();
    let Some(pm) = spec_tests::podman::Podman::new(&runtime()) else {
        return;
    };
    let image = spec_tests::podman::IMAGE;
    let out = pm.podman(&["image", "inspect", image]).ok();
    let inspect: Value = serde_json::from_str(&out.stdout).unwrap();
    let podman_id = format!("sha256:{}", inspect[0]["Id"].as_str().unwrap());
    let podman_layers = inspect[0]["RootFS"]["Layers"].clone();

    // docker-archive: the config (so podman's image ID) and the diff_ids are unchanged.
    let docker_tar = s.path("podman-docker.tar");
    pm.podman(&["save", "-o", docker_tar.to_str().unwrap(), image])
        .ok();
    let out = s
        .imgtool(&["load", "-i", docker_tar.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, format!("Loaded image: {image}\n"));
    let raw = s.skopeo(&s.store(), image, "--raw");
    assert_eq!(raw["config"]["digest"].as_str().unwrap(), podman_id);
    let config = s.skopeo(&s.store(), image, "--config");
    assert_eq!(config["rootfs"]["diff_ids"], podman_layers);

    // oci-archive: manifest and config digests as the archive's index names them.
    let oci_tar = s.path("podman-oci.tar");
    pm.podman(&[
        "save",
        "--format",
        "oci-archive",
        "-o",
        oci_tar.to_str().unwrap(),
        image,
    ])
    .ok();
    let index: Value = serde_json::from_str(&run(Command::new("tar")
        .arg("-xOf")
        .arg(&oci_tar)
        .arg("index.json")))
    .unwrap();
    let manifest_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let store2 = s.path("store2");
    let out = s
        .imgtool_in(&store2, &["load", "-i", oci_tar.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, format!("Loaded image: {image}\n"));
    let stored = &s.index(&store2)["manifests"][0];
    assert_eq!(stored["digest"].as_str().unwrap(), manifest_digest);
    let config = s.skopeo(&store2, image, "--config");
    assert_eq!(config["rootfs"]["diff_ids"], podman_layers);
}

#[test]
fn skopeo_docker_archive_loads() {
    let s = Scene::new();
    s.import_busybox("localhost/arch-sk:v1", &["ENV FROM=skopeo"]);
    let ours = s.skopeo(&s.store(), "localhost/arch-sk:v1", "--raw");
    let archive = s.path("skopeo.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:localhost/arch-sk:v1", s.store().display()),
        &format!(
            "docker-archive:{}:example.com/team/app:2.0",
            archive.display()
        ),
    ]));
    let store2 = s.path("store2");
    let out = s
        .imgtool_in(&store2, &["load", "-i", archive.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, "Loaded image: example.com/team/app:2.0\n");
    let raw = s.skopeo(&store2, "example.com/team/app:2.0", "--raw");
    assert_eq!(raw["config"]["digest"], ours["config"]["digest"]);
    let config = s.skopeo(&store2, "example.com/team/app:2.0", "--config");
    assert!(config["config"]["Env"]
        .as_array()
        .unwrap()
        .contains(&Value::from("FROM=skopeo")));
    // An archive without a name loads untagged, printed by its manifest digest.
    let unnamed = s.path("unnamed.tar");
    run(Command::new("skopeo").args([
        "copy",
        "-q",
        &format!("oci:{}:localhost/arch-sk:v1", s.store().display()),
        &format!("docker-archive:{}", unnamed.display()),
    ]));
    let store4 = s.path("store4");
    let out = s
        .imgtool_in(&store4, &["load", "-i", unnamed.to_str().unwrap()])
        .ok();
    let index = s.index(&store4);
    let entry = &index["manifests"][0];
    assert_eq!(index["manifests"].as_array().unwrap().len(), 1);
    assert!(entry["annotations"]["org.opencontainers.image.ref.name"].is_null());
    assert_eq!(
        out.stdout,
        format!(
            "Loaded image: {} (untagged)\n",
            entry["digest"].as_str().unwrap()
        )
    );

    // Our docker-archive of it, loaded again: still the same config.
    let again = s.path("again.tar");
    s.imgtool_in(
        &store2,
        &[
            "save",
            "example.com/team/app:2.0",
            "-o",
            again.to_str().unwrap(),
        ],
    )
    .ok();
    let store3 = s.path("store3");
    let out = s
        .imgtool_in(&store3, &["load", "-i", again.to_str().unwrap()])
        .ok();
    assert_eq!(out.stdout, "Loaded image: example.com/team/app:2.0\n");
    assert_eq!(
        s.skopeo(&store3, "example.com/team/app:2.0", "--raw")["config"]["digest"],
        ours["config"]["digest"]
    );
}

/// What a tree holds, path by path: type, mode, owner, mtime, link target or content,
/// device number, the user xattr, and which paths are one file (hardlinks).
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    // Each file's name in its link group that sorts first.
    let mut inodes: BTreeMap<u64, String> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p);
            } else if m.is_file() {
                let first = inodes.entry(m.ino()).or_insert_with(|| rel.clone());
                if rel < *first {
                    *first = rel;
                }
            }
        }
    }
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let ft = m.file_type();
            let what = if ft.is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if ft.is_dir() {
                stack.push(p.clone());
                "dir".to_string()
            } else if ft.is_file() {
                let data = std::fs::read(&p).unwrap();
                let first = &inodes[&m.ino()];
                format!(
                    "file {} bytes sum {} same-as {first}",
                    data.len(),
                    data.iter().map(|b| *b as u64).sum::<u64>()
                )
            } else if ft.is_char_device() {
                format!("char {:x}", m.rdev())
            } else if ft.is_block_device() {
                format!("block {:x}", m.rdev())
            } else if ft.is_fifo() {
                "fifo".to_string()
            } else {
                "other".to_string()
            };
            let mtime = if ft.is_symlink() { 0 } else { m.mtime() };
            let xattr = user_xattr(&p);
            out.insert(
                rel,
                format!(
                    "{what} mode {:o} owner {}:{} mtime {mtime} xattr {xattr:?}",
                    m.permissions().mode() & 0o7777,
                    m.uid(),
                    m.gid()
                ),
            );
        }
    }
    out
}

fn user_xattr(p: &Path) -> Option<String> {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let mut buf = vec![0u8; 256];
    // SAFETY: lgetxattr writes at most buf.len() bytes into our buffer.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"user.origin".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| String::from_utf8_lossy(&buf[..n as usize]).into_owned())
}

fn set_user_xattr(p: &Path, value: &str) {
    let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: setxattr reads value.len() bytes from the string.
    let rc = unsafe {
        libc::setxattr(
            c.as_ptr(),
            c"user.origin".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
}

fn sh(script: &str) {
    run(Command::new("sh").args(["-ec", script]));
}

#[test]
fn export_then_import_gives_the_same_tree() {
    let s = Scene::new();
    let bundle = s.path("bundle");
    std::fs::create_dir(&bundle).unwrap();
    let rootfs = s.busybox_rootfs("bundle/rootfs");
    let r = rootfs.display();
    let long = "d".repeat(60);
    sh(&format!(
        "cd {r}; echo hello > etc/hello; chmod 640 etc/hello; chown 1000:1000 etc/hello; \
         ln etc/hello etc/hello-hard; mkdir -p home/user {long}/{long}; echo deep > {long}/{long}/file-with-a-long-path; \
         chown 1000:2000 home/user; chmod 700 home/user; \
         cp bin/busybox bin/suid; chmod 4755 bin/suid; \
         ln -s /etc/hello etc/abs-link; ln -s ../nowhere etc/dangling; \
         mkdir -p dev run tmp; chmod 1777 tmp; mknod dev/null2 c 1 3; mknod dev/loop9 b 7 9; mkfifo run/fifo; \
         touch -h -d @1500000000 etc/hello bin/suid; touch -d @1400000000 home/user"
    ));
    set_user_xattr(&rootfs.join("etc/hello"), "exported");

    let exported = s.path("exported.tar");
    s.imgtool(&[
        "export",
        bundle.to_str().unwrap(),
        "-o",
        exported.to_str().unwrap(),
    ])
    .ok();
    // GNU tar sees a hardlink and both special files.
    let listing = run(Command::new("tar").arg("-tvf").arg(&exported));
    assert!(
        listing.contains("etc/hello-hard link to etc/hello")
            || listing.contains("etc/hello link to etc/hello-hard"),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('c') && l.contains("dev/null2")),
        "{listing}"
    );
    assert!(
        listing
            .lines()
            .any(|l| l.starts_with('p') && l.contains("run/fifo")),
        "{listing}"
    );

    let out = s
        .imgtool(&[
            "import",
            exported.to_str().unwrap(),
            "localhost/roundtrip:v1",
        ])
        .ok();
    let digest = out.stdout.trim().to_string();
    assert!(digest.starts_with("sha256:"), "{out:?}");
    let raw = s.skopeo(&s.store(), "localhost/roundtrip:v1", "--raw");
    assert_eq!(raw["layers"].as_array().unwrap().len(), 1);
    assert_eq!(
        raw["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+gzip"
    );
    let blob = s.store().join("blobs/sha256").join(
        raw["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:"),
    );
    let unpacked = s.path("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    run(Command::new("tar")
        .args([
            "--numeric-owner",
            "--xattrs",
            "--xattrs-include=user.*",
            "-xpzf",
        ])
        .arg(&blob)
        .arg("-C")
        .arg(&unpacked));
    let want = snapshot(&rootfs);
    let got = snapshot(&unpacked);
    for (path, meta) in &want {
        assert_eq!(got.get(path), Some(meta), "{path}");
    }
    assert_eq!(
        got.len(),
        want.len(),
        "extra entries: {:?}",
        got.keys()
            .filter(|k| !want.contains_key(*k))
            .collect::<Vec<_>>()
    );
    assert!(
        want["etc/hello"].contains("xattr Some(\"exported\")"),
        "{}",
        want["etc/hello"]
    );

    // The same tar imported with zstd: same diff_id, zstd media type.
    s.imgtool(&[
        "import",
        "--compression",
        "zstd",
        exported.to_str().unwrap(),
        "localhost/roundtrip:zstd",
    ])
    .ok();
    let raw_z = s.skopeo(&s.store(), "localhost/roundtrip:zstd", "--raw");
    assert_eq!(
        raw_z["layers"][0]["mediaType"],
        "application/vnd.oci.image.layer.v1.tar+zstd"
    );
    assert_eq!(
        s.skopeo(&s.store(), "localhost/roundtrip:zstd", "--config")["rootfs"]["diff_ids"],
        s.skopeo(&s.store(), "localhost/roundtrip:v1", "--config")["rootfs"]["diff_ids"]
    );
}

/// Unmounts what a test mounted, even when it fails.
struct Mounts(Vec<PathBuf>);

impl Drop for Mounts {
    fn drop(&mut self) {
        for m in self.0.iter().rev() {
            let _ = Command::new("umount").arg("-l").arg(m).status();
        }
    }
}

#[test]
fn export_of_an_overlay_rootfs_is_the_merged_tree_without_nested_mounts() {
    let s = Scene::new();
    let lower = s.path("lower");
    let upper = s.path("upper");
    let work = s.path("work");
    let merged = s.path("bundle/rootfs");
    for d in [&lower, &upper, &work, &merged] {
        std::fs::create_dir_all(d).unwrap();
    }
    sh(&format!(
        "cd {l}; mkdir a mnt; echo one > a/gone; echo old > a/changed; echo same > a/kept",
        l = lower.display()
    ));
    let mut mounts = Mounts(Vec::new());
    run(Command::new("mount")
        .args(["-t", "overlay", "overlay", "-o"])
        .arg(format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.display(),
            upper.display(),
            work.display()
        ))
        .arg(&merged));
    mounts.0.push(merged.clone());
    sh(&format!(
        "cd {m}; rm a/gone; echo new > a/changed; echo added > a/added",
        m = merged.display()
    ));
    run(Command::new("mount")
        .args(["-t", "tmpfs", "tmpfs"])
        .arg(merged.join("mnt")));
    mounts.0.push(merged.join("mnt"));
    std::fs::write(merged.join("mnt/inside-a-mount"), "x").unwrap();

    let out = s.path("overlay.tar");
    s.imgtool(&[
        "export",
        s.path("bundle").to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ])
    .ok();
    let listing = run(Command::new("tar").arg("-tf").arg(&out));
    let names: Vec<&str> = listing.lines().collect();
    assert_eq!(
        names,
        ["a/", "a/added", "a/changed", "a/kept", "mnt/"],
        "{listing}"
    );
    let changed = run(Command::new("tar").arg("-xOf").arg(&out).arg("a/changed"));
    assert_eq!(changed, "new\n");
}

#[test]
fn import_applies_every_change_instruction() {
    let s = Scene::new();
    s.import_busybox(
        "localhost/changed:v1",
        &[
            "ENV A=1 B=\"two words\"",
            "CMD [\"-c\", \"echo hi\"]",
            "ENTRYPOINT [\"/bin/sh\"]",
            "WORKDIR /srv/app",
            "USER nobody",
            "LABEL maintainer=\"team@example.com\" version=2",
            "EXPOSE 8080 53/udp",
            "STOPSIGNAL SIGINT",
            "VOLUME [\"/data\"]",
        ],
    );
    let cfg = s.skopeo(&s.store(), "localhost/changed:v1", "--config");
    let c = &cfg["config"];
    assert_eq!(c["Env"], serde_json::json!(["A=1", "B=two words"]));
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["-c", "echo hi"]),
        "CMD before ENTRYPOINT is kept"
    );
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/sh"]));
    assert_eq!(c["WorkingDir"], "/srv/app");
    assert_eq!(c["User"], "nobody");
    assert_eq!(
        c["Labels"],
        serde_json::json!({"maintainer": "team@example.com", "version": "2"})
    );
    assert_eq!(
        c["ExposedPorts"],
        serde_json::json!({"8080/tcp": {}, "53/udp": {}})
    );
    assert_eq!(c["StopSignal"], "SIGINT");
    assert_eq!(c["Volumes"], serde_json::json!({"/data": {}}));
    assert_eq!(cfg["os"], "linux");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(cfg["history"].as_array().unwrap().len(), 1);

    // A shell-form CMD runs through /bin/sh -c; a message lands in the history.
    let tar = s.path("rootfs-localhost_changed_v1.tar");
    s.imgtool(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/changed:v2",
        "-c",
        "CMD echo $HOME",
        "-m",
        "from a tar",
    ])
    .ok();
    let cfg = s.skopeo(&s.store(), "localhost/changed:v2", "--config");
    assert_eq!(
        cfg["config"]["Cmd"],
        serde_json::json!(["/bin/sh", "-c", "echo $HOME"])
    );
    assert_eq!(cfg["history"][0]["comment"], "from a tar");

    let out = s.imgtool(&[
        "save",
        "localhost/not-there:v1",
        "-o",
        s.path("x.tar").to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "localhost/not-there:v1");
    assert!(!s.path("x.tar").exists(), "a failed save leaves no file");

    // Bad input: one line naming it, nothing tagged, nothing left in the store's temp dir.
    let before = s.tags(&s.store());
    let out = s.imgtool(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/changed:v3",
        "-c",
        "RUN rm -rf /",
    ]);
    assert_one_line_error(&out, "unsupported instruction RUN");
    let out = s.imgtool(&[
        "import",
        tar.to_str().unwrap(),
        "localhost/changed:v3",
        "-c",
        "EXPOSE 99999",
    ]);
    assert_one_line_error(&out, "99999");
    let garbage = s.path("garbage");
    std::fs::write(&garbage, vec![0x5a; 4096]).unwrap();
    let out = s.imgtool(&["import", garbage.to_str().unwrap(), "localhost/changed:v3"]);
    assert_one_line_error(&out, "not a valid tar");
    let out = s.imgtool(&["import", tar.to_str().unwrap(), "Bad Name"]);
    assert_one_line_error(&out, "invalid image reference");
    assert_eq!(s.tags(&s.store()), before);
    assert_eq!(
        std::fs::read_dir(s.store().join("imgtool/tmp"))
            .unwrap()
            .count(),
        0
    );
}

/// Rewrites `archive` (a tar) through a directory, letting `edit` change its members.
fn edit_archive(s: &Scene, archive: &Path, name: &str, edit: impl Fn(&Path)) -> PathBuf {
    let dir = s.path(&format!("edit-{name}"));
    std::fs::create_dir(&dir).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(&dir));
    edit(&dir);
    let out = s.path(&format!("{name}.tar"));
    run(Command::new("tar")
        .arg("-C")
        .arg(&dir)
        .arg("-cf")
        .arg(&out)
        .arg("."));
    out
}

fn flip_byte(path: &Path, at: usize) {
    let mut data = std::fs::read(path).unwrap();
    data[at] ^= 0xff;
    std::fs::write(path, data).unwrap();
}

#[test]
fn bad_archives_fail_with_one_line_and_tag_nothing() {
    let s = Scene::new();
    let source = s.path("source-store");
    // The victim image lives in another store; the test store holds one image that must
    // survive every failed load unchanged.
    s.import_busybox("localhost/keep:v1", &[]);
    let victim_rootfs = s.busybox_rootfs("victim-rootfs");
    std::fs::write(victim_rootfs.join("etc/victim"), "unique to the victim").unwrap();
    let victim_tar = s.tar_of(&victim_rootfs, "victim-rootfs.tar");
    s.imgtool_in(
        &source,
        &[
            "import",
            victim_tar.to_str().unwrap(),
            "localhost/victim:v1",
        ],
    )
    .ok();
    let docker = s.path("victim-docker.tar");
    let oci = s.path("victim-oci.tar");
    s.imgtool_in(
        &source,
        &[
            "save",
            "localhost/victim:v1",
            "-o",
            docker.to_str().unwrap(),
        ],
    )
    .ok();
    s.imgtool_in(
        &source,
        &[
            "save",
            "--format",
            "oci-archive",
            "localhost/victim:v1",
            "-o",
            oci.to_str().unwrap(),
        ],
    )
    .ok();
    let index_before = std::fs::read(s.store().join("index.json")).unwrap();

    let len = std::fs::metadata(&docker).unwrap().len() as usize;
    let truncated = s.path("truncated.tar");
    std::fs::write(&truncated, &std::fs::read(&docker).unwrap()[..len / 2]).unwrap();
    let garbage = s.path("garbage.tar");
    let noise: Vec<u8> = (0..20_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    std::fs::write(&garbage, noise).unwrap();
    let empty = s.path("empty.tar");
    std::fs::write(&empty, b"").unwrap();
    let bad_layer = edit_archive(&s, &docker, "bad-layer", |d| {
        let layer = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|e| e == "tar"))
            .unwrap();
        flip_byte(&layer, 5000);
    });
    let missing_layer = edit_archive(&s, &docker, "missing-layer", |d| {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            if e.path().extension().is_some_and(|x| x == "tar") {
                std::fs::remove_file(e.path()).unwrap();
            }
        }
    });
    let bad_blob = edit_archive(&s, &oci, "bad-blob", |d| {
        let raw: Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("index.json")).unwrap()).unwrap();
        let manifest = raw["manifests"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        let m: Value =
            serde_json::from_slice(&std::fs::read(d.join("blobs/sha256").join(manifest)).unwrap())
                .unwrap();
        let layer = m["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .trim_start_matches("sha256:")
            .to_string();
        flip_byte(&d.join("blobs/sha256").join(layer), 3000);
    });

    let cases: [(&Path, &str); 7] = [
        (&truncated, "truncated"),
        (&garbage, "not a docker-archive or oci-archive"),
        (&empty, "empty"),
        (&bad_layer, "digest"),
        (&missing_layer, "has no"),
        (&bad_blob, "digest"),
        (&s.path("no-such-file.tar"), "cannot open"),
    ];
    for (archive, what) in cases {
        let out = s.imgtool(&["load", "-i", archive.to_str().unwrap()]);
        assert_one_line_error(&out, what);
        assert_eq!(
            std::fs::read(s.store().join("index.json")).unwrap(),
            index_before,
            "{archive:?} changed the tags"
        );
        assert_eq!(
            std::fs::read_dir(s.store().join("imgtool/tmp"))
                .unwrap()
                .count(),
            0,
            "{archive:?} left temp files"
        );
    }
    // The good archives still load.
    s.imgtool(&["load", "-i", docker.to_str().unwrap()]).ok();
    assert_eq!(
        s.tags(&s.store()),
        ["localhost/keep:v1", "localhost/victim:v1"]
    );
}

#[test]
fn a_load_killed_midway_leaves_a_working_store() {
    let s = Scene::new();
    s.import_busybox("localhost/earlier:v1", &[]);
    let earlier = s.skopeo(&s.store(), "localhost/earlier:v1", "--raw");

    // A docker-archive with a 200 MB layer, made by GNU tar and sha256sum.
    let big = s.path("big");
    std::fs::create_dir(&big).unwrap();
    sh(&format!(
        "cd {d}; mkdir rootfs; head -c 200000000 /dev/zero > rootfs/zeros; \
         tar -C rootfs -cf layer.tar .; \
         diff=$(sha256sum layer.tar | cut -d' ' -f1); \
         printf '{{\"architecture\":\"amd64\",\"os\":\"linux\",\"config\":{{}},\"rootfs\":{{\"type\":\"layers\",\"diff_ids\":[\"sha256:%s\"]}}}}' $diff > config.json; \
         cfg=$(sha256sum config.json | cut -d' ' -f1); \
         mkdir out; mv layer.tar out/$diff.tar; mv config.json out/$cfg.json; \
         printf '[{{\"Config\":\"%s.json\",\"RepoTags\":[\"localhost/big:v1\"],\"Layers\":[\"%s.tar\"]}}]' $cfg $diff > out/manifest.json; \
         tar -C out -cf big.tar . ; rm -rf rootfs out",
        d = big.display()
    ));
    let archive = big.join("big.tar");

    let mut child = Command::new(bins::imgtool())
        .arg("--store")
        .arg(s.store())
        .args(["load", "-i"])
        .arg(&archive)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once the layer is partly written.
    let tmp = s.store().join("imgtool/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut killed_midway = false;
    while Instant::now() < deadline {
        let written: u64 = std::fs::read_dir(&tmp)
            .unwrap()
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.len())
            .sum();
        if written > 20_000_000 {
            child.kill().unwrap(); // SIGKILL
            killed_midway = true;
            break;
        }
        if child.try_wait().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let status = child.wait().unwrap();
    assert!(
        killed_midway,
        "the load finished before it could be killed: {status:?}"
    );

    // index.json is intact, the earlier image reads, the big one is not tagged.
    assert_eq!(s.tags(&s.store()), ["localhost/earlier:v1"]);
    assert_eq!(
        s.skopeo(&s.store(), "localhost/earlier:v1", "--raw"),
        earlier
    );
    // gc clears what the killed load left; loading again succeeds.
    s.imgtool(&["gc"]).ok();
    assert_eq!(
        std::fs::read_dir(&tmp).unwrap().count(),
        0,
        "gc left temp files"
    );
    assert_eq!(
        s.skopeo(&s.store(), "localhost/earlier:v1", "--raw"),
        earlier
    );
    let out = s.imgtool(&["load", "-i", archive.to_str().unwrap()]).ok();
    assert_eq!(out.stdout, "Loaded image: localhost/big:v1\n");
    let cfg = s.skopeo(&s.store(), "localhost/big:v1", "--config");
    assert_eq!(cfg["rootfs"]["diff_ids"].as_array().unwrap().len(), 1);
    assert_eq!(
        s.tags(&s.store()),
        ["localhost/big:v1", "localhost/earlier:v1"]
    );
}

#[test]
fn outputs_are_written_through_devices_and_symlinks_never_replaced() {
    let s = Scene::new();
    s.import_busybox("localhost/out:v1", &[]);
    // A private null device: an output that is not a regular file is written to, not
    // renamed over.
    let null = s.path("null");
    run(Command::new("mknod").arg(&null).args(["c", "1", "3"]));
    s.imgtool(&["save", "localhost/out:v1", "-o", null.to_str().unwrap()])
        .ok();
    let bundle = s.path("bundle");
    std::fs::create_dir(&bundle).unwrap();
    s.busybox_rootfs("bundle/rootfs");
    s.imgtool(&[
        "export",
        bundle.to_str().unwrap(),
        "-o",
        null.to_str().unwrap(),
    ])
    .ok();
    assert!(std::fs::symlink_metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
    // A symlink to a file: the file gets the archive, the link stays a link.
    let real = s.path("real.tar");
    let link = s.path("link.tar");
    std::fs::write(&real, b"old").unwrap();
    std::os::unix::fs::symlink(&real, &link).unwrap();
    s.imgtool(&["save", "localhost/out:v1", "-o", link.to_str().unwrap()])
        .ok();
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    let listing = run(Command::new("tar").arg("-tf").arg(&real));
    assert!(listing.contains("manifest.json"), "{listing}");
    // A directory is refused with one line.
    let out = s.imgtool(&[
        "save",
        "localhost/out:v1",
        "-o",
        s.dir.path().to_str().unwrap(),
    ]);
    assert_one_line_error(&out, "is a directory");
}
