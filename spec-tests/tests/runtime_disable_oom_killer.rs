//! `linux.resources.memory.disableOOMKiller` (cgroup v1): a container over its memory
//! limit is held (under_oom) instead of killed, and `update` leaves the setting alone, as
//! runc does (runc writes memory.oom_control only to disable the killer, and its
//! `update` never changes it).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::{ContainerGuard, Runtime};

/// The container init's memory cgroup directory.
fn memory_cgroup(rt: &Runtime, id: &str) -> PathBuf {
    let pid = rt.state(id).expect("state")["pid"].as_i64().unwrap();
    let cg = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = cg
        .lines()
        .find_map(|l| l.split_once(":memory:").map(|(_, p)| p.to_string()))
        .expect("a memory cgroup (cgroup v1)");
    PathBuf::from(format!("/sys/fs/cgroup/memory{path}"))
}

/// One field of memory.oom_control.
fn oom_control(dir: &std::path::Path, field: &str) -> String {
    std::fs::read_to_string(dir.join("memory.oom_control"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{field} ")).map(str::to_string))
        .unwrap()
}

/// Starts a container that grows past a 16 MiB limit: awk doubles a string, touching the
/// new memory from user space (a fault there waits for the OOM killer; a charge inside a
/// system call would fail with ENOMEM instead).
fn start_hog(rt: &Runtime, memory: Value) -> (ContainerGuard<'_>, Bundle) {
    let mut b = Bundle::busybox();
    b.set("/linux/resources/memory", memory)
        .args(&["awk", "BEGIN { s = \"x\"; while (1) s = s s }"]);
    let c = rt.guard("oom");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    // Dropped in this order: the container is deleted before its bundle is removed.
    (c, b)
}

#[test]
fn disable_oom_killer_holds_the_container_instead_of_killing_it() {
    let rt = Runtime::new();
    let (c, _bundle) = start_hog(
        &rt,
        json!({"limit": 16 << 20, "swap": 16 << 20, "disableOOMKiller": true}),
    );
    let dir = memory_cgroup(&rt, c.id());
    assert_eq!(oom_control(&dir, "oom_kill_disable"), "1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while oom_control(&dir, "under_oom") != "1" {
        assert!(
            Instant::now() < deadline,
            "the container never reached its limit: {:?} usage {:?}, state {:?}",
            std::fs::read_to_string(dir.join("memory.oom_control")),
            std::fs::read_to_string(dir.join("memory.usage_in_bytes")),
            rt.state(c.id())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    assert_eq!(oom_control(&dir, "oom_kill"), "0", "a process was killed");

    // `update` of the memory limit keeps the OOM killer off (it used to write 0 back).
    rt.exec(&["update", "--memory", "20m", "--memory-swap", "20m", c.id()])
        .ok();
    assert_eq!(oom_control(&dir, "oom_kill_disable"), "1");
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
}

#[test]
fn negative_control_without_disable_oom_killer_the_container_is_killed() {
    // The checks above do see a killed container and an enabled OOM killer.
    let rt = Runtime::new();
    let (c, _bundle) = start_hog(&rt, json!({"limit": 16 << 20, "swap": 16 << 20}));
    let dir = memory_cgroup(&rt, c.id());
    assert_eq!(oom_control(&dir, "oom_kill_disable"), "0");
    rt.wait_status(c.id(), "stopped", Duration::from_secs(30));
}
