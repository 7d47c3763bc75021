//! `process.consoleSize` sizes the container's terminal, as runc applies it (runc's
//! "exec [tty consolesize]"): for the init through config.json and for `exec --process`.
//! Without it (or with a zero dimension) the terminal starts at 0x0.

use std::os::unix::net::UnixListener;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;
use spec_tests::sockets::{read_until, receive_fd};

/// The terminal size (`rows cols`) the init sees with `size` as its consoleSize.
fn init_sees(size: Option<Value>) -> String {
    let rt = Runtime::new();
    let c = rt.guard("consolesize");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .sh("echo \"size=$(stty size 2>/dev/null):end\"; sleep 0.5");
    if let Some(size) = size {
        b.set("/process/consoleSize", size);
    }
    let sock = b.path().join("console.sock");
    let handle = receive_fd(UnixListener::bind(&sock).unwrap());
    rt.exec(&[
        "create",
        "--console-socket",
        &sock.to_string_lossy(),
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ])
    .ok();
    let master = handle.join().unwrap();
    rt.exec(&["start", c.id()]).ok();
    size_line(&read_until(master, ":end"))
}

/// The `size=...:end` line of a terminal's output: `rows cols`, or nothing when stty
/// cannot tell (a 0x0 terminal).
fn size_line(text: &str) -> String {
    text.lines()
        .find_map(|l| l.trim().strip_prefix("size=")?.strip_suffix(":end"))
        .unwrap_or_else(|| panic!("no size line in {text:?}"))
        .to_string()
}

#[test]
fn console_size_sizes_the_init_terminal() {
    assert_eq!(
        init_sees(Some(json!({"height": 40, "width": 120}))),
        "40 120"
    );
    // Negative controls: no consoleSize, or one dimension zero, leaves it at 0x0, which
    // stty cannot report (runc applies the size only with both dimensions).
    assert_eq!(init_sees(None), "");
    assert_eq!(init_sees(Some(json!({"height": 40, "width": 0}))), "");
}

/// The terminal size an `exec -t --process` process sees with `size` as its consoleSize.
fn exec_sees(size: Option<Value>) -> String {
    let rt = Runtime::new();
    let c = rt.guard("execconsolesize");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let mut process = b.config["process"].clone();
    process["terminal"] = json!(true);
    process["args"] = json!([
        "sh",
        "-c",
        "echo \"size=$(stty size 2>/dev/null):end\"; sleep 0.5"
    ]);
    if let Some(size) = size {
        process["consoleSize"] = size;
    }
    let process_file = b.path().join("process.json");
    std::fs::write(&process_file, process.to_string()).unwrap();
    let sock = b.path().join("exec-console.sock");
    let handle = receive_fd(UnixListener::bind(&sock).unwrap());
    let mut cmd = rt.command();
    cmd.args([
        "exec",
        "-d",
        "--console-socket",
        &sock.to_string_lossy(),
        "--process",
        &process_file.to_string_lossy(),
        c.id(),
    ]);
    let out = spec_tests::container::capture(cmd);
    assert_eq!(out.code, 0, "{out:?}");
    let master = handle.join().unwrap();
    size_line(&read_until(master, ":end"))
}

#[test]
fn console_size_sizes_an_exec_terminal() {
    assert_eq!(exec_sees(Some(json!({"height": 25, "width": 90}))), "25 90");
    // Negative control: without it the exec'd terminal is 0x0.
    assert_eq!(exec_sees(None), "");
}
