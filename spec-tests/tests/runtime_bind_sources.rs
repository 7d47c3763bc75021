//! Bind-mount sources as runc finds them (runc's userns.bats):
//! - a relative source is relative to the bundle, whatever directory the runtime runs in;
//! - with a user namespace, sources the container's mapped root cannot reach (a 0700
//!   directory of the host's root) are still mounted: the runtime opens them before the
//!   user namespace applies, as runc does.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, Outcome, Runtime};

/// `run` of the bundle from `cwd`.
fn run_from(rt: &Runtime, cwd: &Path, b: &Bundle, id: &str) -> Outcome {
    let mut cmd = rt.command();
    cmd.current_dir(cwd)
        .args(["run", "--bundle", &b.path().to_string_lossy(), id]);
    capture(cmd)
}

#[test]
fn a_relative_bind_source_is_relative_to_the_bundle() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    std::fs::create_dir_all(b.path().join("src/d")).unwrap();
    std::fs::write(b.path().join("src/d/f"), "in-bundle\n").unwrap();
    b.push(
        "/mounts",
        json!({"source": "src/d", "destination": "/mnt", "options": ["bind"]}),
    )
    .args(&["cat", "/mnt/f"]);
    let elsewhere = tempfile::tempdir().unwrap();
    let c = rt.guard("relbind");
    let out = run_from(&rt, elsewhere.path(), &b, c.id());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "in-bundle\n");
}

#[test]
fn negative_control_a_relative_source_only_the_caller_directory_has_fails() {
    // The caller's directory is not where relative sources are looked up.
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    let elsewhere = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(elsewhere.path().join("only-here")).unwrap();
    b.push(
        "/mounts",
        json!({"source": "only-here", "destination": "/mnt", "options": ["bind"]}),
    )
    .args(&["true"]);
    let c = rt.guard("relbindneg");
    let out = run_from(&rt, elsewhere.path(), &b, c.id());
    assert_ne!(out.code, 0, "{out:?}");
}

/// A bundle with a user namespace mapping the container's root to host uid/gid 100000,
/// and source dirs: `accessible/dir`, `inaccessible-1/dir` and `inaccessible-2/dir`
/// (the `inaccessible-*` directories are 0700 of the host's root), each holding foo.txt.
fn userns_bundle() -> Bundle {
    let mut b = Bundle::busybox();
    for name in ["accessible", "inaccessible-1", "inaccessible-2"] {
        let dir = b.path().join(name).join("dir");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("foo.txt"), "").unwrap();
        if name != "accessible" {
            std::fs::set_permissions(b.path().join(name), std::fs::Permissions::from_mode(0o700))
                .unwrap();
        }
    }
    let map = json!([{"hostID": 100000, "containerID": 0, "size": 65534}]);
    let mut namespaces = b.config["linux"]["namespaces"].clone();
    namespaces
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    // The rootfs must be reachable by the mapped root (tempdirs are 0700).
    std::fs::set_permissions(b.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    b.set("/linux/namespaces", namespaces)
        .set("/linux/uidMappings", map.clone())
        .set("/linux/gidMappings", map)
        // Mount points inside the read-only rootfs.
        .set("/root/readonly", json!(false));
    std::fs::create_dir_all(b.rootfs().join("tmp/mount-1")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("tmp/mount-2")).unwrap();
    b
}

fn bind(source: &str, dest: &str) -> serde_json::Value {
    json!({"source": source, "destination": dest, "options": ["bind"]})
}

#[test]
fn userns_with_two_inaccessible_mount_sources() {
    let rt = Runtime::new();
    let mut b = userns_bundle();
    b.push("/mounts", bind("inaccessible-1/dir", "/tmp/mount-1"))
        .push("/mounts", bind("inaccessible-2/dir", "/tmp/mount-2"))
        .sh("stat -c %n /tmp/mount-1/foo.txt /tmp/mount-2/foo.txt");
    let c = rt.guard("usernsbind");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(out.stdout, "/tmp/mount-1/foo.txt\n/tmp/mount-2/foo.txt\n");
}

#[test]
fn userns_with_inaccessible_mount_sources_and_exec() {
    let rt = Runtime::new();
    let mut b = userns_bundle();
    b.push("/mounts", bind("inaccessible-1/dir", "/tmp/mount-1"))
        .push("/mounts", bind("inaccessible-2/dir", "/tmp/mount-2"))
        .args(&["sleep", "30"]);
    let c = rt.guard("usernsbindexec");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let out = rt.exec(&[
        "exec",
        c.id(),
        "stat",
        "-c",
        "%n",
        "/tmp/mount-1/foo.txt",
        "/tmp/mount-2/foo.txt",
    ]);
    assert_eq!(out.code, 0, "{out:?}");
}

#[test]
fn negative_control_the_mapped_root_cannot_reach_what_it_was_not_given() {
    // The check above does see a file the container's root cannot reach: mount the
    // 0700 directory itself, and it is the container that cannot enter it.
    let rt = Runtime::new();
    let mut b = userns_bundle();
    b.push("/mounts", bind("inaccessible-1", "/tmp/mount-1"))
        .push("/mounts", bind("accessible/dir", "/tmp/mount-2"))
        .sh("stat -c %n /tmp/mount-2/foo.txt; stat -c %n /tmp/mount-1/dir/foo.txt 2>&1");
    let c = rt.guard("usernsbindneg");
    let out = rt.run(b.path(), c.id());
    assert!(out.stdout.starts_with("/tmp/mount-2/foo.txt\n"), "{out:?}");
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
}
