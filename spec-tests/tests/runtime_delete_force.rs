//! `delete --force` of a running container leaves no process, cgroup or state behind,
//! whether the container has a pid namespace of its own (the runtime then kills its init
//! alone and the kernel the rest, as runc does; third_party patch 0701) or shares the
//! host's (every process of its cgroup is frozen and killed). The control shows that the
//! detector sees survivors: killing only the init of a container sharing the host's pid
//! namespace leaves its other processes running.

use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Runtime};

const T: Duration = Duration::from_secs(10);

/// A shell with two background children, all three running until killed.
fn three_process_bundle(own_pid_namespace: bool) -> Bundle {
    let mut b = Bundle::busybox();
    b.sh("sleep 1000 & sleep 1000 & wait");
    if !own_pid_namespace {
        let namespaces: Vec<Value> = b.config["linux"]["namespaces"]
            .as_array()
            .expect("namespaces")
            .iter()
            .filter(|n| n["type"] != "pid")
            .cloned()
            .collect();
        b.set("/linux/namespaces", json!(namespaces));
    }
    b
}

/// A process as (pid, start time): a pid reused by another process is not the same one.
type Proc = (i32, u64);

fn start_time(pid: i32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Field 3 (state) is fields[0]; field 22 (starttime) is fields[19]. A zombie is dead.
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The processes in the container's cgroup (its pids hierarchy), once there are `want`.
fn container_processes(id: &str, want: usize) -> Vec<Proc> {
    let dirs = cgroup_dirs_named(id);
    let procs = dirs
        .iter()
        .find(|d| d.starts_with("/sys/fs/cgroup/pids"))
        .or(dirs.first())
        .expect("the container has a cgroup")
        .join("cgroup.procs");
    let deadline = Instant::now() + T;
    loop {
        let found: Vec<Proc> = std::fs::read_to_string(&procs)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .filter_map(|pid| start_time(pid).map(|t| (pid, t)))
            .collect();
        if found.len() >= want {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{id}: {} of {want} processes after {T:?}",
            found.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The processes of `procs` still alive (same pid and start time, not a zombie).
fn alive(procs: &[Proc]) -> Vec<Proc> {
    procs
        .iter()
        .copied()
        .filter(|&(pid, t)| start_time(pid) == Some(t))
        .collect()
}

fn delete_force_leaves_nothing(own_pid_namespace: bool) {
    let rt = Runtime::new();
    let b = three_process_bundle(own_pid_namespace);
    let c = rt.guard(if own_pid_namespace {
        "delf-own-pidns"
    } else {
        "delf-host-pidns"
    });
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let procs = container_processes(c.id(), 3);
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_eq!(alive(&procs), vec![], "processes outlived delete --force");
    assert!(cgroup_dirs_named(c.id()).is_empty(), "cgroup left behind");
    assert!(rt.state(c.id()).is_none(), "state left behind");
}

#[test]
fn delete_force_kills_a_container_with_its_own_pid_namespace() {
    delete_force_leaves_nothing(true);
}

#[test]
fn delete_force_kills_a_container_sharing_the_host_pid_namespace() {
    delete_force_leaves_nothing(false);
}

#[test]
fn control_killing_only_the_init_leaves_processes_of_a_shared_pid_namespace() {
    let rt = Runtime::new();
    let b = three_process_bundle(false);
    let c = rt.guard("delf-control");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let procs = container_processes(c.id(), 3);
    let init = rt.state(c.id()).expect("state")["pid"]
        .as_i64()
        .expect("pid") as i32;
    // `kill` without --all signals the init only.
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    let deadline = Instant::now() + T;
    while alive(&procs).iter().any(|&(pid, _)| pid == init) {
        assert!(Instant::now() < deadline, "the init outlived SIGKILL");
        std::thread::sleep(Duration::from_millis(20));
    }
    let survivors = alive(&procs);
    assert_eq!(
        survivors.len(),
        2,
        "the detector sees the init's children alive: {survivors:?}"
    );
    // The guard's delete --force removes them.
}
