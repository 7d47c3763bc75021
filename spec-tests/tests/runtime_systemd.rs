//! The systemd cgroup driver (`--systemd-cgroup`, cgroupsPath `slice:prefix:name`), as
//! kubelet, containerd, CRI-O, podman and docker use it on systemd hosts: the container runs
//! in a transient scope unit whose properties carry the limits, update changes them, and
//! delete stops the unit and leaves no cgroup. Runs only where systemd runs on a pure cgroup
//! v2 hierarchy (hack/vm-test.sh boots such a guest); prints `NOT RUN` elsewhere.
//! `RUNTIME_BIN=$(which runc)` runs the same checks against runc.

use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::cgroups::{self, assert_nothing_left, keyed, read, require_systemd, unit_property};
use spec_tests::container::Runtime;

const T: Duration = Duration::from_secs(30);

/// `--systemd-cgroup run -d` and the init pid. Later commands are called without the flag:
/// the driver is part of the container's saved state (containerd passes the flag every
/// time; runc and we accept both).
fn start(rt: &Runtime, b: &Bundle, id: &str) -> i64 {
    rt.exec(&[
        "--systemd-cgroup",
        "run",
        "-d",
        "--bundle",
        &b.path().to_string_lossy(),
        id,
    ])
    .ok();
    rt.wait_status(id, "running", T)["pid"].as_i64().unwrap()
}

/// The scope unit a process runs in, from its cgroup path.
fn scope_of(pid: i64) -> String {
    let path = cgroups::v2_path_of(pid);
    let unit = path.rsplit('/').next().unwrap().to_string();
    assert!(unit.ends_with(".scope"), "not in a scope unit: {path}");
    unit
}

#[test]
fn a_scope_unit_carries_the_limits() {
    if !require_systemd("a_scope_unit_carries_the_limits") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdlimits");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"])
        .set(
            "/linux/cgroupsPath",
            json!(format!("system.slice:spec:{}", c.id())),
        )
        .set(
            "/linux/resources",
            json!({
                "memory": {"limit": 67108864, "swap": 100663296},
                "pids": {"limit": 42},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000}
            }),
        );
    let pid = start(&rt, &b, c.id());
    let unit = format!("spec-{}.scope", c.id());
    assert_eq!(scope_of(pid), unit);
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    assert_eq!(
        unit_property(&unit, "ControlGroup"),
        format!("/system.slice/{unit}")
    );
    let weight = cgroups::expected_cpu_weight(rt.bin(), 512).to_string();
    // What `systemctl show` says and what the kernel enforces agree.
    assert_eq!(unit_property(&unit, "MemoryMax"), "67108864");
    assert_eq!(unit_property(&unit, "TasksMax"), "42");
    assert_eq!(unit_property(&unit, "CPUWeight"), weight);
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "500ms");
    let dir = cgroups::v2_dir_of(pid);
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "33554432");
    assert_eq!(read(&dir, "pids.max"), "42");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(read(&dir, "cpu.weight"), weight);

    rt.exec(&["delete", "--force", c.id()]).ok();
    // A stopped transient unit is unloaded: systemd no longer knows it.
    assert_eq!(unit_property(&unit, "LoadState"), "not-found");
    assert_nothing_left(c.id());
}

#[test]
fn a_slice_of_our_own_is_expanded_like_systemd_does() {
    if !require_systemd("a_slice_of_our_own_is_expanded_like_systemd_does") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdslice");
    // "spec-rt.slice" is the child "rt" of "spec.slice": /spec.slice/spec-rt.slice.
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"])
        .set(
            "/linux/cgroupsPath",
            json!(format!("spec-rt.slice:spec:{}", c.id())),
        )
        .set("/linux/resources/pids", json!({"limit": 23}));
    let pid = start(&rt, &b, c.id());
    assert_eq!(
        cgroups::v2_path_of(pid),
        format!("/spec.slice/spec-rt.slice/spec-{}.scope", c.id())
    );
    assert_eq!(read(&cgroups::v2_dir_of(pid), "pids.max"), "23");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
    // The slices stay, as with runc (other containers may use them); the test removes them.
    let _ = std::process::Command::new("systemctl")
        .args(["stop", "spec-rt.slice", "spec.slice"])
        .status();
}

