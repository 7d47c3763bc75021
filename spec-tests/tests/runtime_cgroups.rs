//! cgroup limits from linux.resources land in the container's cgroup files; the default
//! cgroup is named like runc's and removed on delete; `events --stats` reports CPU time in
//! nanoseconds. The file checks here are cgroup v1's (this machine); runtime_cgroup_v2.rs
//! holds the v2 ones.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::cgroups;
use spec_tests::container::{cgroup_dirs_named, Runtime};

/// The mount point of a cgroup v1 controller on this host, if mounted.
fn v1_controller(name: &str) -> Option<PathBuf> {
    let p = Path::new("/sys/fs/cgroup").join(name);
    p.join("cgroup.procs").exists().then_some(p)
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_string()
}

/// Whether a cgroup v1 test can run: on a pure cgroup v2 host it prints `NOT RUN` (its v2
/// counterpart is in runtime_cgroup_v2.rs).
fn require_v1(test: &str) -> bool {
    if cgroups::is_v2() {
        cgroups::not_run(
            test,
            "checks cgroup v1 files; runtime_cgroup_v2.rs checks v2",
        );
        return false;
    }
    true
}

#[test]
fn memory_pids_and_cpu_limits_are_visible_in_the_cgroup() {
    if !require_v1("memory_pids_and_cpu_limits_are_visible_in_the_cgroup") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("limits");
    let cgpath = format!("/spec-tests/{}", c.id());
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"])
        .set("/linux/cgroupsPath", json!(cgpath))
        .set(
            "/linux/resources",
            json!({
                "devices": [{"allow": false, "access": "rwm"}],
                "memory": {"limit": 67108864},
                "pids": {"limit": 42},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000}
            }),
        );
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let pid = rt.wait_status(c.id(), "running", Duration::from_secs(10))["pid"]
        .as_i64()
        .unwrap();
    let rel = cgpath.trim_start_matches('/');
    if let Some(mem) = v1_controller("memory") {
        assert_eq!(
            read(mem.join(rel).join("memory.limit_in_bytes")),
            "67108864"
        );
        assert!(read(mem.join(rel).join("cgroup.procs"))
            .lines()
            .any(|l| l == pid.to_string()));
    }
    if let Some(pids) = v1_controller("pids") {
        assert_eq!(read(pids.join(rel).join("pids.max")), "42");
    }
    if let Some(cpu) = v1_controller("cpu") {
        assert_eq!(read(cpu.join(rel).join("cpu.shares")), "512");
        assert_eq!(read(cpu.join(rel).join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(cpu.join(rel).join("cpu.cfs_period_us")), "100000");
    }
    rt.exec(&["delete", "--force", c.id()]).ok();
    if let Some(mem) = v1_controller("memory") {
        assert!(!mem.join(rel).exists(), "cgroup left after delete");
        let _ = std::fs::remove_dir(mem.join("spec-tests"));
    }
    for ctrl in [
        "cpu",
        "cpuacct",
        "cpuset",
        "pids",
        "blkio",
        "devices",
        "freezer",
        "net_cls",
        "perf_event",
        "hugetlb",
        "net_prio",
        "rdma",
        "misc",
    ] {
        let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup").join(ctrl).join("spec-tests"));
    }
}

#[test]
fn a_pids_limit_is_enforced() {
    let rt = Runtime::new();
    let c = rt.guard("pidsmax");
    let mut b = Bundle::busybox();
    // The inner shell forks until the limit stops it: fork failure is fatal to a
    // non-interactive shell, so it reports and exits non-zero.
    b.set("/linux/resources/pids", json!({"limit": 5})).sh(
        "sh -c 'for i in 1 2 3 4 5 6 7 8; do sleep 5 & done; echo all-forked' 2>&1; echo rc=$?",
    );
    let out = rt.run(b.path(), c.id()).ok();
    assert!(
        !out.stdout.contains("all-forked"),
        "pids limit not enforced: {out:?}"
    );
    assert!(out.stdout.contains("can't fork"), "{out:?}");
}

#[test]
fn the_default_cgroup_is_named_by_id_and_removed_on_delete() {
    let rt = Runtime::new();
    let c = rt.guard("defcg");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let pid = rt.wait_status(c.id(), "running", Duration::from_secs(10))["pid"]
        .as_i64()
        .unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    // The memory controller's line on v1, the one line of v2.
    let line = own
        .lines()
        .find(|l| l.contains(":memory:") || (cgroups::is_v2() && l.starts_with("0::")))
        .expect("memory cgroup");
    assert!(line.ends_with(&format!("/{}", c.id())), "{own}");
    assert!(!own.contains(":youki:"), "{own}");
    assert!(!cgroup_dirs_named(c.id()).is_empty());
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert!(
        cgroup_dirs_named(c.id()).is_empty(),
        "cgroup left after delete"
    );
}

#[test]
fn events_stats_report_cpu_time_in_nanoseconds_on_v1() {
    if !require_v1("events_stats_report_cpu_time_in_nanoseconds_on_v1") {
        return;
    }
    let Some(cpuacct) = v1_controller("cpuacct") else {
        panic!("no cpuacct controller mounted");
    };
    let rt = Runtime::new();
    let c = rt.guard("v1stats");
    let cgpath = format!("/spec-tests-v1stats/{}", c.id());
    let mut b = Bundle::busybox();
    b.set("/linux/cgroupsPath", json!(cgpath))
        .sh("while :; do :; done");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.wait_status(c.id(), "running", Duration::from_secs(10));
    let dir = cpuacct.join(cgpath.trim_start_matches('/'));
    // cpuacct.usage counts nanoseconds, cpuacct.stat clock ticks (USER_HZ).
    let ns_per_tick = 1_000_000_000
        / nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .unwrap()
            .unwrap() as u64;
    let sample = || {
        let ticks = |key: &str| -> u64 {
            read(dir.join("cpuacct.stat"))
                .lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
                .unwrap()
        };
        [
            read(dir.join("cpuacct.usage")).parse::<u64>().unwrap(),
            ticks("user ") * ns_per_tick,
            ticks("system ") * ns_per_tick,
        ]
    };
    // Wait for a measurable amount of user time.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while sample()[1] == 0 {
        assert!(std::time::Instant::now() < deadline, "no user time counted");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = sample();
    let out = rt.exec(&["events", "--stats", c.id()]).ok();
    let after = sample();
    let ev: Value = serde_json::from_str(&out.stdout).unwrap();
    let usage = &ev["data"]["cpu"]["usage"];
    for (i, key) in ["total", "user", "kernel"].iter().enumerate() {
        let v = usage[key].as_u64().unwrap();
        assert!(
            before[i] <= v && v <= after[i],
            "cpu {key}: reported {v} ns, the cgroup says {}..{} ns: {ev}",
            before[i],
            after[i]
        );
    }
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert!(cgroup_dirs_named(c.id()).is_empty());
    for ctrl in [
        "cpu",
        "cpuacct",
        "cpuset",
        "pids",
        "blkio",
        "devices",
        "freezer",
        "memory",
        "net_cls",
        "perf_event",
        "hugetlb",
        "net_prio",
        "rdma",
        "misc",
    ] {
        let _ = std::fs::remove_dir(
            Path::new("/sys/fs/cgroup")
                .join(ctrl)
                .join("spec-tests-v1stats"),
        );
    }
}
