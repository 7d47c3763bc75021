//! The sockets engines hand to `create`: `--console-socket` receives the pseudoterminal
//! master of a `terminal: true` container (as containerd's shim and conmon use it), and
//! `--pidfd-socket` receives a pidfd of the container init.

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;
use std::time::Duration;

use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// Accepts one connection and returns the first fd passed with SCM_RIGHTS.
fn receive_fd(listener: UnixListener) -> std::thread::JoinHandle<OwnedFd> {
    std::thread::spawn(move || {
        use std::os::fd::AsRawFd;
        let (stream, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 4096];
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut cmsg = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut cmsg),
            MsgFlags::empty(),
        )
        .expect("recvmsg");
        for c in msg.cmsgs().expect("cmsgs") {
            if let ControlMessageOwned::ScmRights(fds) = c {
                // SAFETY: the kernel just installed this fd in our table for us.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no fd received");
    })
}

#[test]
fn console_socket_receives_the_terminal_master() {
    let rt = Runtime::new();
    let c = rt.guard("console");
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .sh("if [ -t 0 ] && [ -t 1 ]; then echo on-a-tty; fi; sleep 0.5");
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
    let mut file = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 256];
    // Read until the program's line arrives (the tty turns \n into \r\n).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !text.contains("on-a-tty") && std::time::Instant::now() < deadline {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
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
