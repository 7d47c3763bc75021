//! `run -t` and `exec -t` with no console socket, in a terminal (script(1) provides one):
//! the runtime relays the container's terminal itself, sized like the caller's.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// Runs `runtime --root R ARGS` in a 33x77 terminal.
fn in_terminal(rt: &Runtime, args: &[&str]) -> spec_tests::container::Outcome {
    let bin = rt.bin().to_string_lossy();
    let root = rt.root().to_string_lossy();
    spec_tests::host::in_terminal(
        &[&[bin.as_ref(), "--root", root.as_ref()][..], args].concat(),
        &[],
    )
}

#[test]
fn run_with_a_terminal_relays_it() {
    let rt = Runtime::new();
    let c = rt.guard("runtty");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .sh("[ -t 0 ] && [ -t 1 ] && echo on-a-tty; stty size; exit 6");
    let out = in_terminal(
        &rt,
        &["run", "--bundle", &b.path().to_string_lossy(), c.id()],
    );
    assert!(out.stdout.contains("on-a-tty"), "{out:?}");
    assert!(out.stdout.contains("33 77"), "{out:?}");
    // script -e passes on the command's exit status.
    assert_eq!(out.code, 6, "{out:?}");
    assert!(!rt.root().join(format!(".{}.console", c.id())).exists());
}

#[test]
fn exec_with_a_terminal_relays_it() {
    let rt = Runtime::new();
    let c = rt.guard("exectty2");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let out = in_terminal(
        &rt,
        &[
            "exec",
            "-t",
            c.id(),
            "sh",
            "-c",
            "[ -t 1 ] && echo exec-tty; stty size; exit 2",
        ],
    );
    assert!(out.stdout.contains("exec-tty"), "{out:?}");
    assert!(out.stdout.contains("33 77"), "{out:?}");
    assert_eq!(out.code, 2, "{out:?}");
}

/// The size the container's first program sees on its relayed terminal ("33 77" from a
/// 33x77 caller), for `run -t` or `exec -t` of `runtime` (`bin`).
fn first_size_seen(bin: &std::path::Path, exec: bool) -> String {
    let rt = Runtime::with_bin(bin.to_path_buf());
    let c = rt.guard("ttysize");
    let mut b = Bundle::busybox();
    let bin_s = rt.bin().to_string_lossy();
    let root = rt.root().to_string_lossy();
    let out = if exec {
        b.args(&["sleep", "30"]);
        rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
            .ok();
        spec_tests::host::in_terminal(
            &[
                &bin_s,
                "--root",
                &root,
                "exec",
                "-t",
                c.id(),
                "stty",
                "size",
            ],
            &[],
        )
    } else {
        b.set("/process/terminal", json!(true))
            .args(&["stty", "size"]);
        spec_tests::host::in_terminal(
            &[
                &bin_s,
                "--root",
                &root,
                "run",
                "--bundle",
                &b.path().to_string_lossy(),
                c.id(),
            ],
            &[],
        )
    };
    // script(1) echoes the end of its (empty) input as "^@"; the rest is stty's line.
    out.stdout
        .replace("^@", "")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" | ")
}

/// Loops `run -t` and `exec -t` (two at a time, so under load) and returns how many of
/// `rounds` each saw something other than the caller's size, with what they saw.
fn wrong_sizes(bin: &std::path::Path, rounds: usize) -> Vec<String> {
    let wrong = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for exec in [false, true] {
            let wrong = &wrong;
            s.spawn(move || {
                for i in 0..rounds {
                    let seen = first_size_seen(bin, exec);
                    if seen != "33 77" {
                        let what = if exec { "exec -t" } else { "run -t" };
                        wrong.lock().unwrap().push(format!("{what} #{i}: {seen:?}"));
                    }
                }
            });
        }
    });
    wrong.into_inner().unwrap()
}

/// The container's terminal has the caller's size before its first program runs: the pty
/// is opened with it (patch 0500), instead of being resized once the runtime has received
/// the master, which lost the race under load (`stty: standard input`, the flaky
/// `run_with_a_terminal_relays_it`). runc 1.1.5 has that race; its count is printed for
/// comparison.
#[test]
fn a_relayed_terminal_has_the_caller_s_size_before_the_process_runs() {
    const ROUNDS: usize = 20;
    let ours = wrong_sizes(&spec_tests::bins::runtime(), ROUNDS);
    eprintln!(
        "{} iterations of run -t and exec -t each: {} saw a wrong size: {ours:?}",
        ROUNDS,
        ours.len()
    );
    // runc loses this race often: half the rounds show it.
    let runc = wrong_sizes(&spec_tests::host::runc(), ROUNDS / 2);
    eprintln!(
        "runc, the same loop: {} of {} saw a wrong size: {runc:?}",
        runc.len(),
        ROUNDS
    );
    assert!(ours.is_empty(), "{ours:?}");
}

/// Negative control: the detector sees a terminal that nobody sized. The caller is not a
/// terminal here and takes the master through --console-socket without resizing it, so
/// `stty size` in the container fails as it did in the race.
#[test]
fn negative_control_an_unsized_terminal_is_seen() {
    let rt = Runtime::new();
    let c = rt.guard("ttyunsized");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .sh("stty size 2>&1; read line");
    let sock = b.path().join("console.sock");
    let handle =
        spec_tests::sockets::receive_fd(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    rt.exec(&[
        "run",
        "-d",
        "--console-socket",
        &sock.to_string_lossy(),
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ])
    .ok();
    let text = spec_tests::sockets::read_until(handle.join().unwrap(), "\n");
    assert!(!text.contains("33 77"), "{text:?}");
    assert!(text.contains("stty: standard input"), "{text:?}");
}
