//! The container's terminal belongs to the process's user (runc's tty.bats "tty owner"):
//! `stat $(tty)` shows the process's uid and the terminal group (5, from the devpts mount),
//! for `run -t` and `exec -t`; and a `process.json` for `exec --process` without `user`
//! runs as 0:0, as runc does.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

const OWNER: &str = "stat -c %u:%g $(tty)";

/// The `UID:GID` the script printed (a terminal adds carriage returns and echoes).
fn owner(stdout: &str) -> String {
    stdout
        .split(|c: char| !(c.is_ascii_digit() || c == ':'))
        .find(|w| w.contains(':') && w.split(':').all(|n| !n.is_empty()))
        .unwrap_or_default()
        .to_string()
}

/// Runs `runtime --root R ARGS` in a terminal.
fn in_terminal(rt: &Runtime, args: &[&str]) -> spec_tests::container::Outcome {
    let root = rt.root().to_string_lossy().to_string();
    let bin = rt.bin().to_string_lossy().to_string();
    let mut argv = vec![bin.as_str(), "--root", root.as_str()];
    argv.extend_from_slice(args);
    spec_tests::host::in_terminal(&argv, &[])
}

fn run_tty_as(uid: u32, gid: u32) -> String {
    let rt = Runtime::new();
    let c = rt.guard("ttyowner");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .set("/process/user", json!({"uid": uid, "gid": gid}))
        .sh(OWNER);
    let out = in_terminal(
        &rt,
        &["run", "--bundle", &b.path().to_string_lossy(), c.id()],
    );
    assert_eq!(out.code, 0, "{out:?}");
    owner(&out.stdout)
}

#[test]
fn run_tty_is_owned_by_the_process_user() {
    assert_eq!(run_tty_as(1000, 100), "1000:5");
}

#[test]
fn negative_control_a_root_process_tty_is_root_owned() {
    // The check above tells owners apart.
    assert_eq!(run_tty_as(0, 0), "0:5");
}

/// A running container (no terminal) to exec into.
fn running<'a>(rt: &'a Runtime, name: &str) -> (spec_tests::container::ContainerGuard<'a>, Bundle) {
    let c = rt.guard(name);
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    (c, b)
}

#[test]
fn exec_tty_is_owned_by_the_process_user() {
    let rt = Runtime::new();
    let (c, _b) = running(&rt, "exectty");
    let out = in_terminal(
        &rt,
        &[
            "exec",
            "-t",
            "--user",
            "1000:100",
            c.id(),
            "sh",
            "-c",
            OWNER,
        ],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(owner(&out.stdout), "1000:5", "{out:?}");
}

/// `exec --process FILE` with the given process object; returns `id -u; id -g`.
fn exec_process_file(process: serde_json::Value) -> String {
    let rt = Runtime::new();
    let (c, b) = running(&rt, "execprocess");
    let file = b.path().join("process.json");
    std::fs::write(&file, process.to_string()).unwrap();
    let out = rt
        .exec(&["exec", "--process", &file.to_string_lossy(), c.id()])
        .ok();
    out.stdout
}

#[test]
fn exec_process_file_without_user_runs_as_root() {
    let process = json!({"args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"]});
    assert_eq!(exec_process_file(process), "0\n0\n");
}

#[test]
fn negative_control_exec_process_file_with_a_user_runs_as_that_user() {
    let process = json!({"args": ["sh", "-c", "id -u; id -g"], "cwd": "/", "env": ["PATH=/bin"],
        "user": {"uid": 1000, "gid": 100}});
    assert_eq!(exec_process_file(process), "1000\n100\n");
}
