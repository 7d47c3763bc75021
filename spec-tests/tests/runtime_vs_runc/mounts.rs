//! runtime-spec `mounts` (each type, options, propagation, idmap refusal), the default
//! mount table, `linux.maskedPaths`, `linux.readonlyPaths`, `linux.rootfsPropagation`
//! (issue 13.2) and the `ro` /dev and cgroup mounts (issue 19.1, 19.7).

use serde_json::{json, Value};
use spec_tests::matrix::{row, Obs, Row};

const S: &str = "mounts, maskedPaths, readonlyPaths, rootfsPropagation";

const IDMAP: &str = "runc 1.1.5 ignores id-mapped mount requests and mounts without the mapping (files show the wrong owners); we refuse what we cannot do (runc 1.2 implements them)";

/// A row whose container sleeps with one extra mount at /mnt/m, observed there.
/// Where a host's test process sits in a non-root v1 cgroup (the CI machine's memory
/// hierarchy), runc 1.1.5 places the default cgroup below it; ours at the hierarchy's
/// root. The ro flags of issue 19.1 agree.
pub(crate) const V1_PLACEMENT: &str = "on cgroup v1 runc places a container without cgroupsPath below its caller's own cgroup of each hierarchy (here memory:/process_api/..., the rest at /), ours at /<id> in every hierarchy: libcontainer records one path for all hierarchies, which delete, exec and update from any other cgroup must find; the clients set cgroupsPath (docs/runtime.md, Different from runc)";

fn mount(name: &str, m: Value) -> Row {
    row(S, format!("mount: {name}"))
        .push("/mounts", m)
        .args(&["sleep", "100"])
        .daemon()
        .observe(Obs::Mounts("/mnt/m"))
}

fn bind(opts: &[&str]) -> Value {
    json!({"destination": "/mnt/m", "type": "bind", "source": "{dir}", "options": opts})
}

fn propagation(p: &str) -> Row {
    row(S, format!("rootfsPropagation: {p} (13.2)"))
        .set("/linux/rootfsPropagation", json!(p))
        .args(&["sleep", "100"])
        .daemon()
        .observe(Obs::Mounts("/$"))
}

