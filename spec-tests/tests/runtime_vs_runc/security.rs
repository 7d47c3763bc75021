//! runtime-spec `linux.seccomp` (actions, errno, architectures, argument comparisons,
//! flags, notify: issues 13.7, 19.2, 19.12) and the LSM fields (issue 12.6).

use serde_json::{json, Value};
use spec_tests::matrix::seccomp_listener::Listener;
use spec_tests::matrix::{cli, row, Class, Obs, Row};

const S: &str = "seccomp, LSM";

/// A profile allowing everything but `rules`.
fn profile(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": rules})
}

/// mkdir and mkdirat get `action` (errnoRet when given).
fn mkdir_rule(action: &str, errno: Option<u32>) -> Value {
    let mut r = json!({"names": ["mkdir", "mkdirat"], "action": action});
    if let Some(e) = errno {
        r["errnoRet"] = json!(e);
    }
    profile(json!([r]))
}

fn action(name: &str, action: &str, errno: Option<u32>) -> Row {
    row(S, format!("seccomp: {name}"))
        .set("/linux/seccomp", mkdir_rule(action, errno))
        .set("/root/readonly", json!(false))
        .sh("mkdir /d; echo rc=$?")
        .step(cli(&["run", "{id}"]).err(Class::Text))
}

/// chmod and fchmodat, the mode argument compared with `op`.
fn chmod_rule(op: &str, value: u64, value_two: u64) -> Value {
    let arg =
        |index: u32| json!([{"index": index, "value": value, "valueTwo": value_two, "op": op}]);
    profile(json!([
        {"names": ["chmod"], "action": "SCMP_ACT_ERRNO", "args": arg(1)},
        {"names": ["fchmodat"], "action": "SCMP_ACT_ERRNO", "args": arg(2)}
    ]))
}

fn chmod_row(name: &str, op: &str, value: u64, value_two: u64) -> Row {
    row(S, format!("seccomp args: {name}"))
        .set("/linux/seccomp", chmod_rule(op, value, value_two))
        .set("/root/readonly", json!(false))
        .sh("touch /f; for m in 755 644 700 600; do chmod $m /f 2>/dev/null; echo $m=$?; done")
        .run()
}

