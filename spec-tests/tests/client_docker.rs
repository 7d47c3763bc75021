//! dockerd 20.10 (Debian docker.io) with the runtime registered by path and chosen with
//! `docker run --runtime`: the same scenarios prove our runtime and runc. Run one at a
//! time: each test starts its own dockerd.

use std::path::Path;
use std::sync::Mutex;

use spec_tests::docker::{Dockerd, IMAGE, RUNTIME_NAME};

/// dockerd instances share /run/docker-style global state (e.g. the plugin socket dir).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn scenario(runtime: &Path) {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let Some(dk) = Dockerd::start(runtime) else {
        return;
    };
    let run = ["run", "--network", "none", "--runtime", RUNTIME_NAME];

    let out = dk.docker(
        &[
            &run[..],
            &["--rm", IMAGE, "sh", "-c", "echo hello-docker; exit 3"],
        ]
        .concat(),
    );
    assert_eq!(out.code, 3, "{out:?}\n{}", dk.log());
    assert_eq!(out.stdout, "hello-docker\n");
    // Docker's default seccomp profile is applied to the container.
    let out = dk
        .docker(
            &[
                &run[..],
                &["--rm", IMAGE, "grep", "Seccomp:", "/proc/self/status"],
            ]
            .concat(),
        )
        .ok();
    assert!(out.stdout.contains('2'), "{out:?}");

    let out = dk.docker_with_tty(
        &[
            &run[..],
            &["-it", "--rm", IMAGE, "sh", "-c", "[ -t 0 ] && echo tty-ok"],
        ]
        .concat(),
    );
    assert!(out.stdout.contains("tty-ok"), "{out:?}");

    dk.docker(&[&run[..], &["-d", "--name", "dk-d", IMAGE, "sleep", "100"]].concat())
        .ok();
    let out = dk.docker(&[
        "exec",
        "dk-d",
        "sh",
        "-c",
        "echo exec-ok; grep Seccomp: /proc/self/status; exit 4",
    ]);
    assert_eq!(out.code, 4, "{out:?}");
    assert!(out.stdout.starts_with("exec-ok\n"), "{out:?}");
    assert!(
        out.stdout.contains("Seccomp:\t2"),
        "exec'd process not confined: {out:?}"
    );
    let out = dk.docker_with_tty(&[
        "exec",
        "-t",
        "dk-d",
        "sh",
        "-c",
        "[ -t 0 ] && echo exec-tty-ok",
    ]);
    assert!(out.stdout.contains("exec-tty-ok"), "{out:?}");
    let status = |dk: &Dockerd| {
        dk.docker(&[
            "ps",
            "-a",
            "--filter",
            "name=dk-d",
            "--format",
            "{{.Status}}",
        ])
        .ok()
        .stdout
    };
    dk.docker(&["pause", "dk-d"]).ok();
    assert!(status(&dk).contains("Paused"), "{}", status(&dk));
    dk.docker(&["unpause", "dk-d"]).ok();
    dk.docker(&["update", "--memory", "64m", "--memory-swap", "128m", "dk-d"])
        .ok();
    let limit = dk
        .docker(&[
            "exec",
            "dk-d",
            "cat",
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        ])
        .ok();
    assert_eq!(limit.stdout.trim(), "67108864");
    dk.docker(&["restart", "-t", "1", "dk-d"]).ok();
    assert!(status(&dk).starts_with("Up"), "{}", status(&dk));
    dk.docker(&["stop", "-t", "1", "dk-d"]).ok();
    assert!(status(&dk).starts_with("Exited"), "{}", status(&dk));
    dk.docker(&["rm", "-f", "dk-d"]).ok();
    assert_eq!(dk.docker(&["ps", "-aq"]).ok().stdout, "");
}

#[test]
fn docker_runs_containers_on_our_runtime() {
    scenario(&spec_tests::bins::runtime());
}

#[test]
fn docker_runs_containers_on_runc() {
    scenario(&spec_tests::host::runc());
}
