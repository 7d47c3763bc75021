//! podman 4.3 + conmon with `--runtime`: the same scenarios prove our runtime and runc.

use std::path::Path;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;
use spec_tests::podman::{Podman, IMAGE};

fn scenario(runtime: &Path) {
    let Some(pm) = Podman::new(runtime) else {
        return;
    };

    let out = pm.podman(&[
        "run",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "echo hello-podman; exit 3",
    ]);
    assert_eq!(out.code, 3, "{out:?}");
    assert_eq!(out.stdout, "hello-podman\n");

    // podman maps the runtime's error to the shell's statuses by runc's words (libpod's
    // getOCIRuntimeError): "no such file or directory" or "executable file not found" is
    // 127, "permission denied" or "operation not permitted" 126 (/etc/hosts: a file podman
    // mounts, not executable).
    for (program, code) in [("/no/such", 127), ("nosuchcmd", 127), ("/etc/hosts", 126)] {
        let out = pm.podman(&["run", "--rm", IMAGE, program]);
        assert_eq!(out.code, code, "podman run {program}: {out:?}");
    }

    let out = pm.podman_with_tty(&[
        "run",
        "-t",
        "--rm",
        IMAGE,
        "sh",
        "-c",
        "[ -t 0 ] && echo tty-ok",
    ]);
    assert!(out.stdout.contains("tty-ok"), "{out:?}");

    pm.podman(&["run", "-d", "--name", "p1", IMAGE, "sleep", "100"])
        .ok();
    let out = pm.podman(&["exec", "p1", "sh", "-c", "echo exec-ok; exit 4"]);
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.stdout, "exec-ok\n");
    let out = pm.podman_with_tty(&[
        "exec",
        "-t",
        "p1",
        "sh",
        "-c",
        "[ -t 0 ] && echo exec-tty-ok",
    ]);
    assert!(out.stdout.contains("exec-tty-ok"), "{out:?}");

    let status = |pm: &Podman| {
        pm.podman(&["ps", "-a", "--format", "{{.Status}}", "--filter", "name=p1"])
            .ok()
            .stdout
    };
    pm.podman(&["pause", "p1"]).ok();
    assert!(status(&pm).contains("Paused"), "{}", status(&pm));
    pm.podman(&["unpause", "p1"]).ok();
    assert!(status(&pm).starts_with("Up"), "{}", status(&pm));

    // update: the new limit is in the container's memory cgroup.
    pm.podman(&["update", "--memory", "64m", "p1"]).ok();
    let pid = pm
        .podman(&["inspect", "-f", "{{.State.Pid}}", "p1"])
        .ok()
        .stdout
        .trim()
        .to_string();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let mem = cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .unwrap();
    let limit =
        std::fs::read_to_string(format!("/sys/fs/cgroup/memory{mem}/memory.limit_in_bytes"))
            .unwrap();
    assert_eq!(limit.trim(), "67108864");

    pm.podman(&["restart", "-t", "1", "p1"]).ok();
    assert!(status(&pm).starts_with("Up"), "{}", status(&pm));
    pm.podman(&["stop", "-t", "1", "p1"]).ok();
    assert!(status(&pm).starts_with("Exited"), "{}", status(&pm));
    pm.podman(&["start", "p1"]).ok();
    pm.podman(&["kill", "p1"]).ok();
    pm.podman(&["rm", "-f", "p1"]).ok();
    assert_eq!(pm.podman(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn podman_runs_containers_on_our_runtime() {
    scenario(&spec_tests::bins::runtime());
}

#[test]
fn podman_runs_containers_on_runc() {
    scenario(&spec_tests::host::runc());
}

/// What docker's CLI makes of a runtime error (cli/command/container/run.go): the same
/// words as podman, matched case-sensitively, so only Go's spelling of the error number
/// gives 127 or 126; anything else is 125.
fn docker_cli_status(runtime_error: &str) -> i32 {
    if runtime_error.contains("executable file not found")
        || runtime_error.contains("no such file or directory")
    {
        127
    } else if runtime_error.contains("permission denied")
        || runtime_error.contains("is a directory")
    {
        126
    } else {
        125
    }
}

/// Negative control of the statuses above: the error our runtime printed for a missing
/// bind source before errno texts were spelled as Go's (issue 13.8) was not "not found"
/// to a case-sensitive matcher; runc's is, and ours now is too (both run here).
#[test]
fn the_status_matcher_sees_rusts_errno_spelling() {
    let before = "failed to prepare rootfs: mounts[7] (bind /no/such/source on /mnt/m): io error: No such file or directory (os error 2)";
    assert_eq!(
        docker_cli_status(before),
        125,
        "the matcher must refuse {before:?}"
    );
    let mut b = Bundle::busybox();
    b.args(&["true"]).push(
        "/mounts",
        json!({"destination": "/mnt/m", "type": "bind", "source": "/no/such/source", "options": ["bind"]}),
    );
    b.write();
    for bin in [spec_tests::bins::runtime(), spec_tests::host::runc()] {
        let rt = Runtime::with_bin(bin.clone());
        let c = rt.guard("podman-status");
        let out = rt.run(b.path(), c.id());
        assert_ne!(out.code, 0, "{}: {out:?}", bin.display());
        assert_eq!(
            docker_cli_status(&out.stderr),
            127,
            "{}: {}",
            bin.display(),
            out.stderr
        );
    }
}
