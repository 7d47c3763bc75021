//! The loopback device of a network namespace the runtime creates is up, as runc makes it
//! (every imgtool bundle and podman's `--network none` rely on 127.0.0.1); a namespace
//! joined by path is left as it is.

use std::process::{Child, Command, Stdio};

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// Prints lo's flags, then fetches a word over a TCP connection to 127.0.0.1 (the server
/// sends it from a file; the client retries until the server listens, two seconds at
/// most) and prints it, or "unreachable".
const REACH_LOOPBACK: &str = "ip -o link show lo | cut -d' ' -f3; \
    mkdir -p /tmp; echo reached > /tmp/msg; nc -l -p 8080 < /tmp/msg & srv=$!; got=''; \
    for i in $(seq 40); do got=$(nc 127.0.0.1 8080 </dev/null 2>/dev/null) && [ -n \"$got\" ] && break; sleep 0.05; done; \
    if [ -n \"$got\" ]; then wait $srv; echo \"$got\"; else kill $srv; echo unreachable; fi";

#[test]
fn a_new_network_namespace_has_loopback_up() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false)).sh(REACH_LOOPBACK);
    let c = rt.guard("lo");
    let out = rt.run(b.path(), c.id()).ok();
    let flags = out.stdout.lines().next().unwrap_or_default();
    assert!(flags.contains(",UP"), "lo is not up: {out:?}");
    assert_eq!(out.stdout.lines().nth(1), Some("reached"), "{out:?}");
}

/// A process in a network namespace of its own whose lo nobody brought up.
struct DownNetns(Child);

impl DownNetns {
    fn new() -> Self {
        Self(
            Command::new("unshare")
                .args(["--net", "sleep", "60"])
                .stdin(Stdio::null())
                .spawn()
                .unwrap(),
        )
    }

    fn path(&self) -> String {
        // unshare execs sleep in the new namespace; wait until it has.
        let me = std::fs::read_link("/proc/self/ns/net").unwrap();
        let path = format!("/proc/{}/ns/net", self.0.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while std::fs::read_link(&path).ok().is_none_or(|ns| ns == me) {
            assert!(
                std::time::Instant::now() < deadline,
                "unshare --net did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        path
    }
}

impl Drop for DownNetns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn negative_control_a_joined_namespace_with_lo_down_is_left_alone() {
    // The checks above do see a loopback that is down: a namespace joined by path keeps
    // lo as it is (runc's behaviour too), and then 127.0.0.1 is unreachable.
    let netns = DownNetns::new();
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    let namespaces = json!([{"type": "pid"}, {"type": "network", "path": netns.path()},
        {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}]);
    b.set("/root/readonly", json!(false))
        .set("/linux/namespaces", namespaces)
        .sh(REACH_LOOPBACK);
    let c = rt.guard("lodown");
    let out = rt.run(b.path(), c.id()).ok();
    let flags = out.stdout.lines().next().unwrap_or_default();
    assert!(!flags.contains(",UP"), "{out:?}");
    assert!(out.stdout.contains("unreachable"), "{out:?}");
}

fn podman_network_none(runtime: &std::path::Path) {
    let Some(pm) = spec_tests::podman::Podman::new(runtime) else {
        return;
    };
    let out = pm.podman(&[
        "run",
        "--rm",
        "--network",
        "none",
        spec_tests::podman::IMAGE,
        "sh",
        "-c",
        REACH_LOOPBACK,
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains(",UP"),
        "{out:?}"
    );
    assert_eq!(out.stdout.lines().nth(1), Some("reached"), "{out:?}");
}

#[test]
fn podman_network_none_reaches_loopback_on_our_runtime() {
    podman_network_none(&spec_tests::bins::runtime());
}

#[test]
fn podman_network_none_reaches_loopback_on_runc() {
    podman_network_none(&spec_tests::host::runc());
}
