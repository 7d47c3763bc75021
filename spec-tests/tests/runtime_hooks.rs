//! All six hook kinds run, in the order the runtime spec gives, each with the container
//! state on stdin.

use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// A hook that appends "<name> <state JSON>" to the log file.
fn hook(log: &str, name: &str) -> Value {
    json!({
        "path": "/bin/sh",
        "args": ["sh", "-c", format!("printf '%s ' {name} >> {log}; cat >> {log}; echo >> {log}")]
    })
}

#[test]
fn all_six_hooks_run_in_order_with_the_state_on_stdin() {
    let rt = Runtime::new();
    let c = rt.guard("hooks");
    let mut b = Bundle::busybox();
    // Hooks run in different mount namespaces (createContainer and startContainer in the
    // container's), so the log directory is bind-mounted at the same path inside.
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("hooks.log");
    let l = log.to_string_lossy().to_string();
    b.push(
        "/mounts",
        json!({"destination": logdir.path(), "type": "bind", "source": logdir.path(), "options": ["rbind", "rw"]}),
    )
    .args(&["sleep", "30"])
    .set(
        "/hooks",
        json!({
            "prestart": [hook(&l, "prestart")],
            "createRuntime": [hook(&l, "createRuntime")],
            "createContainer": [hook(&l, "createContainer")],
            "startContainer": [hook(&l, "startContainer")],
            "poststart": [hook(&l, "poststart")],
            "poststop": [hook(&l, "poststop")]
        }),
    );
    rt.exec(&["create", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", Duration::from_secs(10));
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", Duration::from_secs(10));
    rt.exec(&["delete", c.id()]).ok();

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<(String, Value)> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (name, state) = l.split_once(' ').expect("name and state");
            (
                name.to_string(),
                serde_json::from_str(state).unwrap_or_else(|e| panic!("{e}: {l}")),
            )
        })
        .collect();
    let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
    // runtime-spec: prestart and createRuntime (runtime namespace), createContainer
    // (Debian's runc 1.1 races poststart against startContainer and fails this order.)
    // (container namespace), then on start startContainer, then poststart; poststop on
    // delete.
    assert_eq!(
        names,
        [
            "prestart",
            "createRuntime",
            "createContainer",
            "startContainer",
            "poststart",
            "poststop"
        ],
        "{text}"
    );
    for (name, state) in &entries {
        assert_eq!(state["id"], c.id(), "{name}: {state}");
        assert!(state["ociVersion"].is_string(), "{name}: {state}");
        assert!(state["bundle"].is_string(), "{name}: {state}");
    }
    let status_of = |n: &str| {
        entries
            .iter()
            .find(|(x, _)| x == n)
            .map(|(_, s)| s["status"].clone())
    };
    assert_eq!(status_of("createRuntime"), Some(json!("creating")));
    assert_eq!(status_of("poststart"), Some(json!("running")));
    assert_eq!(status_of("poststop"), Some(json!("stopped")));
}

#[test]
fn start_container_hook_runs_inside_the_container() {
    let rt = Runtime::new();
    let c = rt.guard("inhooks");
    let mut b = Bundle::busybox();
    // startContainer runs in the container after pivot_root: it sees the container's
    // hostname and its root file system (a file only the rootfs has).
    std::fs::write(b.rootfs().join("only-in-rootfs"), "").unwrap();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("in.log");
    b.push(
        "/mounts",
        json!({"destination": logdir.path(), "type": "bind", "source": logdir.path(), "options": ["rbind", "rw"]}),
    )
    .set("/hostname", json!("hooked"))
    .args(&["true"])
    .set(
        "/hooks",
        json!({"startContainer": [{"path": "/bin/sh", "args": ["sh", "-c",
            format!("hostname > {0}; ls /only-in-rootfs >> {0}", log.display())]}]}),
    );
    rt.run(b.path(), c.id()).ok();
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "hooked\n/only-in-rootfs\n"
    );
}

#[test]
fn a_failing_prestart_hook_fails_create_and_leaves_nothing() {
    let rt = Runtime::new();
    let c = rt.guard("badhook");
    let mut b = Bundle::busybox();
    b.args(&["true"])
        .set("/hooks", json!({"createRuntime": [{"path": "/bin/false"}]}));
    let out = rt.exec(&["create", "--bundle", &b.path().to_string_lossy(), c.id()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert!(rt.state(c.id()).is_none());
    assert!(
        !rt.root().join(c.id()).exists(),
        "state directory left behind"
    );
}
