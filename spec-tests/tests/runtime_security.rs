//! seccomp (a denied syscall returns the configured errno, with and without
//! no_new_privileges) and CVE-2019-5736 (a container must not be able to rewrite the
//! runtime binary through /proc/PID/exe).

use std::path::PathBuf;

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

/// Runs the runtime from a private copy so that a vulnerable runtime damages only the copy.
fn private_runtime_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("runtime-under-test");
    std::fs::copy(spec_tests::bins::runtime(), &copy).unwrap();
    (dir, copy)
}

#[test]
fn cve_2019_5736_container_cannot_rewrite_the_runtime_binary() {
    let (_dir, bin) = private_runtime_copy();
    let before = std::fs::read(&bin).unwrap();
    let rt = Runtime::with_bin(bin.clone());
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false));
    // The attack: the container's init is the runtime binary until it execs the user
    // program, so the program takes a handle on /proc/self/exe *as the runtime left it*
    // by running /proc/self/exe as its process (CVE-2019-5736's entry point)... Here, more
    // directly, a process outside the container holds the init's exe while it is the
    // runtime, waits for every runtime process to exit (so ETXTBSY no longer protects the
    // file), then reopens it for writing through /proc/self/fd.
    b.args(&["sleep", "30"]);
    let c = rt.guard("cve5736");
    rt.exec(&["create", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let pid = rt.state(c.id()).unwrap()["pid"].as_i64().unwrap();
    let exe = std::fs::File::open(format!("/proc/{pid}/exe")).expect("open the init's exe");
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", std::time::Duration::from_secs(10));
    use std::os::fd::AsRawFd;
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    match reopen {
        Ok(mut f) => {
            use std::io::Write;
            let _ = f.write_all(b"#!/bin/sh\necho pwned\n");
            panic!("the runtime binary was opened for writing through the container's exe");
        }
        Err(e) => assert!(
            matches!(
                e.raw_os_error(),
                Some(libc::EROFS) | Some(libc::ETXTBSY) | Some(libc::EACCES) | Some(libc::EPERM)
            ),
            "unexpected error {e}"
        ),
    }
    assert_eq!(
        std::fs::read(&bin).unwrap(),
        before,
        "runtime binary changed"
    );
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
