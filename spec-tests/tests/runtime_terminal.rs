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
