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

/// A list of two hooks of `kind`: the first appends "one" to the log and fails with
/// `status`, the second appends "two".
fn failing_then_ok(log: &std::path::Path, status: i32) -> Value {
    let l = log.display();
    json!([
        {"path": "/bin/sh", "args": ["sh", "-c", format!("cat >/dev/null; echo one >> {l}; exit {status}")]},
        {"path": "/bin/sh", "args": ["sh", "-c", format!("cat >/dev/null; echo two >> {l}")]}
    ])
}

/// Whether the container is gone: no state, no state directory, no cgroup.
fn container_gone(rt: &Runtime, id: &str) -> bool {
    rt.state(id).is_none()
        && !rt.root().join(id).exists()
        && spec_tests::container::cgroup_dirs_named(id).is_empty()
}

#[test]
fn a_failing_poststop_hook_is_a_warning_the_rest_run_and_delete_removes_the_container() {
    let rt = Runtime::new();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("poststop.log");
    let mut b = Bundle::busybox();
    b.args(&["true"])
        .set("/hooks", json!({"poststop": failing_then_ok(&log, 3)}));

    // create, start, delete: delete succeeds with a warning naming the hook.
    let c = rt.guard("poststop");
    rt.create(b.path(), c.id()).ok();
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "stopped", Duration::from_secs(10));
    let out = rt.exec(&["delete", c.id()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("warning") && out.stderr.contains("poststop hook #0"),
        "{out:?}"
    );
    assert!(container_gone(&rt, c.id()), "the container was not removed");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");

    // run: the container is removed when it exits, the same way.
    std::fs::remove_file(&log).unwrap();
    let c = rt.guard("poststoprun");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("poststop hook #0"), "{out:?}");
    assert!(container_gone(&rt, c.id()), "run left the container");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
}

#[test]
fn a_failing_poststart_hook_is_a_warning_and_the_rest_run() {
    let rt = Runtime::new();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("poststart.log");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"])
        .set("/hooks", json!({"poststart": failing_then_ok(&log, 4)}));
    let c = rt.guard("poststart");
    rt.create(b.path(), c.id()).ok();
    let out = rt.exec(&["start", c.id()]);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains("poststart hook #0"), "{out:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\ntwo\n");
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
}

#[test]
fn negative_control_a_failing_prestart_hook_stops_the_list_and_the_container_stays_checkable() {
    // The detectors above see both failures: prestart must stop at its first failing hook
    // (runtime spec), so "two" is missing; and a container that is still there is not
    // "gone".
    let rt = Runtime::new();
    let logdir = tempfile::tempdir().unwrap();
    let log = logdir.path().join("prestart.log");
    let mut b = Bundle::busybox();
    b.args(&["true"])
        .set("/hooks", json!({"prestart": failing_then_ok(&log, 5)}));
    let c = rt.guard("prestartneg");
    let out = rt.create(b.path(), c.id());
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(std::fs::read_to_string(&log).unwrap(), "one\n");

    b.remove("/hooks");
    let c = rt.guard("presentneg");
    rt.create(b.path(), c.id()).ok();
    assert!(!container_gone(&rt, c.id()));
}

#[test]
fn hooks_run_in_runc_working_directories() {
    // runc changes into the bundle for create, and into the rootfs before the
    // createContainer hooks (runc's hooks.bats bind-mounts onto ./lib/... from one).
    let rt = Runtime::new();
    let logdir = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox();
    std::fs::write(b.rootfs().join("only-in-rootfs"), "").unwrap();
    let pwd_hook = |name: &str| {
        let log = logdir.path().join(name);
        json!([{"path": "/bin/sh", "args": ["sh", "-c",
            format!("cat >/dev/null; pwd > {0}; ls ./only-in-rootfs >> {0} 2>&1 || true", log.display())]}])
    };
    b.push(
        "/mounts",
        json!({"destination": logdir.path(), "type": "bind", "source": logdir.path(), "options": ["rbind", "rw"]}),
    )
    .args(&["true"])
    .set(
        "/hooks",
        json!({
            "prestart": pwd_hook("prestart"),
            "createRuntime": pwd_hook("createRuntime"),
            "createContainer": pwd_hook("createContainer"),
            "poststop": pwd_hook("poststop")
        }),
    );
    let c = rt.guard("hookcwd");
    // The runtime runs from a directory that is neither the bundle nor the rootfs.
    let elsewhere = tempfile::tempdir().unwrap();
    let in_elsewhere = |args: &[&str]| {
        let mut cmd = rt.command();
        cmd.current_dir(elsewhere.path()).args(args);
        let out = spec_tests::container::capture(cmd);
        assert_eq!(out.code, 0, "{args:?}: {out:?}");
    };
    in_elsewhere(&["create", "--bundle", &b.path().to_string_lossy(), c.id()]);
    in_elsewhere(&["start", c.id()]);
    rt.wait_status(c.id(), "stopped", Duration::from_secs(10));
    in_elsewhere(&["delete", c.id()]);
    let first_line = |name: &str| {
        std::fs::read_to_string(logdir.path().join(name))
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .to_string()
    };
    let bundle = std::fs::canonicalize(b.path()).unwrap();
    let rootfs = bundle.join("rootfs");
    assert_eq!(first_line("prestart"), bundle.to_string_lossy());
    assert_eq!(first_line("createRuntime"), bundle.to_string_lossy());
    let create_container = std::fs::read_to_string(logdir.path().join("createContainer")).unwrap();
    assert_eq!(
        create_container,
        format!("{}\n./only-in-rootfs\n", rootfs.display()),
        "createContainer hooks run in the rootfs"
    );
    // Negative control: the same check sees the caller's directory where runc leaves it,
    // in the poststop hooks `delete` runs (`runc run` runs them in the bundle, ours in the
    // caller's directory: docs/runtime.md).
    assert_eq!(
        first_line("poststop"),
        std::fs::canonicalize(elsewhere.path())
            .unwrap()
            .to_string_lossy()
    );
}