pub fn rows() -> Vec<Row> {
    vec![
        action("SCMP_ACT_ERRNO default errno (EPERM)", "SCMP_ACT_ERRNO", None),
        action("SCMP_ACT_ERRNO errnoRet 28", "SCMP_ACT_ERRNO", Some(28)),
        action("SCMP_ACT_KILL", "SCMP_ACT_KILL", None),
        action("SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_PROCESS", None),
        action("SCMP_ACT_KILL_THREAD", "SCMP_ACT_KILL_THREAD", None),
        action("SCMP_ACT_TRAP", "SCMP_ACT_TRAP", None),
        action("SCMP_ACT_LOG", "SCMP_ACT_LOG", None),
        action("SCMP_ACT_TRACE without a tracer", "SCMP_ACT_TRACE", Some(1)),
        action("SCMP_ACT_ALLOW rule", "SCMP_ACT_ALLOW", None),
        row(S, "seccomp: an unknown action")
            .set("/linux/seccomp", mkdir_rule("SCMP_ACT_NO_SUCH", None))
            .args(&["true"])
            .run(),
        row(S, "seccomp: an unknown syscall name")
            .set("/linux/seccomp", profile(json!([{"names": ["no_such_syscall"], "action": "SCMP_ACT_ERRNO"}])))
            .args(&["echo", "ok"])
            .run(),
        row(S, "seccomp: an unknown architecture")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_NO_SUCH"]}))
            .args(&["true"])
            .run(),
        row(S, "seccomp: defaultAction SCMP_ACT_ERRNO with defaultErrnoRet")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 1,
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
            .args(&["true"])
            .run(),
        row(S, "seccomp: flags SECCOMP_FILTER_FLAG_LOG and SPEC_ALLOW")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"]}))
            .sh("grep -E '^(Seccomp|Speculation_Store_Bypass):' /proc/self/status")
            .run()
            .by_design("runc 1.1.5 as Debian builds it refuses every seccomp flag (\"seccomp flags are not yet supported by runc\"); we apply them as the runtime spec says"),
        row(S, "seccomp: an unknown flag")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_NO_SUCH"]}))
            .args(&["true"])
            .run(),
        row(S, "seccomp: the filter is in place (status)")
            .set("/linux/seccomp", mkdir_rule("SCMP_ACT_ERRNO", None))
            .sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
            .run(),
        row(S, "seccomp: noNewPrivileges false, getcwd denied after load (13.7)")
            .set("/process/noNewPrivileges", json!(false))
            .set("/linux/seccomp", profile(json!([{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}])))
            .args(&["echo", "started"])
            .run()
            .by_design("issue 13.7: the filter is loaded as late as crun loads it, so a profile denying a syscall the init uses (getcwd) works; runc 1.1.5 fails the run"),
        row(S, "seccomp: noNewPrivileges false, filter and NoNewPrivs")
            .set("/process/noNewPrivileges", json!(false))
            .set("/linux/seccomp", mkdir_rule("SCMP_ACT_ERRNO", None))
            .sh("grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status")
            .run(),
        chmod_row("SCMP_CMP_EQ mode == 0755", "SCMP_CMP_EQ", 0o755, 0),
        chmod_row("SCMP_CMP_NE mode != 0755", "SCMP_CMP_NE", 0o755, 0),
        chmod_row("SCMP_CMP_GT mode > 0700", "SCMP_CMP_GT", 0o700, 0),
        chmod_row("SCMP_CMP_LE mode <= 0644", "SCMP_CMP_LE", 0o644, 0),
        chmod_row("SCMP_CMP_MASKED_EQ value is the mask (19.2)", "SCMP_CMP_MASKED_EQ", 0o070, 0o050),
        row(S, "seccomp notify: the listener gets the state and the fd; notified syscalls fail without an agent (19.12)")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "{dir}/agent.sock",
                "listenerMetadata": "meta", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}))
            .set("/root/readonly", json!(false))
            .with(|s| {
                let l = Listener::start(&s.dir.join("agent.sock"), s.dir.join("agent.log"))?;
                s.cleanups.push(Box::new(move || l.stop()));
                Ok(())
            })
            .sh("mkdir /d; echo rc=$?")
            .step(cli(&["run", "{id}"]).err(Class::Text))
            .observe(Obs::File("agent.log", Class::JsonValues))
            .observe(Obs::File("agent.fds", Class::Text)),
        row(S, "seccomp notify: exec'd processes are notified too (19.12)")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "{dir}/agent.sock",
                "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]}))
            .set("/root/readonly", json!(false))
            .with(|s| {
                let l = Listener::start(&s.dir.join("agent.sock"), s.dir.join("agent.log"))?;
                s.cleanups.push(Box::new(move || l.stop()));
                Ok(())
            })
            .args(&["sleep", "100"])
            .daemon()
            .step(cli(&["exec", "{id}", "sh", "-c", "mkdir /e; echo rc=$?"]).err(Class::Text)),
        row(S, "seccomp notify: no listenerPath is refused")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
            .args(&["true"])
            .run(),
        row(S, "seccomp notify: a listener that is not there")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "{dir}/nobody.sock",
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}))
            .args(&["true"])
            .run(),
        row(S, "seccomp notify: notifying write is refused up front (19.12)")
            .set("/linux/seccomp", json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "{dir}/agent.sock",
                "syscalls": [{"names": ["write"], "action": "SCMP_ACT_NOTIFY"}]}))
            .args(&["true"])
            .run(),
        row(S, "apparmorProfile on a host without AppArmor (12.6)")
            .set("/process/apparmorProfile", json!("matrix-profile"))
            .args(&["true"])
            .run(),
        row(S, "selinuxLabel on a host without SELinux (12.6)")
            .set("/process/selinuxLabel", json!("system_u:system_r:container_t:s0"))
            .args(&["true"])
            .run(),
        row(S, "mountLabel on a host without SELinux (12.6)")
            .set("/linux/mountLabel", json!("system_u:object_r:container_file_t:s0"))
            .args(&["true"])
            .run(),
    ]
}
