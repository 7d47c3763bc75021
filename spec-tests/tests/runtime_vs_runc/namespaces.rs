//! runtime-spec `linux.namespaces` (each type, joined by path, listed twice: issue 13.8),
//! `linux.uidMappings`/`gidMappings`, `linux.sysctl`, and lo in a new network namespace
//! (issue 13.4).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::matrix::row::Setup;
use spec_tests::matrix::run::Ctx;
use spec_tests::matrix::{row, Obs, Row};

const S: &str = "namespaces, id mappings, sysctl";

const ALL: &[&str] = &["pid", "network", "ipc", "uts", "mount"];

/// The default namespaces without `drop`.
fn without(drop: &str) -> Row {
    let list: Vec<_> = ALL
        .iter()
        .filter(|n| **n != drop)
        .map(|n| json!({"type": n}))
        .collect();
    let mut r = row(S, format!("namespaces: no {drop} namespace"))
        .set("/linux/namespaces", json!(list))
        .args(&["sleep", "100"]);
    if drop == "uts" {
        r = r.remove("/hostname");
    }
    r.daemon().observe(Obs::Namespaces)
}

/// Starts a host process in new net, ipc and uts namespaces (killed when the row ends) and
/// points the config's namespace of `kind` at it.
fn join_holder(s: &mut Setup, kind: &str, file: &str) -> anyhow::Result<()> {
    let mut child = Command::new("unshare")
        .args(["--net", "--ipc", "--uts", "sleep", "1000"])
        .stdin(Stdio::null())
        .spawn()?;
    let pid = child.id();
    let mine = std::fs::read_link("/proc/self/ns/net")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .as_ref()
        == Some(&mine)
    {
        anyhow::ensure!(
            Instant::now() < deadline,
            "unshare did not enter its namespaces"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    s.cleanups.push(Box::new(move || {
        let _ = child.kill();
        let _ = child.wait();
    }));
    std::fs::write(s.dir.join("holder.pid"), pid.to_string())?;
    let ns = s.bundle.config["linux"]["namespaces"]
        .as_array_mut()
        .expect("namespaces");
    for n in ns.iter_mut().filter(|n| n["type"] == kind) {
        n["path"] = json!(format!("/proc/{pid}/ns/{file}"));
    }
    s.bundle.write();
    Ok(())
}

/// Whether the container's namespace `file` is the holder's.
fn same_as_holder(ctx: &mut Ctx, file: &str) -> anyhow::Result<String> {
    let holder = std::fs::read_to_string(ctx.dir().join("holder.pid"))?;
    let pid = ctx
        .pid()
        .ok_or_else(|| anyhow::anyhow!("no container pid"))?;
    let a = std::fs::read_link(format!("/proc/{}/ns/{file}", holder.trim()))?;
    let b = std::fs::read_link(format!("/proc/{pid}/ns/{file}"))?;
    Ok(if a == b {
        "joined".into()
    } else {
        "not joined".into()
    })
}

fn joined(kind: &'static str, file: &'static str) -> Row {
    row(S, format!("namespaces: {kind} joined by path"))
        .args(&["sleep", "100"])
        .with(move |s| join_holder(s, kind, file))
        .daemon()
        .host("same namespace as the holder", move |c| {
            same_as_holder(c, file)
        })
}

fn sysctl(name: &str, key: &str, value: &str, file: &str) -> Row {
    row(S, format!("sysctl: {name}"))
        .set("/linux/sysctl", json!({key: value}))
        .args(&["cat", file])
        .run()
}

pub fn rows() -> Vec<Row> {
    vec![
        row(S, "namespaces: the default set")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Namespaces),
        without("pid"),
        without("network"),
        without("ipc"),
        without("uts"),
        row(S, "namespaces: cgroup added")
            .push("/linux/namespaces", json!({"type": "cgroup"}))
            .args(&["cat", "/proc/self/cgroup"])
            .run(),
        row(S, "namespaces: time (unknown to runc 1.1)")
            .push("/linux/namespaces", json!({"type": "time"}))
            .args(&["true"])
            .run()
            .by_design("runc 1.1.5 does not know the time namespace (runc 1.2 added it); we create it"),
        row(S, "namespaces: an unknown type")
            .push("/linux/namespaces", json!({"type": "nosuchns"}))
            .args(&["true"])
            .run(),
        // Issue 13.8 says runc accepts a namespace listed twice; runc 1.1.5 refuses this one.
        row(S, "namespaces: network listed twice (13.8)")
            .push("/linux/namespaces", json!({"type": "network"}))
            .args(&["echo", "ok"])
            .run(),
        row(S, "namespaces: a path that does not exist")
            .set("/linux/namespaces/1", json!({"type": "network", "path": "/no/such/ns"}))
            .args(&["true"])
            .run(),
        row(S, "namespaces: a path of the wrong type")
            .set("/linux/namespaces/1", json!({"type": "network", "path": "/proc/self/ns/ipc"}))
            .args(&["true"])
            .run(),
        joined("network", "net"),
        joined("ipc", "ipc"),
        joined("uts", "uts"),
        row(S, "lo is up in a new network namespace (13.4)")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::Lo),
        row(S, "lo reaches 127.0.0.1 inside (13.4)")
            // Nothing listens on port 1: "refused" when lo is up, "unreachable" when down.
            .sh("nc -w1 127.0.0.1 1 </dev/null 2>&1 | grep -o -i -E 'refused|unreachable'")
            .run(),
        // user namespaces and mappings
        row(S, "user namespace: mapped root")
            .push("/linux/namespaces", json!({"type": "user"}))
            .set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .with(|s| chown_bundle(s, 100000))
            .sh("id; cat /proc/self/uid_map /proc/self/gid_map")
            .run(),
        row(S, "user namespace: two mapping ranges")
            .push("/linux/namespaces", json!({"type": "user"}))
            .set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 1000}, {"containerID": 1000, "hostID": 201000, "size": 1000}]))
            .set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .with(|s| chown_bundle(s, 100000))
            .args(&["cat", "/proc/self/uid_map"])
            .run(),
        row(S, "user namespace: no mappings")
            .push("/linux/namespaces", json!({"type": "user"}))
            .args(&["true"])
            .run(),
        row(S, "user namespace: mappings without a user namespace")
            .set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .args(&["true"])
            .run(),
        row(S, "user namespace: bind source only host root can read (19.9)")
            .push("/linux/namespaces", json!({"type": "user"}))
            .set("/linux/uidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .set("/linux/gidMappings", json!([{"containerID": 0, "hostID": 100000, "size": 65536}]))
            .with(|s| {
                chown_bundle(s, 100000)?;
                let private = s.dir.join("private");
                std::fs::create_dir(&private)?;
                std::fs::write(private.join("f"), "secret\n")?;
                std::fs::set_permissions(&private, std::os::unix::fs::PermissionsExt::from_mode(0o700))?;
                Ok(())
            })
            .push("/mounts", json!({"destination": "/mnt/p", "type": "bind", "source": "{dir}/private", "options": ["rbind"]}))
            .sh("ls -d /mnt/p && echo mounted")
            .run(),
        // sysctl
        sysctl("net.ipv4.ip_forward in the container's netns", "net.ipv4.ip_forward", "1", "/proc/sys/net/ipv4/ip_forward"),
        sysctl("kernel.shm_rmid_forced (ipc namespace)", "kernel.shm_rmid_forced", "1", "/proc/sys/kernel/shm_rmid_forced"),
        sysctl("kernel.msgmax (ipc namespace)", "kernel.msgmax", "4096", "/proc/sys/kernel/msgmax"),
        row(S, "sysctl: vm.swappiness is not namespaced: refused")
            .set("/linux/sysctl", json!({"vm.swappiness": "10"}))
            .args(&["true"])
            .run_err("not in a separate kernel namespace"),
        // The host's own value, so a runtime that wrongly accepts changes nothing.
        row(S, "sysctl: net.* without a network namespace: refused")
            .set("/linux/namespaces", json!([{"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]))
            .set("/linux/sysctl", json!({"net.ipv4.ip_forward": host_value("/proc/sys/net/ipv4/ip_forward")}))
            .args(&["true"])
            .run_err("sysctl \"net.ipv4.ip_forward\" not allowed in host network namespace"),
        row(S, "sysctl: kernel.hostname is refused (use hostname)")
            .set("/linux/sysctl", json!({"kernel.hostname": "x"}))
            .args(&["true"])
            .run(),
        row(S, "sysctl: an unknown key")
            .set("/linux/sysctl", json!({"net.ipv4.no_such_key": "1"}))
            .args(&["true"])
            .run(),
    ]
}

/// Makes the bundle traversable and the rootfs owned by the mapped root, as a user
/// namespace needs.
fn chown_bundle(s: &mut Setup, uid: u32) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.bundle.path(), std::fs::Permissions::from_mode(0o755))?;
    let st = Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(s.bundle.rootfs())
        .status()?;
    anyhow::ensure!(st.success(), "chown of the rootfs failed");
    Ok(())
}

/// A host sysctl's current value.
fn host_value(file: &str) -> String {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .trim()
        .to_string()
}
