//! cgroup limits from linux.resources land in the container's cgroup files; the default
//! cgroup is named like runc's and removed on delete.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
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

#[test]
fn memory_pids_and_cpu_limits_are_visible_in_the_cgroup() {
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
    let memory_line = own
        .lines()
        .find(|l| l.contains(":memory:"))
        .expect("memory cgroup");
    assert!(memory_line.ends_with(&format!("/{}", c.id())), "{own}");
    // In every v1 controller's hierarchy, runc's name: `/<id>`. (runc 1.1.5 also puts
    // the process in `name=systemd` and the hybrid v2 tree; ours does not yet.)
    assert!(
        own.lines()
            .filter(|l| !l.starts_with("0::") && !l.contains(":name="))
            .all(|l| l.ends_with(&format!("/{}", c.id()))),
        "{own}"
    );
    assert!(!cgroup_dirs_named(c.id()).is_empty());
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert!(
        cgroup_dirs_named(c.id()).is_empty(),
        "cgroup left after delete"
    );
}
