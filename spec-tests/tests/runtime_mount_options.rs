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

/// Prints the propagation fields of /mnt/m's mountinfo line (`shared:N`, `master:N`,
/// `unbindable`, or nothing for private) as `prop: ...`.
const MNT_PROPAGATION: &str = r#"awk '$5=="/mnt/m" {o=""; for(i=7;i<=NF && $i!="-";i++) o=o" "$i; print "prop:" o}' /proc/self/mountinfo"#;

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

/// The propagation fields of a bind of a private host directory with `opts`.
fn bind_propagation(opts: &[&str]) -> String {
    let host = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox();
    b.push("/mounts", bind(host.path(), opts))
        .sh(MNT_PROPAGATION);
    run_ok(&b, "mountprop").trim().to_string()
}

#[test]
fn a_mounts_propagation_options_are_applied_to_it() {
    for (opts, want) in [
        (&["rbind", "rshared"][..], "shared:"),
        (&["bind", "shared"], "shared:"),
        (&["rbind", "runbindable"], "unbindable"),
        (&["bind", "unbindable"], "unbindable"),
    ] {
        let got = bind_propagation(opts);
        assert!(
            got.starts_with("prop: ") && got.contains(want),
            "{opts:?}: {got}"
        );
    }
    // Negative control: without a propagation option the volume is private.
    assert_eq!(bind_propagation(&["rbind"]), "prop:");
}

/// A container with CAP_SYS_ADMIN binds its volume /vol (a bind of a host directory with
/// `volume_propagation`) again at /vol2, then mounts a tmpfs at /vol/sub; prints whether
/// that mount shows at /vol2/sub too, which it does when /vol is shared (the second bind
/// joins its peer group).
fn second_bind_sees_mount(volume_propagation: &str) -> String {
    let host = tempfile::tempdir().unwrap();
    std::fs::create_dir(host.path().join("sub")).unwrap();
    let mut b = Bundle::busybox();
    let caps = json!(["CAP_SYS_ADMIN"]);
    for set in ["bounding", "effective", "permitted"] {
        b.set(&format!("/process/capabilities/{set}"), caps.clone());
    }
    b.set("/root/readonly", json!(false))
        .push(
            "/mounts",
            json!({"destination": "/vol", "type": "bind", "source": host.path(),
                   "options": ["rbind", volume_propagation]}),
        )
        .sh(
            "mkdir -p /vol2 && mount --bind /vol /vol2 && mount -t tmpfs tmpfs /vol/sub && \
             grep -q ' /vol2/sub ' /proc/self/mounts && echo propagated || echo kept",
        );
    run_ok(&b, "volprop")
}

#[test]
fn a_mount_under_an_rshared_volume_reaches_its_peers() {
    // What `rshared` on a volume is for: mounts made under it propagate to its peers (a
    // nested runtime's binds of it, CRI's Bidirectional with an rshared root).
    assert_eq!(second_bind_sees_mount("rshared"), "propagated\n");
    // Negative control: a private volume keeps the mount to itself.
    assert_eq!(second_bind_sees_mount("rprivate"), "kept\n");
}

#[test]
fn readonly_paths_keep_the_flags_of_their_mount() {
    // runc's remount adds only `ro` to what the path's mount has (statfs): a read-only
    // /bin on the (exec, suid) root still runs programs, and a noexec tmpfs made
    // read-only stays noexec (the negative control: the check sees noexec where it is).
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false))
        .push(
            "/mounts",
            json!({"destination": "/opt", "type": "tmpfs", "source": "tmpfs",
                   "options": ["noexec", "nosuid", "nodev"]}),
        )
        .set("/linux/readonlyPaths", json!(["/bin", "/opt"]))
        .args(&[
            "/bin/sh",
            "-c",
            "for m in /bin /opt; do grep \" $m \" /proc/self/mounts | tail -1 | cut -d' ' -f4 | tr , '\\n' | grep -E '^(ro|rw|nosuid|nodev|noexec)$' | tr '\\n' ' '; echo; done; \
             touch /bin/x 2>/dev/null && echo wrote || echo refused",
        ]);
    assert_eq!(
        run_ok(&b, "ropaths"),
        "ro \nro nosuid nodev noexec \nrefused\n"
    );
}

