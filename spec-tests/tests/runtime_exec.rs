//! `exec`: a new process in a running container, as users and containerd's shim call it.

use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

const T: Duration = Duration::from_secs(10);

fn running(rt: &Runtime, id: &str) -> (Bundle, i64) {
    let mut b = Bundle::busybox();
    b.set("/process/env", json!(["PATH=/bin", "FROM_SPEC=yes"]))
        .args(&["sleep", "60"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), id])
        .ok();
    let pid = rt.wait_status(id, "running", T)["pid"].as_i64().unwrap();
    (b, pid)
}

#[test]
fn exec_runs_in_the_container_and_returns_its_status() {
    let rt = Runtime::new();
    let c = rt.guard("exec");
    let (_b, init) = running(&rt, c.id());
    let out = rt.exec(&[
        "exec",
        c.id(),
        "sh",
        "-c",
        "echo $FROM_SPEC; readlink /proc/1/exe; exit 5",
    ]);
    assert_eq!(out.code, 5, "{out:?}");
    assert_eq!(out.stdout, "yes\n/bin/busybox\n");
    // Same namespaces as the init.
    let out = rt
        .exec(&["exec", c.id(), "readlink", "/proc/self/ns/net"])
        .ok();
    let init_net = std::fs::read_link(format!("/proc/{init}/ns/net")).unwrap();
    assert_eq!(out.stdout.trim(), init_net.to_string_lossy());
    // Killed by a signal: 128+N.
    let out = rt.exec(&["exec", c.id(), "sh", "-c", "kill -9 $$"]);
    assert_eq!(out.code, 137, "{out:?}");
}

#[test]
fn exec_flags_user_env_cwd_caps() {
    let rt = Runtime::new();
    let c = rt.guard("execflags");
    let (_b, _) = running(&rt, c.id());
    let out = rt
        .exec(&[
            "exec",
            "-u",
            "1000:2000",
            "-g",
            "3000",
            "-e",
            "FOO=bar",
            "-e",
            "FROM_SPEC=over",
            "--cwd",
            "/tmp",
            c.id(),
            "sh",
            "-c",
            "echo $(id -u):$(id -g) $FOO $FROM_SPEC $PWD; grep Groups /proc/self/status",
        ])
        .ok();
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("1000:2000 bar over /tmp"));
    assert!(lines.next().unwrap().contains("3000"), "{out:?}");
    // --cap adds a capability (CAP_SYS_ADMIN = bit 21) to the bounding set.
    let out = rt
        .exec(&[
            "exec",
            "--cap",
            "CAP_SYS_ADMIN",
            c.id(),
            "grep",
            "CapBnd",
            "/proc/self/status",
        ])
        .ok();
    let mask = u64::from_str_radix(out.stdout.split_whitespace().last().unwrap(), 16).unwrap();
    assert_ne!(mask & (1 << 21), 0, "{out:?}");
}

#[test]
fn exec_detached_with_process_file_and_pid_file_like_containerd() {
    let rt = Runtime::new();
    let c = rt.guard("execd");
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false)).args(&["sleep", "60"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.wait_status(c.id(), "running", T);
    let process = json!({
        "terminal": false,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo from-process-file > /tmp/marker; sleep 30"],
        "env": ["PATH=/bin"],
        "cwd": "/"
    });
    let pf = b.path().join("process.json");
    std::fs::write(&pf, process.to_string()).unwrap();
    let pid_file = b.path().join("exec.pid");
    rt.exec(&[
        "exec",
        "--process",
        &pf.to_string_lossy(),
        "--detach",
        "--pid-file",
        &pid_file.to_string_lossy(),
        c.id(),
    ])
    .ok();
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ps: Vec<i64> =
        serde_json::from_str(&rt.exec(&["ps", "--format", "json", c.id()]).ok().stdout).unwrap();
    assert!(
        ps.contains(&pid),
        "exec'd pid {pid} not in the container: {ps:?}"
    );
    // The exec'd process is in the container's cgroup, and no stray cgroup exists.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert!(
        cg.lines()
            .any(|l| l.contains(":memory:") && l.ends_with(&format!("/{}", c.id()))),
        "{cg}"
    );
    let strays: Vec<_> = spec_tests::leftovers::cgroup_dirs_containing(c.id())
        .into_iter()
        .filter(|d| d.file_name().is_some_and(|n| n != c.id()))
        .collect();
    assert!(
        strays.is_empty(),
        "cgroups other than the container's: {strays:?}"
    );
    // The detached process runs on after exec returns: wait for its marker.
    let mut marker = String::new();
    for _ in 0..100 {
        marker = rt.exec(&["exec", c.id(), "cat", "/tmp/marker"]).stdout;
        if !marker.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(marker, "from-process-file\n");
    // delete --force ends exec'd processes too, before it returns.
    rt.exec(&["delete", "--force", c.id()]).ok();
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z") || stat.contains(") X"),
        "the exec'd process {pid} outlived delete --force: {stat}"
    );
}

#[test]
fn exec_errors() {
    let rt = Runtime::new();
    let out = rt.exec(&["exec", "st-nope", "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("st-nope"), "{out:?}");
    let c = rt.guard("execerr");
    let (_b, _) = running(&rt, c.id());
    let out = rt.exec(&["exec", c.id(), "/no/such/binary"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("/no/such/binary"), "{out:?}");
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", T);
    let out = rt.exec(&["exec", c.id(), "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("stopped"), "{out:?}");
}

#[test]
fn exec_with_a_terminal_sends_the_master_to_the_console_socket() {
    let rt = Runtime::new();
    let c = rt.guard("exectty");
    let (b, _) = running(&rt, c.id());
    let sock = b.path().join("exec-console.sock");
    let handle =
        spec_tests::sockets::receive_fd(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    rt.exec(&[
        "exec",
        "--tty",
        "--detach",
        "--console-socket",
        &sock.to_string_lossy(),
        c.id(),
        "sh",
        "-c",
        // Holds the terminal until the test has read it and closed the master.
        "[ -t 1 ] && echo exec-on-a-tty; read line",
    ])
    .ok();
    let text = spec_tests::sockets::read_until(handle.join().unwrap(), "exec-on-a-tty");
    assert!(text.contains("exec-on-a-tty\r\n"), "{text:?}");
}
