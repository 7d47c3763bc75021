//! seccomp as runc applies it (issue 19, item 2; docs/SECURITY.md "seccomp"):
//! - `SCMP_CMP_MASKED_EQ` takes `value` as the mask and `valueTwo` as the datum
//!   (`(arg & value) == valueTwo`), as the runtime spec, runc and libseccomp read them;
//!   docker's default profile allows clone(2) only when `flags & CLONE_NEW* == 0`;
//! - a profile whose default action denies answers ENOSYS for system calls newer than the
//!   profile (runc's stub), so programs that probe for new calls fall back instead of
//!   failing: `syscall(1000)` returns -38.
//!
//! A static C probe (testdata/seccomp_probe.c, built with gcc) makes the raw calls. The
//! profile's default errno is 121 (EREMOTEIO), which no call here returns by itself, so a
//! denial by the filter is told apart from the kernel's own answers.

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// What the filter answers for calls it denies.
const DENIED: i64 = -121;

/// Everything the container's init (after loading the filter), busybox and the static
/// probe need; `socket`, `clone` and `unshare` are left to the rules below.
const ALLOWED: &[&str] = &[
    "accept",
    "accept4",
    "access",
    "arch_prctl",
    "brk",
    "capget",
    "capset",
    "chdir",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "dup",
    "dup2",
    "dup3",
    "execve",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fchdir",
    "fcntl",
    "fork",
    "fstat",
    "fstatfs",
    "futex",
    "getcwd",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "gettid",
    "getuid",
    "ioctl",
    "kill",
    "lseek",
    "lstat",
    "madvise",
    "mmap",
    "mprotect",
    "mremap",
    "munmap",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "pipe",
    "pipe2",
    "poll",
    "prctl",
    "pread64",
    "prlimit64",
    "read",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmsg",
    "rseq",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigreturn",
    "sched_getaffinity",
    "sched_yield",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setgid",
    "setgroups",
    "setpgid",
    "setpriority",
    "setresgid",
    "setresuid",
    "setsid",
    "setuid",
    "sigaltstack",
    "stat",
    "statx",
    "tgkill",
    "umask",
    "uname",
    "vfork",
    "wait4",
    "write",
    "writev",
];

/// The profile: default EREMOTEIO; clone allowed only without CLONE_NEW* flags (written as
/// docker writes it, `valueTwo` left out; read the old way round, the mask was 0 and every
/// clone passed); socket allowed only for protocols with `proto & 0xf0 == 0x10`
/// (`swapped` writes that rule's operands the wrong way round).
fn profile(swapped: bool) -> Value {
    let socket_arg = if swapped {
        json!({"index": 2, "value": 0x10, "valueTwo": 0xf0, "op": "SCMP_CMP_MASKED_EQ"})
    } else {
        json!({"index": 2, "value": 0xf0, "valueTwo": 0x10, "op": "SCMP_CMP_MASKED_EQ"})
    };
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 121,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [
            {"names": ALLOWED, "action": "SCMP_ACT_ALLOW"},
            {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
             "args": [{"index": 0, "value": 2114060288u64, "op": "SCMP_CMP_MASKED_EQ"}]},
            {"names": ["socket"], "action": "SCMP_ACT_ALLOW", "args": [socket_arg]}
        ]
    })
}

/// Builds the probe into the rootfs (statically: the busybox rootfs has no libc).
fn install_probe(rootfs: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/seccomp_probe.c");
    let out = Command::new("gcc")
        .args(["-static", "-O1", "-o"])
        .arg(rootfs.join("probe"))
        .arg(&src)
        .output()
        .expect("gcc (hack/install-deps.sh installs it)");
    assert!(
        out.status.success(),
        "gcc -static failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the probe under the profile; returns NAME -> RESULT.
fn probe(profile: Value, unsafe_switch: Option<&str>) -> std::collections::BTreeMap<String, i64> {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    install_probe(&b.rootfs());
    b.set("/linux/seccomp", profile).args(&["/probe"]);
    let c = rt.guard("seccompargs");
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle", &b.path().to_string_lossy(), c.id()]);
    if let Some(switch) = unsafe_switch {
        cmd.env("_RUNTIME_TEST_UNSAFE", switch);
    }
    let out = spec_tests::container::capture(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

#[test]
fn masked_eq_takes_value_as_the_mask_and_value_two_as_the_datum() {
    let r = probe(profile(false), None);
    // clone without namespace flags is allowed (docker's rule), with CLONE_NEWUTS denied.
    assert_eq!(r["clone_plain"], 0, "{r:?}");
    assert_eq!(r["clone_newuts"], DENIED, "{r:?}");
    // 0x10 & 0xf0 == 0x10: allowed, so the kernel answers (no such protocol); 0x30 & 0xf0
    // is 0x30: denied.
    assert_eq!(r["socket_0x10"], -libc::EPROTONOSUPPORT as i64, "{r:?}");
    assert_eq!(r["socket_0x30"], DENIED, "{r:?}");
}

#[test]
fn negative_control_a_rule_read_with_swapped_operands_is_seen() {
    // The check above does see the operands read the wrong way round: written so, the
    // rule becomes `proto & 0x10 == 0x10` (libseccomp masks the datum too), which lets
    // 0x30 through.
    let r = probe(profile(true), None);
    assert_eq!(r["socket_0x10"], -libc::EPROTONOSUPPORT as i64, "{r:?}");
    assert_eq!(r["socket_0x30"], -libc::EPROTONOSUPPORT as i64, "{r:?}");
}

#[test]
fn system_calls_newer_than_the_profile_get_enosys() {
    let r = probe(profile(false), None);
    assert_eq!(r["syscall_1000"], -libc::ENOSYS as i64, "{r:?}");
    // Older than the profile's newest entry and not allowed: the default action.
    assert_eq!(r["unshare"], DENIED, "{r:?}");
}

#[test]
fn negative_control_without_the_stub_new_calls_get_the_default_errno() {
    // Debug builds only: the profile loaded without runc's stub; the check above sees it.
    if !spec_tests::not_run::negative_control_has_test_switches() {
        return;
    }
    let r = probe(profile(false), Some("seccomp-no-enosys-stub"));
    assert_eq!(r["syscall_1000"], DENIED, "{r:?}");
}
