//! `exec`: a new process in a running container, as users and containerd's shim call it.

use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Runtime};

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
    let init = rt.wait_status(c.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
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
    // The exec'd process is in the container's cgroups (in every v1 hierarchy, or the one
    // of v2), and no stray cgroup exists.
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let init_cg = std::fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap();
    assert_eq!(cg, init_cg, "exec'd process and init in different cgroups");
    assert!(
        cg.lines().any(|l| l.ends_with(&format!("/{}", c.id()))),
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
    // Ours names the container; runc 1.1.5 says "container does not exist" without its
    // name, which the same test accepts when runc is under test (the comparison run).
    if spec_tests::cgroups::runc_version(rt.bin()).is_none() {
        assert!(out.stderr.contains("st-nope"), "{out:?}");
    } else {
        assert!(out.stderr.contains("does not exist"), "{out:?}");
    }
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
    // `[ -t 1 ]` inside proves the program's stdout is the terminal whose master came
    // through the socket (the line's CRLF may come in a later read, or not at all before
    // the deadline in the software-emulated guest).
    let text = spec_tests::sockets::read_until(handle.join().unwrap(), "exec-on-a-tty");
    assert!(text.contains("exec-on-a-tty"), "{text:?}");
}

/// The `hierarchy:path` lines an exec'd `cat /proc/self/cgroup` prints (the program's own
/// cgroups at its start), with the runtime's output; `unsafe_switch` sets
/// `_RUNTIME_TEST_UNSAFE` for the runtime.
fn exec_program_cgroups(
    rt: &Runtime,
    id: &str,
    unsafe_switch: Option<&str>,
) -> (Vec<String>, spec_tests::container::Outcome) {
    let mut cmd = rt.command();
    cmd.args(["exec", id, "cat", "/proc/self/cgroup"]);
    if let Some(switch) = unsafe_switch {
        cmd.env("_RUNTIME_TEST_UNSAFE", switch);
    }
    let out = spec_tests::container::capture(cmd).ok();
    let own = out
        .stdout
        .lines()
        .map(|l| l.split_once(':').map_or(l, |(_, r)| r).to_string())
        .collect();
    (own, out)
}

/// The negative control of `exec_starts_inside_the_container_cgroup_under_its_limits`: an
/// exec'd process that never joins the container's cgroup (the debug-only switch
/// `exec-no-cgroup-join` skips the join the process does itself before its program runs)
/// starts in the runtime's cgroups, and what its program reads of itself shows it: the
/// check there sees a process that starts outside.
#[test]
fn negative_control_an_exec_left_outside_the_cgroup_is_seen() {
    if !spec_tests::not_run::negative_control_has_test_switches() {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("execoutside");
    let (_b, init) = running(&rt, c.id());
    let (own, out) = exec_program_cgroups(&rt, c.id(), Some("exec-no-cgroup-join"));
    assert_ne!(own, cgroups_of(init), "{out:?}");
    // Where it started: the runtime's cgroups, which are this test's.
    assert_eq!(own, cgroups_of(std::process::id() as i64), "{out:?}");
    // Without the switch the same exec is inside.
    assert_eq!(exec_program_cgroups(&rt, c.id(), None).0, cgroups_of(init));
}

/// Every `hierarchy:path` line of /proc/PID/cgroup, as the host sees it.
fn cgroups_of(pid: i64) -> Vec<String> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_once(':').map_or(l, |(_, rest)| rest).to_string())
        .collect()
}

/// The pids `ps --format json` lists for a container.
fn container_pids(rt: &Runtime, id: &str) -> Vec<i64> {
    serde_json::from_str(&rt.exec(&["ps", "--format", "json", id]).ok().stdout).unwrap()
}

#[test]
fn exec_into_a_created_container_runs_and_it_stays_created() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    let c = rt.guard("execcreated");
    rt.create(b.path(), c.id()).ok();
    let out = rt.exec(&["exec", c.id(), "echo", "in-created"]).ok();
    assert_eq!(out.stdout, "in-created\n");
    assert_eq!(rt.state(c.id()).unwrap()["status"], "created");
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", T);
    // The negative control: a stopped container refuses, in runc's words.
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", T);
    let out = rt.exec(&["exec", c.id(), "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains("cannot exec in a stopped container"),
        "{out:?}"
    );
}

#[test]
fn exec_into_a_paused_container_is_refused_in_runcs_words() {
    let rt = Runtime::new();
    let c = rt.guard("execpaused");
    let (_b, _) = running(&rt, c.id());
    rt.exec(&["pause", c.id()]).ok();
    let out = rt.exec(&["exec", c.id(), "true"]);
    rt.exec(&["resume", c.id()]).ok();
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains("cannot exec in a paused container"),
        "{out:?}"
    );
    // Resumed, the same exec runs.
    rt.exec(&["exec", c.id(), "true"]).ok();
}