#[test]
fn without_a_cgroups_path_the_container_gets_a_scope_in_system_slice() {
    if !require_systemd("without_a_cgroups_path_the_container_gets_a_scope_in_system_slice") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sddefault");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    let pid = start(&rt, &b, c.id());
    let unit = scope_of(pid);
    // runc names it runc-<id>.scope, we youki-<id>.scope (docs/runtime.md).
    assert!(unit.ends_with(&format!("-{}.scope", c.id())), "{unit}");
    assert_eq!(cgroups::v2_path_of(pid), format!("/system.slice/{unit}"));
    assert_eq!(unit_property(&unit, "ActiveState"), "active");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn update_sets_the_unit_properties() {
    if !require_systemd("update_sets_the_unit_properties") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdupdate");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]).set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:spec:{}", c.id())),
    );
    let pid = start(&rt, &b, c.id());
    let unit = scope_of(pid);
    let dir = cgroups::v2_dir_of(pid);
    rt.exec(&[
        "update",
        "--memory",
        "128m",
        "--pids-limit",
        "50",
        "--cpu-share",
        "2048",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        c.id(),
    ])
    .ok();
    let weight = cgroups::expected_cpu_weight(rt.bin(), 2048).to_string();
    assert_eq!(unit_property(&unit, "MemoryMax"), "134217728");
    assert_eq!(unit_property(&unit, "TasksMax"), "50");
    assert_eq!(unit_property(&unit, "CPUWeight"), weight);
    assert_eq!(unit_property(&unit, "CPUQuotaPerSecUSec"), "200ms");
    assert_eq!(read(&dir, "memory.max"), "134217728");
    assert_eq!(read(&dir, "pids.max"), "50");
    assert_eq!(read(&dir, "cpu.weight"), weight);
    assert_eq!(read(&dir, "cpu.max"), "20000 100000");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn exec_pause_and_events_work_on_the_scope() {
    if !require_systemd("exec_pause_and_events_work_on_the_scope") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdops");
    let mut b = Bundle::busybox();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:spec:{}", c.id())),
    )
    .set("/linux/resources/memory", json!({"limit": 33554432}))
    .sh("while :; do :; done");
    let pid = start(&rt, &b, c.id());
    let dir = cgroups::v2_dir_of(pid);
    let out = rt.exec(&["exec", c.id(), "cat", "/proc/self/cgroup"]).ok();
    assert_eq!(
        out.stdout.trim(),
        format!("0::{}", cgroups::v2_path_of(pid))
    );

    let before = keyed(&dir, "cpu.stat", "usage_usec") * 1000;
    let ev: Value =
        serde_json::from_str(&rt.exec(&["events", "--stats", c.id()]).ok().stdout).unwrap();
    let after = keyed(&dir, "cpu.stat", "usage_usec") * 1000;
    let total = ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap();
    assert!(
        before <= total && total <= after,
        "cpu total {total} ns outside {before}..{after}: {ev}"
    );
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 33554432, "{ev}");

    rt.exec(&["pause", c.id()]).ok();
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 1);
    assert_eq!(rt.state(c.id()).unwrap()["status"], "paused");
    rt.exec(&["resume", c.id()]).ok();
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 0);
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn an_oom_kill_in_the_scope_is_an_oom_event() {
    if !require_systemd("an_oom_kill_in_the_scope_is_an_oom_event") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdoomev");
    let path = format!("system.slice:spec:{}", c.id());
    cgroups::oom_event_scenario(&rt, c.id(), &["--systemd-cgroup"], Some(&path));
    assert_nothing_left(c.id());
}

#[test]
fn an_oom_kill_of_the_init_is_exit_137_and_the_scope_goes() {
    if !require_systemd("an_oom_kill_of_the_init_is_exit_137_and_the_scope_goes") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("sdoom");
    let mut b = Bundle::busybox();
    b.set(
        "/linux/cgroupsPath",
        json!(format!("system.slice:spec:{}", c.id())),
    )
    .set(
        "/linux/resources/memory",
        json!({"limit": 16777216, "swap": 16777216}),
    )
    .args(&["tail", "/dev/zero"]);
    let out = rt.exec(&[
        "--systemd-cgroup",
        "run",
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ]);
    assert_eq!(out.code, 137, "{out:?}");
    // `run` deletes the container it ran.
    assert!(rt.state(c.id()).is_none());
    assert_nothing_left(c.id());
}

#[test]
fn the_leftover_check_sees_a_unit() {
    if !require_systemd("the_leftover_check_sees_a_unit") {
        return;
    }
    // Negative control of assert_nothing_left for units: a transient service named after an
    // id (its cgroup too) is reported until it is stopped.
    let id = spec_tests::container::unique_id("leftoverunit");
    let unit = format!("probe-{id}.service");
    let started = std::process::Command::new("systemd-run")
        .args(["--quiet", "--unit", &unit, "sleep", "60"])
        .status()
        .unwrap();
    assert!(started.success(), "systemd-run");
    let caught = std::panic::catch_unwind(|| assert_nothing_left(&id));
    let _ = std::process::Command::new("systemctl")
        .args(["stop", &unit])
        .status();
    assert!(caught.is_err(), "the leftover check missed {unit}");
    assert_nothing_left(&id);
}
