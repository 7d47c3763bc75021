//! containerd 1.6 (Debian) through its runc v2 shim with `--runc-binary`: the same
//! scenarios prove our runtime and, as the reference, runc.

use std::path::Path;
use std::time::Duration;

use spec_tests::containerd::{Containerd, IMAGE};

fn scenario(runtime: &Path, ns: &str) {
    let Some(ctd) = Containerd::start(ns) else {
        return;
    };
    let rt = runtime.to_string_lossy().to_string();
    let bin = ["--runc-binary", rt.as_str()];

    // run --rm: output and exit status come back through the shim.
    let out = ctd.ctr(
        &[
            &["run", "--rm"][..],
            &bin,
            &[IMAGE, "c-run", "sh", "-c", "echo hello; exit 3"],
        ]
        .concat(),
    );
    assert_eq!(out.code, 3, "{out:?}\n{}", ctd.log());
    assert_eq!(out.stdout, "hello\n");

    // The shim's extra descriptors must not leak into the container.
    let out = ctd.ctr(
        &[
            &["run", "--rm"][..],
            &bin,
            &[IMAGE, "c-fds", "sh", "-c", "ls /proc/1/fd; true"],
        ]
        .concat(),
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(
        out.stdout.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2"],
        "{out:?}"
    );

    // run -t: a terminal through the console socket.
    let out = ctd.ctr_with_tty(
        &[
            &["run", "-t", "--rm"][..],
            &bin,
            &[IMAGE, "c-tty", "sh", "-c", "[ -t 0 ] && echo tty-ok"],
        ]
        .concat(),
    );
    assert!(out.stdout.contains("tty-ok"), "{out:?}");

    // run -d, then exec (plain and -t), ps, pause/resume, metrics, kill --all, delete.
    ctd.ctr(&[&["run", "-d"][..], &bin, &[IMAGE, "c-d", "sleep", "60"]].concat())
        .ok();
    // The exec'd processes print, then wait for a line on stdin before exiting (see
    // Containerd::ctr_answering); the line they got is told by the exit status, which
    // arrives reliably where output printed just before the exit may not.
    let out = ctd.ctr_answering(
        &[
            "task",
            "exec",
            "--exec-id",
            "e1",
            "c-d",
            "sh",
            "-c",
            "echo exec-ok; read line; [ \"$line\" = input-line ] && exit 4; exit 5",
        ],
        false,
        "exec-ok",
        "input-line\n",
    );
    assert_eq!(out.code, 4, "{out:?}");
    assert_eq!(out.stdout, "exec-ok\n");
    let out = ctd.ctr_answering(
        &[
            "task",
            "exec",
            "-t",
            "--exec-id",
            "e2",
            "c-d",
            "sh",
            "-c",
            "[ -t 0 ] && echo exec-tty-ok; read line; [ \"$line\" = tty-line ] && exit 6; exit 7",
        ],
        true,
        "exec-tty-ok",
        "tty-line\n",
    );
    assert!(out.stdout.contains("exec-tty-ok"), "{out:?}");
    assert_eq!(out.code, 6, "the line typed reached the process: {out:?}");
    let ps = ctd.ctr(&["task", "ps", "c-d"]).ok();
    let tasks = ctd.ctr(&["task", "ls"]).ok().stdout;
    let pid = tasks
        .lines()
        .find(|l| l.starts_with("c-d"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap()
        .to_string();
    assert!(ps.stdout.lines().any(|l| l.starts_with(&pid)), "{ps:?}");
    ctd.ctr(&["task", "pause", "c-d"]).ok();
    assert!(ctd.ctr(&["task", "ls"]).ok().stdout.contains("PAUSED"));
    ctd.ctr(&["task", "resume", "c-d"]).ok();
    assert!(ctd.ctr(&["task", "ls"]).ok().stdout.contains("RUNNING"));
    let metrics = ctd.ctr(&["task", "metrics", "c-d"]).ok();
    assert!(
        metrics.stdout.contains("memory.usage_in_bytes"),
        "{metrics:?}"
    );
    ctd.ctr(&["task", "kill", "--all", "-s", "KILL", "c-d"])
        .ok();
    let mut stopped = false;
    for _ in 0..100 {
        if ctd.ctr(&["task", "ls"]).ok().stdout.contains("STOPPED") {
            stopped = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(stopped, "task did not stop after kill --all");
    ctd.ctr(&["task", "delete", "c-d"]).ok();
    ctd.ctr(&["container", "delete", "c-d"]).ok();

    // Nothing of the container is left in the runtime's state root.
    let state_root = Path::new("/run/containerd/runc").join(ns);
    for id in ["c-run", "c-fds", "c-tty", "c-d"] {
        assert!(
            !state_root.join(id).exists(),
            "state of {id} left in {}",
            state_root.display()
        );
    }
}

#[test]
fn containerd_runs_containers_on_our_runtime() {
    scenario(
        &spec_tests::bins::runtime(),
        &format!("ours-{}", std::process::id()),
    );
}

#[test]
fn containerd_runs_containers_on_runc() {
    scenario(
        &spec_tests::host::runc(),
        &format!("runc-{}", std::process::id()),
    );
}
