//! podman 4.3 + conmon with `--runtime`: the same scenarios prove our runtime and runc.

use std::path::Path;

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
