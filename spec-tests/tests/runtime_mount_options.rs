//! Mount options runc 1.1.5 applies and libcontainer dropped or did differently:
//! `nosymfollow`, a mount's own propagation options (`rshared`, `unbindable`, ...), the
//! flags a `readonlyPaths` remount keeps, and the read-only superblock of a new `ro`
//! filesystem (sysfs). Each test has its negative control: the same check on a config
//! without the option sees the other outcome.

use std::path::Path;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

fn run_ok(b: &Bundle, name: &str) -> String {
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

fn bind(source: &Path, opts: &[&str]) -> Value {
    json!({"destination": "/mnt/m", "type": "bind", "source": source, "options": opts})
}

/// Reading a symlink through a bind of a host directory, with the bind's `options`.
fn read_through_symlink(opts: &[&str]) -> String {
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("target"), "through\n").unwrap();
    std::os::unix::fs::symlink("target", host.path().join("link")).unwrap();
    let mut b = Bundle::busybox();
    b.push("/mounts", bind(host.path(), opts)).sh(
        "grep -c ' /mnt/m .*nosymfollow' /proc/self/mounts; cat /mnt/m/link 2>/dev/null || echo refused; cat /mnt/m/target",
    );
    run_ok(&b, "nosymfollow")
}

#[test]
fn nosymfollow_refuses_symlinks_in_the_mount() {
    // runc 1.1.5 takes `nosymfollow` as MS_NOSYMFOLLOW: the mount shows it and a symlink
    // in it is not followed (ELOOP), while plain files still read.
    assert_eq!(
        read_through_symlink(&["bind", "nosymfollow"]),
        "1\nrefused\nthrough\n"
    );
    // Negative control: the same bind without the option follows the link.
    assert_eq!(read_through_symlink(&["bind"]), "0\nthrough\nthrough\n");
}