pub fn rows() -> Vec<Row> {
    vec![
        row(S, "default mounts: /proc and what is under it")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/proc")),
        row(S, "default mounts: /dev and what is under it")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/dev")),
        row(S, "default mounts: /sys (sysfs ro)")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/sys$")),
        row(S, "cgroup mount ro: per-controller mounts ro (19.1, GHSA-m8cg-xc2p-r3fc)")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/sys/fs/cgroup"))
            .by_design(V1_PLACEMENT),
        row(S, "cgroup mount ro with a cgroup namespace (19.1)")
            .push("/linux/namespaces", json!({"type": "cgroup"}))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/sys/fs/cgroup"))
            .by_design(V1_PLACEMENT),
        // cgroupsPath is set: without it runc nests the container's cgroup (and so the
        // mount's root) under its caller's, a placement difference of its own
        // (V1_PLACEMENT; the row "cgroupsPath: unset" in resources).
        row(S, "cgroup mount rw: writable inside")
            .set("/linux/cgroupsPath", json!("/mx-matrix/{id}"))
            .with(|s| {
                let mounts = s.bundle.config["mounts"].as_array_mut().expect("mounts");
                for m in mounts.iter_mut().filter(|m| m["type"] == "cgroup") {
                    m["options"] = json!(["nosuid", "noexec", "nodev", "relatime", "rw"]);
                }
                s.bundle.write();
                Ok(())
            })
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/sys/fs/cgroup/memory")),
        row(S, "/dev mount with ro keeps ro (19.7)")
            .with(|s| {
                let mounts = s.bundle.config["mounts"].as_array_mut().expect("mounts");
                for m in mounts.iter_mut().filter(|m| m["destination"] == "/dev") {
                    m["options"].as_array_mut().expect("options").push(json!("ro"));
                }
                s.bundle.write();
                Ok(())
            })
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/dev$")),
        mount("bind rw", bind(&["rbind", "rw"])),
        mount("bind ro", bind(&["bind", "ro"])),
        mount("rbind ro", bind(&["rbind", "ro"])),
        mount("bind nosuid,nodev,noexec", bind(&["bind", "nosuid", "nodev", "noexec"])),
        mount("bind noatime", bind(&["bind", "noatime"])),
        mount("bind strictatime", bind(&["bind", "strictatime"])),
        mount("bind nodiratime", bind(&["bind", "nodiratime"])),
        mount("bind nosymfollow", bind(&["bind", "nosymfollow"])),
        mount("bind with type none", json!({"destination": "/mnt/m", "type": "none", "source": "{dir}", "options": ["bind"]})),
        mount("bind without type", json!({"destination": "/mnt/m", "source": "{dir}", "options": ["rbind"]})),
        mount("bind rprivate", bind(&["rbind", "rprivate"])),
        mount("bind private", bind(&["bind", "private"])),
        mount("bind rslave", bind(&["rbind", "rslave"])),
        mount("bind slave", bind(&["bind", "slave"])),
        mount("bind rshared", bind(&["rbind", "rshared"])),
        mount("bind shared", bind(&["bind", "shared"])),
        mount("bind runbindable", bind(&["rbind", "runbindable"])),
        mount("bind unbindable", bind(&["bind", "unbindable"])),
        mount("tmpfs size and mode", json!({"destination": "/mnt/m", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m", "mode=700"]})),
        mount("tmpfs ro", json!({"destination": "/mnt/m", "type": "tmpfs", "source": "tmpfs", "options": ["ro"]})),
        mount("tmpfs nosuid,nodev,noexec,relatime", json!({"destination": "/mnt/m", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev", "noexec", "relatime"]})),
        mount("mqueue", json!({"destination": "/mnt/m", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "nodev", "noexec"]})),
        mount("a second devpts", json!({"destination": "/mnt/m", "type": "devpts", "source": "devpts", "options": ["newinstance", "ptmxmode=0666"]})),
        mount("a second proc", json!({"destination": "/mnt/m", "type": "proc", "source": "proc"})),
        mount("sysfs", json!({"destination": "/mnt/m", "type": "sysfs", "source": "sysfs", "options": ["ro"]})),
        row(S, "mount: bind of a file creates the file mount point")
            .with(|s| {
                std::fs::write(s.dir.join("file"), "content\n")?;
                Ok(())
            })
            .push("/mounts", json!({"destination": "/etc/extra", "type": "bind", "source": "{dir}/file", "options": ["bind", "ro"]}))
            .args(&["cat", "/etc/extra"])
            .run(),
        row(S, "mount: bind source missing")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "bind", "source": "/no/such/source", "options": ["bind"]}))
            .args(&["true"])
            .run_err("no such file or directory"),
        row(S, "mount: destination nested in another mount")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "tmpfs", "source": "tmpfs"}))
            .push("/mounts", json!({"destination": "/mnt/m/inner", "type": "bind", "source": "{dir}", "options": ["bind"]}))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/mnt/m")),
        row(S, "mount: relative destination")
            .push("/mounts", json!({"destination": "mnt/rel", "type": "tmpfs", "source": "tmpfs"}))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/mnt/rel")),
        row(S, "mount: unknown fs type")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "no-such-fs", "source": "x"}))
            .args(&["true"])
            .run(),
        row(S, "mount: unknown option")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "tmpfs", "source": "tmpfs", "options": ["no-such-option"]}))
            .args(&["true"])
            .run(),
        row(S, "mount: idmap option refused by runc 1.1")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "bind", "source": "{dir}", "options": ["rbind", "idmap"]}))
            .args(&["true"])
            .run()
            .by_design(IDMAP),
        row(S, "mount: uidMappings on a mount refused by runc 1.1")
            .push("/mounts", json!({"destination": "/mnt/m", "type": "bind", "source": "{dir}", "options": ["rbind"],
                "uidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}],
                "gidMappings": [{"containerID": 0, "hostID": 100000, "size": 65536}]}))
            .args(&["true"])
            .run()
            .by_design(IDMAP),
        row(S, "mount: bind over /proc refused (12.3)")
            .push("/mounts", json!({"destination": "/proc", "type": "bind", "source": "{dir}", "options": ["bind"]}))
            .args(&["true"])
            .run(),
        row(S, "mount: destination through a symlink to /proc refused")
            .with(|s| {
                std::os::unix::fs::symlink("/proc", s.bundle.rootfs().join("evil"))?;
                Ok(())
            })
            .push("/mounts", json!({"destination": "/evil", "type": "tmpfs", "source": "tmpfs"}))
            .args(&["true"])
            .run(),
        // maskedPaths and readonlyPaths
        row(S, "maskedPaths: a directory and a file are masked")
            .set("/linux/maskedPaths", json!(["/etc", "/bin/busybox-not-there", "/proc/kcore"]))
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Mounts("/etc"))
            .observe(Obs::Mounts("/proc/kcore")),
        row(S, "maskedPaths: reading a masked file gives nothing")
            .set("/linux/maskedPaths", json!(["/etc/passwd"]))
            .sh("cat /etc/passwd; echo rc=$?")
            .run(),
        row(S, "maskedPaths: relative paths accepted (13.8)")
            .set("/linux/maskedPaths", json!(["etc/passwd"]))
            .sh("cat /etc/passwd | wc -c")
            .run(),
        row(S, "readonlyPaths: writes refused")
            .set("/root/readonly", json!(false))
            .set("/linux/readonlyPaths", json!(["/tmp"]))
            .sh("touch /tmp/x; echo rc=$?")
            .run(),
        row(S, "readonlyPaths: relative paths accepted (13.8)")
            .set("/root/readonly", json!(false))
            .set("/linux/readonlyPaths", json!(["tmp"]))
            .sh("touch /tmp/x; echo rc=$?")
            .run(),
        row(S, "readonlyPaths: a missing path is skipped")
            .set("/linux/readonlyPaths", json!(["/no/such/path"]))
            .args(&["echo", "ok"])
            .run(),
        propagation("rshared").by_design("with rootfsPropagation shared or rshared the container's / is shared, the spec's meaning; runc 1.1.5 leaves it private (its rootfsParentMountPrivate makes the rootfs's parent private for pivot_root, and the / it ends with stays so)"),
        propagation("rslave"),
        propagation("rprivate"),
        propagation("shared").by_design("with rootfsPropagation shared or rshared the container's / is shared, the spec's meaning; runc 1.1.5 leaves it private (its rootfsParentMountPrivate makes the rootfs's parent private for pivot_root, and the / it ends with stays so)"),
        propagation("slave"),
        propagation("private"),
        propagation("unbindable").by_design("rootfsPropagation unbindable is one of the spec's values and is applied; runc 1.1.5 refuses it at create (its mount propagation table lacks it)"),
        row(S, "rootfsPropagation: an unknown value")
            .set("/linux/rootfsPropagation", json!("sideways"))
            .args(&["true"])
            .run(),
    ]
}
