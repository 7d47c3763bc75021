//! seccomp (a denied syscall returns the configured errno, with and without
//! no_new_privileges; exec'd processes are confined too). The container escapes
//! (CVE-2019-5736 and the others) are in runtime_escapes.rs.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

fn deny_mkdir(errno: u32) -> serde_json::Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno}]
    })
}

#[test]
fn seccomp_denied_syscall_returns_the_configured_errno() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    // errno 13 = EACCES ("Permission denied"), not busybox's usual EEXIST/EROFS.
    b.set("/linux/seccomp", deny_mkdir(13))
        .sh("mkdir /tmp/x 2>&1; echo rc=$?; ls /tmp");
    let c = rt.guard("seccomp");
    let out = rt.run(b.path(), c.id()).ok();
    assert!(out.stdout.contains("Permission denied"), "{out:?}");
    assert!(out.stdout.contains("rc=1"), "{out:?}");
}

#[test]
fn seccomp_with_no_new_privileges_false_runs_like_runc() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.set("/process/noNewPrivileges", json!(false))
        .set("/linux/seccomp", deny_mkdir(1))
        .sh("mkdir /tmp/x 2>&1; grep NoNewPrivs /proc/self/status");
    let c = rt.guard("seccompnnp");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("Operation not permitted"), "{out:?}");
    assert!(out.stdout.contains("NoNewPrivs:\t0"), "{out:?}");
}

#[test]
fn exec_processes_are_confined_by_the_container_seccomp_profile() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    // A writable root, so EPERM can only come from the filter.
    b.set("/root/readonly", json!(false))
        .set("/process/noNewPrivileges", json!(false))
        .set("/linux/seccomp", deny_mkdir(1))
        .args(&["sleep", "30"]);
    let c = rt.guard("execseccomp");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.wait_status(c.id(), "running", std::time::Duration::from_secs(10));
    let out = rt.exec(&[
        "exec",
        c.id(),
        "sh",
        "-c",
        "grep Seccomp: /proc/self/status; mkdir /x 2>&1",
    ]);
    assert!(out.stdout.contains("Seccomp:\t2"), "{out:?}");
    assert!(out.stdout.contains("Operation not permitted"), "{out:?}");
}
