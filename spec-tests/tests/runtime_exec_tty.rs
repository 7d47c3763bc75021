//! `exec -t` without `--console-socket` relays the container's terminal to the caller's;
//! with no terminal to relay to (stdio redirected, no controlling terminal) it is refused
//! before anything runs, as runc refuses it ("open /dev/tty: no such device or address").

use std::os::unix::process::CommandExt;
use std::process::Stdio;

use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, Runtime};

/// `runtime --root R ARGS` in a new session (no controlling terminal), stdio not terminals.
fn without_terminal(rt: &Runtime, args: &[&str]) -> spec_tests::container::Outcome {
    let mut cmd = rt.command();
    cmd.args(args).stdin(Stdio::null());
    // SAFETY: setsid is async-signal-safe; the child only execs afterwards.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    capture(cmd)
}

#[test]
fn exec_tty_without_a_terminal_is_refused() {
    let rt = Runtime::new();
    let c = rt.guard("exectty-none");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "100"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let touch = ["sh", "-c", "touch /dev/shm/ran"];
    let out = without_terminal(&rt, &[&["exec", "-t", c.id()][..], &touch].concat());
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("/dev/tty"), "{out:?}");
    let ran = rt.exec(&["exec", c.id(), "test", "-e", "/dev/shm/ran"]);
    assert_ne!(ran.code, 0, "the refused exec ran its command: {ran:?}");

    // Negative control: the same exec in a terminal runs its command.
    let bin = rt.bin().to_string_lossy();
    let root = rt.root().to_string_lossy();
    let out = spec_tests::host::in_terminal(
        &[
            &[bin.as_ref(), "--root", root.as_ref(), "exec", "-t", c.id()][..],
            &touch,
        ]
        .concat(),
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    rt.exec(&["exec", c.id(), "test", "-e", "/dev/shm/ran"])
        .ok();
    println!("control: exec -t in a terminal runs and its file is seen");
}