#[test]
fn exec_with_an_unwritable_pid_file_fails_and_leaves_no_process() {
    let rt = Runtime::new();
    let c = rt.guard("execpidfile");
    let (b, init) = running(&rt, c.id());
    // A loop: the killed process was once still listed right after the error (3 of 30
    // under load, before exec waited for it to be gone as runc's terminate() does).
    const ROUNDS: usize = 20;
    for round in 1..=ROUNDS {
        let out = rt.exec(&[
            "exec",
            "--pid-file",
            "/st-non-existent/dir/pid",
            c.id(),
            "sleep",
            "600",
        ]);
        assert_eq!(out.code, 255, "round {round}: {out:?}");
        assert!(out.stderr.contains("/st-non-existent/dir"), "{out:?}");
        assert_eq!(
            container_pids(&rt, c.id()),
            vec![init],
            "round {round}: the exec'd process was left"
        );
    }
    println!("{ROUNDS} execs with an unwritable pid file, none left a process");
    // The negative control: a writable pid file names the exec'd process.
    let pid_file = b.path().join("exec.pid");
    rt.exec(&[
        "exec",
        "-d",
        "--pid-file",
        &pid_file.to_string_lossy(),
        c.id(),
        "sleep",
        "600",
    ])
    .ok();
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(container_pids(&rt, c.id()).contains(&pid));

    // create fails the same way and leaves no container behind.
    let c2 = rt.guard("createpidfile");
    let out = rt.exec(&[
        "create",
        "--pid-file",
        "/st-non-existent/dir/pid",
        "--bundle",
        &b.path().to_string_lossy(),
        c2.id(),
    ]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(rt.state(c2.id()).is_none(), "the container was left");
    assert!(cgroup_dirs_named(c2.id()).is_empty(), "its cgroup was left");
}

#[test]
fn exec_into_a_missing_sub_cgroup_fails() {
    let rt = Runtime::new();
    let c = rt.guard("execsubcg");
    let (_b, init) = running(&rt, c.id());
    let out = rt.exec(&["exec", "--cgroup", "st-nonexistent", c.id(), "true"]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(out.stderr.contains("st-nonexistent"), "{out:?}");
    // Nothing was created in any hierarchy of the container.
    let dirs: Vec<std::path::PathBuf> = cgroup_dirs_named(c.id())
        .into_iter()
        .map(|d| d.join("st-nonexistent"))
        .collect();
    assert!(dirs.iter().all(|d| !d.exists()), "{dirs:?}");
    // The negative control: made in every hierarchy the init is in, it is joined.
    let mut made = Vec::new();
    for line in cgroups_of(init) {
        let (controllers, path) = line.split_once(':').unwrap();
        let mount = match controllers {
            // The v2 hierarchy: the root on a pure v2 host, `unified` on a hybrid one.
            "" if spec_tests::cgroups::is_v2() => String::new(),
            "" => "unified".to_string(),
            c => c.trim_start_matches("name=").to_string(),
        };
        let base = std::path::Path::new("/sys/fs/cgroup").join(&mount);
        let dir = base.join(path.trim_start_matches('/')).join("st-sub");
        if !base.exists() || !dir.parent().unwrap().exists() {
            continue;
        }
        std::fs::create_dir(&dir).unwrap();
        // A v1 cpuset cgroup needs its cpus and mems before it takes a process (a v2
        // child has no such files unless the parent hands the controller down).
        for f in ["cpuset.cpus", "cpuset.mems"] {
            if !dir.join(f).exists() {
                continue;
            }
            if let Ok(v) = std::fs::read_to_string(dir.parent().unwrap().join(f)) {
                std::fs::write(dir.join(f), v.trim()).unwrap();
            }
        }
        made.push(dir);
    }
    let out = rt.exec(&[
        "exec",
        "--cgroup",
        "st-sub",
        c.id(),
        "cat",
        "/proc/self/cgroup",
    ]);
    for dir in made.iter().rev() {
        let _ = std::fs::remove_dir(dir);
    }
    let out = out.ok();
    assert!(
        out.stdout.lines().all(|l| l.ends_with("/st-sub")),
        "{out:?}"
    );
}

#[test]
fn exec_starts_inside_the_container_cgroup_under_its_limits() {
    let rt = Runtime::new();
    let c = rt.guard("execlimits");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/resources/pids", json!({"limit": 64}));
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let init = rt.wait_status(c.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
    // The exec'd program is in the container's cgroup, in every hierarchy, from its first
    // instruction: what it reads of itself is the init's cgroup (as the host names it:
    // the bundle has no cgroup namespace).
    let (own, out) = exec_program_cgroups(&rt, c.id(), None);
    assert_eq!(own, cgroups_of(init), "{out:?}");
    // The negative control: a process outside (this test) reads something else (and see
    // negative_control_an_exec_left_outside_the_cgroup_is_seen).
    assert_ne!(cgroups_of(std::process::id() as i64), cgroups_of(init));
    // And it is under the container's limits: with the init and itself the pids limit of
    // 2 is reached, so it cannot fork. (runc's exec fails outright here: its helper, a Go
    // program whose threads count as pids, joins the cgroup too. Either way no process
    // gets past the limit.)
    // (The limit is lowered only now: runc's first exec above needs room for its Go
    // threads on cgroup v2.)
    rt.exec(&["update", "--pids-limit", "2", c.id()]).ok();
    let out = rt.exec(&["exec", c.id(), "sh", "-c", "sleep 0 & wait; echo done"]);
    assert!(
        out.code != 0 || out.stderr.contains("can't fork"),
        "an exec'd process forked past the pids limit: {out:?}"
    );
    // The negative control: with room under the limit the same process forks.
    rt.exec(&["update", "--pids-limit", "64", c.id()]).ok();
    let out = rt
        .exec(&["exec", c.id(), "sh", "-c", "sleep 0 & wait; echo done"])
        .ok();
    assert!(
        !out.stderr.contains("can't fork") && out.stdout == "done\n",
        "{out:?}"
    );
}
