//! Hostile config.json: schema violations, absurd values, relative paths where the runtime
//! spec requires absolute ones, missing sections. Each is refused by `create` with one error
//! line that names config.json and the field, exit 1, and nothing left behind. (The
//! property that no input makes loading panic is runtime/src/container/config_fuzz.rs.)

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Runtime};

/// An edit of the default config.
enum Edit {
    Set(&'static str, Value),
    Push(&'static str, Value),
    Remove(&'static str),
}

/// Applies the edits, runs `create`, and checks the refusal names `field`.
fn assert_refused(rt: &Runtime, name: &str, edits: Vec<Edit>, field: &str) {
    let mut b = Bundle::busybox();
    for e in edits {
        match e {
            // An existing value (array items included) is replaced in place.
            // Set in place when the parent exists (array items included).
            Edit::Set(p, v) => {
                let (parent, key) = p.rsplit_once('/').unwrap();
                match b.config.pointer_mut(parent) {
                    Some(Value::Object(obj)) => {
                        obj.insert(key.to_string(), v);
                        b.write();
                        &mut b
                    }
                    Some(Value::Array(arr)) => {
                        arr[key.parse::<usize>().unwrap()] = v;
                        b.write();
                        &mut b
                    }
                    _ => b.set(p, v),
                }
            }
            Edit::Push(p, v) => b.push(p, v),
            Edit::Remove(p) => b.remove(p),
        };
    }
    let c = rt.guard(name);
    let out = rt.create(b.path(), c.id());
    assert_eq!(out.code, 1, "{name}: expected a refusal: {out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{name}: one error line: {out:?}");
    assert!(
        lines[0].contains("config.json") && lines[0].contains(field),
        "{name}: the error names config.json and {field:?}: {}",
        lines[0]
    );
    assert!(!rt.root().join(c.id()).exists(), "{name}: state left");
    assert!(cgroup_dirs_named(c.id()).is_empty(), "{name}: cgroup left");
    eprintln!("{name}: {}", lines[0]);
}

#[test]
fn schema_violations_name_the_field() {
    let rt = Runtime::new();
    use Edit::*;
    let cases: Vec<(&str, Vec<Edit>, &str)> = vec![
        (
            "args-string",
            vec![Set("/process/args", json!("sh"))],
            "process.args",
        ),
        (
            "uid-negative",
            vec![Set("/process/user/uid", json!(-1))],
            "process.user.uid",
        ),
        (
            "uid-huge",
            vec![Set("/process/user/uid", json!(1u64 << 40))],
            "process.user.uid",
        ),
        // (An unknown capability *name* is ignored with runc's warning:
        // runtime_capabilities.rs.)
        (
            "cap-not-a-string",
            vec![Set("/process/capabilities/bounding", json!([7]))],
            "process.capabilities.bounding",
        ),
        (
            "ns-unknown",
            vec![Set("/linux/namespaces/0/type", json!("bogus"))],
            "linux.namespaces",
        ),
        (
            "rlimit-unknown",
            vec![Set("/process/rlimits/0/type", json!("RLIMIT_BOGUS"))],
            "process.rlimits",
        ),
        ("mounts-object", vec![Set("/mounts", json!({}))], "mounts"),
        (
            "version-number",
            vec![Set("/ociVersion", json!(1))],
            "ociVersion",
        ),
        (
            "hostname-array",
            vec![Set("/hostname", json!(["x"]))],
            "hostname",
        ),
        (
            "memory-string",
            vec![Set("/linux/resources/memory", json!({"limit": "lots"}))],
            "linux.resources.memory.limit",
        ),
    ];
    for (name, edits, field) in cases {
        assert_refused(&rt, name, edits, field);
    }
}

#[test]
fn absurd_values_name_the_field() {
    let rt = Runtime::new();
    use Edit::*;
    let cases: Vec<(&str, Vec<Edit>, &str)> = vec![
        (
            "version-2",
            vec![Set("/ociVersion", json!("2.0.0"))],
            "ociVersion",
        ),
        (
            "args-empty",
            vec![Set("/process/args", json!([]))],
            "process.args",
        ),
        (
            "rlimit-soft-above-hard",
            vec![Set("/process/rlimits/0/soft", json!(4096))],
            "process.rlimits[0]",
        ),
        (
            "rlimit-twice",
            vec![Push(
                "/process/rlimits",
                json!({"type": "RLIMIT_NOFILE", "hard": 10, "soft": 10}),
            )],
            "process.rlimits[1]",
        ),
        (
            "oom-score",
            vec![Set("/process/oomScoreAdj", json!(5000))],
            "process.oomScoreAdj",
        ),
        (
            "hostname-long",
            vec![Set("/hostname", json!("h".repeat(100)))],
            "hostname",
        ),
        (
            "memory-negative",
            vec![Set("/linux/resources/memory", json!({"limit": -5}))],
            "linux.resources.memory.limit",
        ),
        (
            "swappiness",
            vec![Set("/linux/resources/memory", json!({"swappiness": 1000}))],
            "linux.resources.memory.swappiness",
        ),
        (
            "pids-negative",
            vec![Set("/linux/resources/pids", json!({"limit": -7}))],
            "linux.resources.pids.limit",
        ),
        (
            "cpu-quota-negative",
            vec![Set("/linux/resources/cpu", json!({"quota": -5}))],
            "linux.resources.cpu.quota",
        ),
        (
            "ns-twice",
            vec![Push("/linux/namespaces", json!({"type": "pid"}))],
            "linux.namespaces[5]",
        ),
        (
            "uidmap-size-zero",
            vec![Set(
                "/linux/uidMappings",
                json!([{"containerID": 0, "hostID": 0, "size": 0}]),
            )],
            "linux.uidMappings[0].size",
        ),
        (
            "hook-timeout-zero",
            vec![Set(
                "/hooks",
                json!({"prestart": [{"path": "/bin/true", "timeout": 0}]}),
            )],
            "hooks.prestart[0].timeout",
        ),
    ];
    for (name, edits, field) in cases {
        assert_refused(&rt, name, edits, field);
    }
}

#[test]
fn relative_paths_where_absolute_are_required_name_the_field() {
    let rt = Runtime::new();
    use Edit::*;
    let cases: Vec<(&str, Vec<Edit>, &str)> = vec![
        (
            "cwd",
            vec![Set("/process/cwd", json!("relative/dir"))],
            "process.cwd",
        ),
        (
            "mount-destination",
            vec![Push(
                "/mounts",
                json!({"destination": "relative/mnt", "type": "tmpfs", "source": "tmpfs"}),
            )],
            "mounts[7].destination",
        ),
        (
            "hook-path",
            vec![Set("/hooks", json!({"poststart": [{"path": "bin/true"}]}))],
            "hooks.poststart[0].path",
        ),
        (
            "ns-path",
            vec![Set("/linux/namespaces/0/path", json!("proc/1/ns/pid"))],
            "linux.namespaces[0].path",
        ),
        // Relative maskedPaths and readonlyPaths are accepted, taken from the container's
        // root as runc takes them: runtime_mounts.rs::relative_masked_and_readonly_paths_apply.
        (
            "device-path",
            vec![Set(
                "/linux/devices",
                json!([{"path": "dev/fuse", "type": "c", "major": 10, "minor": 229}]),
            )],
            "linux.devices[0].path",
        ),
    ];
    for (name, edits, field) in cases {
        assert_refused(&rt, name, edits, field);
    }
}

#[test]
fn missing_sections_name_the_field() {
    let rt = Runtime::new();
    use Edit::*;
    for (name, ptr, field) in [
        ("no-process", "/process", "process"),
        ("no-root", "/root", "root"),
        ("no-linux", "/linux", "linux"),
        ("no-version", "/ociVersion", "ociVersion"),
    ] {
        assert_refused(&rt, name, vec![Remove(ptr)], field);
    }
}
