//! SCMP_ACT_NOTIFY (runc's seccomp-notify.bats): the listener fd reaches the agent named
//! by `listenerPath`, for `run` and for `exec`, with noNewPrivileges false or true; the
//! agent's failures are named as runc names them; profiles whose fd could not be handed
//! over are refused before anything is created.

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Runtime};
use spec_tests::seccomp_agent::SeccompAgent;

/// Allow everything, notify the agent on the given calls.
fn notify_profile(listener: &str, names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": listener,
        "listenerMetadata": "meta",
        "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    })
}

const MKDIR: &str = "mkdir /dev/shm/foo 2>&1; [ -d /dev/shm/foo ] && echo created || echo refused";

fn bundle(profile: Value, nnp: bool, script: &str) -> Bundle {
    let mut b = Bundle::busybox();
    b.set("/process/noNewPrivileges", json!(nnp))
        .set("/linux/seccomp", profile)
        .sh(script);
    b
}

#[test]
fn run_hands_the_listener_to_the_agent() {
    for nnp in [false, true] {
        let agent = SeccompAgent::start();
        let rt = Runtime::new();
        let socket = agent.socket().to_string_lossy().to_string();
        let b = bundle(notify_profile(&socket, &["mkdir", "mkdirat"]), nnp, MKDIR);
        let c = rt.guard("notifyrun");
        let out = rt.run(b.path(), c.id());
        assert_eq!(out.code, 0, "nnp {nnp}: {out:?}");
        assert!(out.stdout.contains("No medium found"), "nnp {nnp}: {out:?}");
        assert!(out.stdout.contains("refused"), "nnp {nnp}: {out:?}");
        let states = agent.states();
        assert_eq!(states.len(), 1, "{states:?}");
        assert_eq!(states[0]["metadata"], "meta", "{states:?}");
        assert_eq!(states[0]["fds"], json!(["seccompFd"]), "{states:?}");
        assert_eq!(states[0]["state"]["id"], c.id(), "{states:?}");
    }
}

#[test]
fn exec_hands_the_listener_to_the_agent() {
    for nnp in [false, true] {
        let agent = SeccompAgent::start();
        let rt = Runtime::new();
        let socket = agent.socket().to_string_lossy().to_string();
        let mut b = bundle(notify_profile(&socket, &["mkdir", "mkdirat"]), nnp, "");
        b.args(&["sleep", "60"]);
        let c = rt.guard("notifyexec");
        rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
            .ok();
        let out = rt.exec(&["exec", c.id(), "sh", "-c", MKDIR]);
        assert_eq!(out.code, 0, "nnp {nnp}: {out:?}");
        assert!(out.stdout.contains("No medium found"), "nnp {nnp}: {out:?}");
        let states = agent.states();
        assert_eq!(
            states.len(),
            2,
            "one for the init, one for the exec: {states:?}"
        );
        let init = rt.state(c.id()).unwrap()["pid"].clone();
        // The exec'd process is the process; the container's init is the state's pid.
        assert_eq!(states[1]["state"]["pid"], init, "{states:?}");
        assert_ne!(states[1]["pid"], init, "{states:?}");
        assert_eq!(states[1]["state"]["status"], "running", "{states:?}");
    }
}

#[test]
fn negative_control_without_the_notify_rule_mkdir_succeeds_in_exec() {
    // The check above sees an exec'd process the agent does not answer for.
    let agent = SeccompAgent::start();
    let rt = Runtime::new();
    let socket = agent.socket().to_string_lossy().to_string();
    let mut b = bundle(notify_profile(&socket, &["rmdir"]), true, "");
    b.args(&["sleep", "60"]);
    let c = rt.guard("notifyexecneg");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let out = rt.exec(&["exec", c.id(), "sh", "-c", MKDIR]).ok();
    assert!(out.stdout.contains("created"), "{out:?}");
}

/// A create that must fail on one line naming `cause`, leaving nothing.
fn refused(profile: Value, cause: &str) {
    let rt = Runtime::new();
    let b = bundle(profile, false, "true");
    let c = rt.guard("notifyrefused");
    let out = rt.run(b.path(), c.id());
    assert_ne!(out.code, 0, "{out:?}");
    assert!(out.stderr.contains(cause), "{cause}: {out:?}");
    assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
    assert!(rt.state(c.id()).is_none());
    assert!(!rt.root().join(c.id()).exists(), "state left behind");
    assert!(cgroup_dirs_named(c.id()).is_empty(), "cgroup left behind");
}

#[test]
fn notify_on_write_is_refused_up_front() {
    refused(
        notify_profile("/run/agent.sock", &["write"]),
        "SCMP_ACT_NOTIFY cannot be used for the write syscall",
    );
}

#[test]
fn notify_without_a_listener_path_is_refused_up_front() {
    refused(notify_profile("", &["mkdir"]), "listenerPath is not set");
}

#[test]
fn notify_as_the_default_action_is_refused_up_front() {
    let mut profile = notify_profile("/run/agent.sock", &["mkdir"]);
    profile["defaultAction"] = json!("SCMP_ACT_NOTIFY");
    refused(profile, "SCMP_ACT_NOTIFY cannot be used as default action");
}

#[test]
fn no_agent_listening_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("nobody.sock");
    refused(
        notify_profile(&socket.to_string_lossy(), &["mkdir"]),
        "failed to connect with seccomp agent specified in the seccomp profile",
    );
}
