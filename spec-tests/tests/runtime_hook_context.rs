//! What a hook is given besides its own fields, as runc gives it: the state on stdin of
//! startContainer (`created`, the init's pid) and poststop (no pid) hooks, and the
//! environment of a hook without `env` (the runtime's own, as Go's exec does with a nil
//! Env; an empty `env` is an empty environment).

use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// A hook that saves its stdin to `{dir}/NAME.state`.
fn state_hook(dir: &std::path::Path, name: &str) -> Value {
    json!([{"path": "/bin/sh", "args": ["sh", "-c",
        format!("cat > {}/{name}.state", dir.display())]}])
}

/// Runs a container through create, start, kill and delete with a state-saving hook of
/// each kind in `kinds`; returns the states, by kind.
fn hook_states(kinds: &[&str]) -> Vec<(String, Value)> {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox();
    let hooks: serde_json::Map<String, Value> = kinds
        .iter()
        .map(|k| (k.to_string(), state_hook(dir.path(), k)))
        .collect();
    b.set("/hooks", Value::Object(hooks))
        .push(
            "/mounts",
            json!({"destination": dir.path(), "type": "bind", "source": dir.path(), "options": ["rbind", "rw"]}),
        )
        .args(&["sleep", "100"]);
    let c = rt.guard("hookstate");
    rt.create(b.path(), c.id()).ok();
    rt.exec(&["start", c.id()]).ok();
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", Duration::from_secs(10));
    rt.exec(&["delete", c.id()]).ok();
    kinds
        .iter()
        .map(|k| {
            let text = std::fs::read_to_string(dir.path().join(format!("{k}.state")))
                .unwrap_or_else(|e| panic!("{k} hook left no state: {e}"));
            (k.to_string(), serde_json::from_str(&text).unwrap())
        })
        .collect()
}

#[test]
fn start_container_and_poststop_hooks_see_runcs_state() {
    let states = hook_states(&["createContainer", "startContainer", "poststop"]);
    let of = |k: &str| states.iter().find(|(n, _)| n == k).unwrap().1.clone();
    // startContainer runs in the init once `start` lets it go: created, with its pid.
    let start = of("startContainer");
    assert_eq!(start["status"], "created", "{start}");
    assert!(start["pid"].as_i64().is_some_and(|p| p > 0), "{start}");
    // poststop: the container is stopped and has no process, so no pid.
    let stop = of("poststop");
    assert_eq!(stop["status"], "stopped", "{stop}");
    assert!(stop.get("pid").is_none(), "{stop}");
    // Negative control: the same reading sees the `creating` status createContainer
    // hooks are given, and a pid where there is one.
    let create = of("createContainer");
    assert_eq!(create["status"], "creating", "{create}");
    assert!(create["pid"].as_i64().is_some(), "{create}");
}

/// Runs `run` with a prestart hook whose `env` field is `env` (absent when None) and
/// HOOK_CONTEXT_MARK=1 in the runtime's own environment; returns which of PATH,
/// HOOK_CONTEXT_MARK and A the hook's environment has (its shell's own default PATH is
/// not exported, so `env` shows only what the hook was given).
fn hook_env(env: Option<Value>) -> String {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let mut hook = json!({"path": "/bin/sh", "args": ["sh", "-c",
        format!("env | grep -E '^(PATH|HOOK_CONTEXT_MARK|A)=' | sort | tr '\\n' ' ' > {}/env", dir.path().display())]});
    if let Some(env) = env {
        hook["env"] = env;
    }
    let mut b = Bundle::busybox();
    b.set("/hooks/prestart", json!([hook])).args(&["true"]);
    let c = rt.guard("hookenv");
    let mut cmd = rt.command();
    cmd.env("HOOK_CONTEXT_MARK", "1")
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(["run", "--bundle", &b.path().to_string_lossy(), c.id()]);
    let out = spec_tests::container::capture(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    std::fs::read_to_string(dir.path().join("env")).unwrap()
}

#[test]
fn a_hook_without_env_gets_the_runtimes_environment() {
    assert_eq!(
        hook_env(None),
        "HOOK_CONTEXT_MARK=1 PATH=/usr/sbin:/usr/bin:/sbin:/bin "
    );
    // Negative controls: a hook's own env is all it gets, and an empty one is empty.
    assert_eq!(hook_env(Some(json!(["A=2"]))), "A=2 ");
    assert_eq!(hook_env(Some(json!([]))), "");
}

/// `run` of /bin/true with a startContainer hook that makes a directory, under a seccomp
/// filter that kills mkdir when `filtered` (runc's seccomp.bats "startContainer hook":
/// the hook runs with the container's filter applied).
fn start_container_hook_under_seccomp(filtered: bool) -> spec_tests::container::Outcome {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    let action = if filtered {
        "SCMP_ACT_KILL"
    } else {
        "SCMP_ACT_ALLOW"
    };
    b.set("/process/args", json!(["/bin/true"]))
        .set(
            "/linux/seccomp",
            json!({"defaultAction": "SCMP_ACT_ALLOW",
                   "architectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32", "SCMP_ARCH_X86_64"],
                   "syscalls": [{"names": ["mkdir", "mkdirat"], "action": action}]}),
        )
        .set(
            "/hooks/startContainer",
            json!([{"path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"]}]),
        );
    let c = rt.guard("hookseccomp");
    rt.run(b.path(), c.id())
}

#[test]
fn a_start_container_hook_killed_by_seccomp_is_reported_as_runc_does() {
    let out = start_container_hook_under_seccomp(true);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr.contains("error running hook #0") && out.stderr.contains("bad system call"),
        "runc's words: {out:?}"
    );
    // Negative control: without the filter's kill the hook and the container succeed.
    let out = start_container_hook_under_seccomp(false);
    assert_eq!(out.code, 0, "{out:?}");
    assert!(!out.stderr.contains("error running hook"), "{out:?}");
}