/// The mount's and the superblock's `ro`/`rw` of /sys, mounted with `opts` (the
/// container has its own network namespace, so its sysfs is a new superblock).
fn sysfs_superblock(opts: &[&str]) -> String {
    let mut b = Bundle::busybox();
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m["destination"] == "/sys" {
                m["options"] = json!(opts);
            }
            m
        })
        .collect();
    b.set("/mounts", json!(mounts)).sh(
        r#"awk '$5=="/sys" {for(i=7;$i!="-";i++); split($6,m,","); split($(i+3),o,","); print m[1], o[1]}' /proc/self/mountinfo"#,
    );
    run_ok(&b, "sysfsro").trim().to_string()
}

#[test]
fn an_ro_sysfs_has_a_read_only_superblock() {
    // runc mounts it with mount(2) and MS_RDONLY, which makes the new superblock
    // read-only as well as the mount.
    assert_eq!(
        sysfs_superblock(&["nosuid", "noexec", "nodev", "ro"]),
        "ro ro"
    );
    // Negative control: without `ro` both are read-write.
    assert_eq!(sysfs_superblock(&["nosuid", "noexec", "nodev"]), "rw rw");
}

/// The memory hierarchy's mount inside a container whose cgroup mount has `options`:
/// its mount options (those of ro/rw/nosuid/nodev/noexec), whether its root is the
/// container's own cgroup, and whether a child cgroup can be made in it.
fn cgroup_memory_mount(options: &[&str]) -> String {
    let rt = Runtime::new();
    let c = rt.guard("cgmount");
    let mut b = Bundle::busybox();
    let mounts: Vec<Value> = b.config["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let mut m = m.clone();
            if m["type"] == "cgroup" {
                m["options"] = json!(options);
            }
            m
        })
        .collect();
    b.set("/mounts", json!(mounts))
        .set("/linux/cgroupsPath", json!(format!("/{}", c.id())))
        .sh(&format!(
            "awk '$5==\"/sys/fs/cgroup/memory\" {{print $4==\"/{}\" ? \"own\" : \"root=\"$4}}' /proc/self/mountinfo; \
             grep ' /sys/fs/cgroup/memory ' /proc/self/mounts | cut -d' ' -f4 | tr , '\\n' | grep -E '^(ro|rw|nosuid|nodev|noexec)$' | tr '\\n' ' '; echo; \
             mkdir /sys/fs/cgroup/memory/child 2>/dev/null && rmdir /sys/fs/cgroup/memory/child && echo made || echo refused",
            c.id()
        ));
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

#[test]
fn an_rw_cgroup_mount_is_the_containers_own_cgroup_nosuid_nodev_noexec() {
    // runc binds each v1 hierarchy's directory of the container's cgroup with the cgroup
    // mount's flags: writable, nosuid,nodev,noexec.
    assert_eq!(
        cgroup_memory_mount(&["nosuid", "noexec", "nodev", "relatime", "rw"]),
        "own\nrw nosuid nodev noexec \nmade\n"
    );
    // Negative control: the default `ro` mount refuses the same mkdir.
    assert_eq!(
        cgroup_memory_mount(&["nosuid", "noexec", "nodev", "relatime", "ro"]),
        "own\nro nosuid nodev noexec \nrefused\n"
    );
}

/// Runs a container with a tmpfs at `destination`; returns its stderr and what it sees
/// mounted at /mnt/rel.
fn tmpfs_at(destination: &str) -> (String, String) {
    let rt = Runtime::new();
    let c = rt.guard("reldest");
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": destination, "type": "tmpfs", "source": "tmpfs"}),
    )
    .sh("grep ' /mnt/rel ' /proc/self/mounts | cut -d' ' -f2,3");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    (out.stderr, out.stdout)
}

#[test]
fn a_relative_mount_destination_is_mounted_under_root() {
    // The runtime spec: a relative destination MAY be given (deprecated) and is taken
    // from "/". runc 1.1.5 warns and mounts it there.
    let (stderr, stdout) = tmpfs_at("mnt/rel");
    assert_eq!(stdout, "/mnt/rel tmpfs\n");
    assert!(
        stderr.contains("level=warning")
            && stderr.contains("mount destination mnt/rel is not absolute"),
        "runc's warning: {stderr}"
    );
    // Negative control: the absolute spelling mounts the same without the warning.
    let (stderr, stdout) = tmpfs_at("/mnt/rel");
    assert_eq!(stdout, "/mnt/rel tmpfs\n");
    assert!(!stderr.contains("not absolute"), "{stderr}");
}
