//! The sockets engines hand to `create`: `--console-socket` receives the pseudoterminal
//! master of a `terminal: true` container (as containerd's shim and conmon use it), and
//! `--pidfd-socket` receives a pidfd of the container init.

use std::os::unix::net::UnixListener;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;
use spec_tests::sockets::{read_until, receive_fd};

#[test]
fn console_socket_receives_the_terminal_master() {
    let rt = Runtime::new();
    let c = rt.guard("console");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        // Holds the terminal until the test has read it and closed the master (then the
        // read ends with a hangup).
        .sh("if [ -t 0 ] && [ -t 1 ]; then echo on-a-tty; fi; read line");
    let sock = b.path().join("console.sock");
    let handle = receive_fd(UnixListener::bind(&sock).unwrap());
    let out = rt.exec(&[
        "create",
        "--console-socket",
        &sock.to_string_lossy(),
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ]);
    assert_eq!(out.code, 0, "{out:?}");
    let master = handle.join().unwrap();
    rt.exec(&["start", c.id()]).ok();
    // The tty turns \n into \r\n.
    let text = read_until(master, "on-a-tty");
    assert!(text.contains("on-a-tty\r\n"), "{text:?}");
}

/// `--pidfd-socket` is runc 1.2's; Debian's runc 1.1 rejects the flag.
#[test]
fn pidfd_socket_receives_a_pidfd_of_the_init() {
    let rt = Runtime::new();
    let c = rt.guard("pidfd");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let sock = b.path().join("pidfd.sock");
    let handle = receive_fd(UnixListener::bind(&sock).unwrap());
    rt.exec(&[
        "create",
        "--pidfd-socket",
        &sock.to_string_lossy(),
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ])
    .ok();
    let pidfd = handle.join().unwrap();
    let pid = rt.state(c.id()).unwrap()["pid"].as_i64().unwrap();
    use std::os::fd::AsRawFd;
    let fdinfo =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd())).unwrap();
    let fd_pid = fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("a pidfd")
        .trim();
    assert_eq!(fd_pid, pid.to_string(), "{fdinfo}");
}
