//! Namespaces: each type is new when asked for, shared with the host when not, and joined
//! when given a path; uid/gid mappings for a user namespace.

use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Prints `kind=link` for every namespace of the container's init.
const PRINT_NS: &str =
    "for n in pid net ipc uts mnt cgroup user; do echo $n=$(readlink /proc/self/ns/$n); done";

fn container_ns(b: &mut Bundle, name: &str) -> std::collections::HashMap<String, String> {
    let rt = Runtime::new();
    let c = rt.guard(name);
    b.sh(PRINT_NS);
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn every_namespace_type_is_new_when_asked_for() {
    let mut b = Bundle::busybox();
    b.set(
        "/linux/namespaces",
        json!([{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"},
               {"type": "mount"}, {"type": "cgroup"}]),
    );
    let ns = container_ns(&mut b, "nsall");
    for (kind, host) in [
        ("pid", "pid"),
        ("net", "net"),
        ("ipc", "ipc"),
        ("uts", "uts"),
        ("mnt", "mnt"),
        ("cgroup", "cgroup"),
    ] {
        assert_ne!(ns[kind], host_ns(host), "{kind} namespace not new");
    }
    assert_eq!(
        ns["user"],
        host_ns("user"),
        "no user namespace was asked for"
    );
}

#[test]
fn namespaces_not_listed_are_shared_with_the_host() {
    let mut b = Bundle::busybox();
    // A hostname needs a private UTS namespace, so the config drops it.
    b.set("/linux/namespaces", json!([{"type": "mount"}]))
        .remove("/hostname");
    let ns = container_ns(&mut b, "nsfew");
    for kind in ["pid", "net", "ipc", "uts"] {
        assert_eq!(ns[kind], host_ns(kind), "{kind} should be the host's");
    }
}

#[test]
fn pid_namespace_makes_the_process_pid_1() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.sh("echo $$");
    let c = rt.guard("pid1");
    assert_eq!(rt.run(b.path(), c.id()).ok().stdout, "1\n");
}

#[test]
fn a_namespace_is_joined_by_path() {
    let rt = Runtime::new();
    let mut holder = Bundle::busybox();
    holder
        .set("/hostname", json!("holder"))
        .args(&["sleep", "30"]);
    let h = rt.guard("holder");
    rt.exec(&[
        "run",
        "-d",
        "--bundle",
        &holder.path().to_string_lossy(),
        h.id(),
    ])
    .ok();
    let st = rt.wait_status(h.id(), "running", Duration::from_secs(10));
    let pid = st["pid"].as_i64().unwrap();

    let mut joiner = Bundle::busybox();
    joiner
        .set(
            "/linux/namespaces",
            json!([
                {"type": "pid"}, {"type": "ipc"}, {"type": "mount"},
                {"type": "uts", "path": format!("/proc/{pid}/ns/uts")},
                {"type": "network", "path": format!("/proc/{pid}/ns/net")}
            ]),
        )
        .remove("/hostname")
        .sh("hostname; readlink /proc/self/ns/net");
    let j = rt.guard("joiner");
    let out = rt.run(joiner.path(), j.id()).ok();
    let holder_net = std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap();
    assert_eq!(out.stdout, format!("holder\n{}\n", holder_net.display()));
}

#[test]
fn user_namespace_with_mappings() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.push("/linux/namespaces", json!({"type": "user"}))
        .set(
            "/linux/uidMappings",
            json!([{"containerID": 0, "hostID": 100000, "size": 65536}]),
        )
        .set(
            "/linux/gidMappings",
            json!([{"containerID": 0, "hostID": 200000, "size": 65536}]),
        )
        .sh("cat /proc/self/uid_map /proc/self/gid_map; id -u");
    let c = rt.guard("userns");
    let out = rt.run(b.path(), c.id()).ok();
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", "100000", "65536"]);
    assert_eq!(rows[1], ["0", "200000", "65536"]);
    assert_eq!(rows[2], ["0"]);
}

#[test]
fn sysctls_are_set_in_the_container_namespaces() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.set(
        "/linux/sysctl",
        json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "123456789"}),
    )
    .sh("cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax");
    let c = rt.guard("sysctl");
    assert_eq!(rt.run(b.path(), c.id()).ok().stdout, "1\n123456789\n");
}
