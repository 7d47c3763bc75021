//! What the container process is given: args, env, cwd, user and groups, hostname,
//! capabilities, rlimits, oom_score_adj, no_new_privileges.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// Runs the bundle to completion and returns its stdout, asserting success.
fn output_of(b: &Bundle, name: &str) -> String {
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    out.stdout
}

/// The value of a `Key:` line in /proc/self/status as printed by the container.
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status}"))
        .trim()
        .to_string()
}

#[test]
fn env_cwd_and_args() {
    let mut b = Bundle::busybox();
    b.set(
        "/process/env",
        json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]),
    )
    .set("/process/cwd", json!("/tmp"))
    .args(&[
        "sh",
        "-c",
        "echo \"$FOO|$EMPTY|$(pwd)|$0|$1\"",
        "zero",
        "one",
    ]);
    assert_eq!(output_of(&b, "env"), "bar baz||/tmp|zero|one\n");
}

/// As runc: PATH is only needed to search a bare name; a program given as a path runs with
/// no env at all (containerd's CRI plugin runs images built FROM scratch that way), and a
/// bare name without PATH is refused with a one-line reason.
#[test]
fn program_path_runs_without_path_in_env() {
    let mut b = Bundle::busybox();
    b.remove("/process/env").args(&["/bin/env"]);
    let env = output_of(&b, "nopath");
    assert!(!env.lines().any(|l| l.starts_with("PATH=")), "{env}");

    let mut b = Bundle::busybox();
    b.remove("/process/env").args(&["sh", "-c", "true"]);
    let rt = Runtime::new();
    let c = rt.guard("nopathbare");
    let out = rt.run(b.path(), c.id());
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("sh") && out.stderr.contains("not found in $PATH"),
        "{out:?}"
    );
}

#[test]
fn cwd_that_does_not_exist_is_created() {
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false))
        .set("/process/cwd", json!("/new/dir"))
        .sh("pwd");
    assert_eq!(output_of(&b, "cwdnew"), "/new/dir\n");
}

#[test]
fn user_group_and_additional_gids() {
    let mut b = Bundle::busybox();
    b.set(
        "/process/user",
        json!({"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}),
    )
    .sh("id -u; id -g; cat /proc/self/status | grep ^Groups; echo $HOME");
    let out = output_of(&b, "user");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1000");
    assert_eq!(lines[1], "1000");
    let groups: Vec<&str> = lines[2]
        .trim_start_matches("Groups:")
        .split_whitespace()
        .collect();
    assert!(
        groups.contains(&"2000") && groups.contains(&"3000"),
        "{out}"
    );
    assert_eq!(lines[3], "/home/user", "HOME from /etc/passwd");
}

#[test]
fn umask_is_applied() {
    let mut b = Bundle::busybox();
    b.set("/process/user/umask", json!(0o077)).sh("umask");
    assert_eq!(output_of(&b, "umask"), "0077\n");
}

/// domainname is runtime-spec 1.2 (runc >= 1.2); Debian's runc 1.1 ignores it.
#[test]
fn hostname_and_domainname() {
    let mut b = Bundle::busybox();
    b.set("/hostname", json!("box-one"))
        .set("/domainname", json!("example.test"))
        .sh("hostname; cat /proc/sys/kernel/domainname");
    assert_eq!(output_of(&b, "host"), "box-one\nexample.test\n");
}

#[test]
fn capabilities_sets_are_applied() {
    let mut b = Bundle::busybox();
    // CAP_CHOWN = 0, CAP_KILL = 5, CAP_NET_BIND_SERVICE = 10.
    b.set(
        "/process/capabilities",
        json!({
            "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            "effective": ["CAP_KILL"],
            "permitted": ["CAP_KILL", "CAP_CHOWN"],
            "inheritable": [],
            "ambient": []
        }),
    )
    .sh("cat /proc/self/status");
    let out = output_of(&b, "caps");
    assert_eq!(status_field(&out, "CapBnd"), "0000000000000421");
    // uid 0 execs with effective raised to permitted (capabilities(7)), as with runc.
    assert_eq!(status_field(&out, "CapEff"), "0000000000000021");
    assert_eq!(status_field(&out, "CapPrm"), "0000000000000021");
    assert_eq!(status_field(&out, "CapInh"), "0000000000000000");
}

#[test]
fn a_dropped_capability_is_enforced() {
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false))
        .sh("touch /f; chown 1000 /f 2>/dev/null && echo chowned || echo denied");
    // runc's default set has no CAP_CHOWN.
    assert_eq!(output_of(&b, "nochown"), "denied\n");
}

#[test]
fn rlimits_are_applied() {
    let mut b = Bundle::busybox();
    b.set(
        "/process/rlimits",
        json!([
            {"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 512},
            {"type": "RLIMIT_NPROC", "hard": 300, "soft": 200}
        ]),
    )
    .sh("ulimit -n; ulimit -Hn; ulimit -u");
    assert_eq!(output_of(&b, "rlim"), "512\n4096\n200\n");
}

#[test]
fn oom_score_adj_is_applied() {
    let mut b = Bundle::busybox();
    b.set("/process/oomScoreAdj", json!(123))
        .sh("cat /proc/self/oom_score_adj");
    assert_eq!(output_of(&b, "oom"), "123\n");
}

#[test]
fn no_new_privileges_true_and_false() {
    let mut b = Bundle::busybox();
    b.set("/process/noNewPrivileges", json!(true))
        .sh("grep NoNewPrivs /proc/self/status");
    assert_eq!(output_of(&b, "nnp1").split_whitespace().last(), Some("1"));
    b.set("/process/noNewPrivileges", json!(false));
    assert_eq!(output_of(&b, "nnp0").split_whitespace().last(), Some("0"));
}
