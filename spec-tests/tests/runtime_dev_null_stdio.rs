//! stdio on /dev/null: when the runtime's stdin, stdout or stderr is /dev/null (a shell's
//! `>/dev/null`, containerd's `ctr run --null-io`), the container's fd 0/1/2 are the
//! container's own /dev/null opened read-write, as runc's are, so the process can write.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// Runs `before`, then records the access mode of the container's fds 0, 1 and 2 (from
/// /proc/1/fdinfo, written to a file so that fds 0-2 themselves stay as the runtime
/// handed them over).
fn run_on_dev_null(before: &str, script: &str, detach: bool) -> (i32, Vec<String>) {
    let rt = Runtime::new();
    let out = tempfile::tempdir().unwrap();
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": "/out", "type": "bind", "source": out.path(), "options": ["rbind", "rw"]}),
    )
    .sh(&format!(
        "{before} awk '/^flags/ {{print > \"/out/modes\"}}' /proc/1/fdinfo/0 /proc/1/fdinfo/1 \
         /proc/1/fdinfo/2; {script}; echo $? > /out/status"
    ));
    let c = rt.guard("devnull");
    let mut args = vec!["run"];
    if detach {
        args.push("-d");
    }
    let bundle = b.path().to_string_lossy().to_string();
    args.extend(["--bundle", &bundle, c.id()]);
    // Opened the way a shell's `</dev/null >/dev/null 2>/dev/null` opens them: stdin
    // read-only, stdout and stderr write-only.
    let status = rt
        .command()
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() || !detach, "run -d failed: {status}");
    let status_file = out.path().join("status");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !status_file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the container did not finish"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    (
        read_status(&status_file),
        std::fs::read_to_string(out.path().join("modes"))
            .unwrap()
            .lines()
            .map(access_mode)
            .collect(),
    )
}

fn read_status(path: &Path) -> i32 {
    // The status line is written last; wait for its newline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap();
        if text.ends_with('\n') {
            return text.trim().parse().unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "status never completed"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// "flags:\t0100002" -> "rw" (the octal flags' access mode bits).
fn access_mode(line: &str) -> String {
    let flags = u32::from_str_radix(line.trim_start_matches("flags:").trim(), 8).unwrap();
    match flags & 3 {
        0 => "r",
        1 => "w",
        _ => "rw",
    }
    .to_string()
}

#[test]
fn run_with_stdio_on_dev_null_lets_the_container_write() {
    let (status, modes) = run_on_dev_null("", "echo to-stdout && echo to-stderr >&2", false);
    // Ours hands over the container's /dev/null read-write; runc's foreground `run`
    // puts pipes in between (read-only stdin, write-only stdout and stderr).
    assert!(modes[0].contains('r'), "stdin not readable: {modes:?}");
    assert!(
        modes[1].contains('w') && modes[2].contains('w'),
        "{modes:?}"
    );
    assert_eq!(status, 0, "writing to stdout/stderr on /dev/null failed");
}

#[test]
fn run_detached_with_stdio_on_dev_null_lets_the_container_write() {
    let (status, modes) = run_on_dev_null("", "echo to-stdout && echo to-stderr >&2", true);
    assert_eq!(
        modes,
        ["rw", "rw", "rw"],
        "runc reopens /dev/null read-write"
    );
    assert_eq!(status, 0);
}

#[test]
fn negative_control_a_read_only_stdout_is_seen_by_both_checks() {
    // The detectors above do see the failure: stdout re-opened read-only by hand shows as
    // "r" and makes the write fail.
    let (status, modes) = run_on_dev_null("exec 1</dev/null;", "echo to-stdout", false);
    assert_eq!(modes[1], "r");
    assert_ne!(status, 0);
}

/// `ctr run --null-io` through containerd's runc shim: the shim hands the runtime
/// /dev/null for all three; the container's writes must succeed.
fn ctr_null_io(runtime: &Path, ns: &str) {
    let Some(ctd) = spec_tests::containerd::Containerd::start(ns) else {
        return;
    };
    let rt = runtime.to_string_lossy().to_string();
    let image = spec_tests::containerd::IMAGE;
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--null-io",
        "--runc-binary",
        &rt,
        image,
        "c-null",
        "sh",
        "-c",
        "echo to-stdout && echo to-stderr >&2",
    ]);
    assert_eq!(out.code, 0, "{out:?}\n{}", ctd.log());
    // Negative control: the exit status does carry a failed write.
    let out = ctd.ctr(&[
        "run",
        "--rm",
        "--null-io",
        "--runc-binary",
        &rt,
        image,
        "c-null-ro",
        "sh",
        "-c",
        "exec 1</dev/null; echo to-stdout",
    ]);
    assert_ne!(out.code, 0, "{out:?}");
}

#[test]
fn ctr_run_null_io_on_our_runtime() {
    ctr_null_io(
        &spec_tests::bins::runtime(),
        &format!("nullio-ours-{}", std::process::id()),
    );
}

#[test]
fn ctr_run_null_io_on_runc() {
    ctr_null_io(
        &spec_tests::host::runc(),
        &format!("nullio-runc-{}", std::process::id()),
    );
}

#[test]
fn shell_redirect_to_dev_null() {
    // The user story from the issue: `runtime run -b B c >/dev/null`.
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.sh("echo hi");
    let c = rt.guard("shnull");
    let status = Command::new("sh")
        .arg("-c")
        .arg("\"$0\" --root \"$1\" run -b \"$2\" \"$3\" >/dev/null")
        .arg(rt.bin())
        .arg(rt.root())
        .arg(b.path())
        .arg(c.id())
        .status()
        .unwrap();
    assert!(
        status.success(),
        "sh -c 'echo hi' failed under >/dev/null: {status}"
    );
}
