//! `linux.rootfsPropagation`: every spelling runc accepts (containerd's CRI writes the
//! `r`-prefixed ones: `rshared` for Bidirectional volumes, `rslave` for HostToContainer),
//! with runc's meaning for what crosses between host and container; anything else is
//! refused on one line before anything is made.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// The optional fields (`shared:N`, `master:N`, `unbindable`) of the container's `/`.
const ROOT_PROPAGATION: &str = r#"awk '$5=="/" {o=""; for(i=7;i<=NF && $i!="-";i++) o=o" "$i; print "root:" o}' /proc/self/mountinfo"#;

#[test]
fn every_rootfs_propagation_spelling_runc_accepts_creates_the_container() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.sh(ROOT_PROPAGATION);
    // The container's own root: shared and unbindable are applied to it (the runtime
    // spec's "sets the rootfs's mount propagation", as crun does; runc 1.1 leaves it
    // private and fails [r]unbindable with EINVAL when the rootfs is on the host's `/`).
    let cases = [
        ("", ""),
        ("rslave", ""),
        ("slave", ""),
        ("rprivate", ""),
        ("private", ""),
        ("shared", "shared:"),
        ("rshared", "shared:"),
        ("unbindable", "unbindable"),
        ("runbindable", "unbindable"),
    ];
    for (value, want) in cases {
        b.set("/linux/rootfsPropagation", json!(value));
        let c = rt.guard("propagation");
        let out = rt.run(b.path(), c.id());
        assert_eq!(out.code, 0, "rootfsPropagation={value:?}: {out:?}");
        let line = out.stdout.trim();
        assert!(line.starts_with("root:"), "{value:?}: {out:?}");
        if want.is_empty() {
            assert!(
                !line.contains("shared:") && !line.contains("unbindable"),
                "rootfsPropagation={value:?}: the root is {line}"
            );
        } else {
            assert!(
                line.contains(want),
                "rootfsPropagation={value:?}: the root is {line}"
            );
        }
    }
}

#[test]
fn an_unknown_rootfs_propagation_is_refused_with_runc_text_and_nothing_made() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    // Negative control: the check above does see a value that is not accepted.
    for value in ["bogus", "Shared", "rshared,rslave"] {
        b.set("/linux/rootfsPropagation", json!(value));
        let c = rt.guard("badpropagation");
        let out = rt.run(b.path(), c.id());
        assert_ne!(out.code, 0, "{value}: {out:?}");
        assert!(
            out.stderr
                .contains(&format!("rootfsPropagation={value} is not supported")),
            "{value}: the cause must reach the caller: {out:?}"
        );
        assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
        assert!(rt.state(c.id()).is_none());
        assert!(!rt.root().join(c.id()).exists(), "state left behind");
    }
}

/// Makes a directory a shared mount point (its own peer group) for the test's duration;
/// the lazy unmount on drop takes whatever was mounted under it too.
struct SharedMount(PathBuf);

impl SharedMount {
    fn new(dir: &Path) -> Self {
        let d = dir.to_string_lossy().to_string();
        let ok = |args: &[&str]| Command::new("mount").args(args).status().unwrap().success();
        assert!(ok(&["--bind", &d, &d]) && ok(&["--make-shared", &d]));
        Self(dir.to_path_buf())
    }
}

impl Drop for SharedMount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Whether the host's mount table has a mount at `path`.
fn host_has_mount_at(path: &Path) -> bool {
    let want = path.to_string_lossy().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split_whitespace().nth(4) == Some(want.as_str()))
}

/// A container with CAP_SYS_ADMIN mounts a tmpfs under a volume bound `rshared` from a
/// shared host directory; returns whether the host then sees that mount.
fn container_mount_reaches_host(root_propagation: &str) -> bool {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    let _shared = SharedMount::new(host.path());
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    let caps = json!(["CAP_SYS_ADMIN", "CAP_KILL"]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    b.set("/linux/rootfsPropagation", json!(root_propagation))
        .push(
            "/mounts",
            json!({"destination": "/vol", "type": "bind", "source": host.path(),
                   "options": ["rbind", "rshared"]}),
        )
        .sh("mount -t tmpfs tmpfs /vol/sub && touch /vol/mounted; sleep 60");
    let c = rt.guard("bidir");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    // The mount is done (and propagated, which the kernel does inside mount(2)) once the
    // marker exists.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !host.path().join("mounted").exists() {
        assert!(
            Instant::now() < deadline,
            "the container did not mount its tmpfs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    host_has_mount_at(&host.path().join("sub"))
}

#[test]
fn rshared_root_propagation_carries_container_mounts_to_the_host() {
    // Kubernetes' Bidirectional volumes: containerd's CRI writes rootfsPropagation rshared.
    assert!(
        container_mount_reaches_host("rshared"),
        "with rshared a mount made in the container must appear on the host"
    );
    // Negative control: with the default (rslave) the same mount stays in the container.
    assert!(
        !container_mount_reaches_host("rslave"),
        "with rslave a mount made in the container must not reach the host"
    );
}
