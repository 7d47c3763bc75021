//! cgroup v2 with the cgroupfs driver, as on Debian 12, Ubuntu 22.04+ and Fedora: where the
//! container's cgroup goes, how linux.resources lands in the v2 files (including the v1
//! values the spec still speaks in), update, events (units), OOM, pause, and that delete
//! leaves nothing. Runs only on a pure cgroup v2 host (hack/vm-test.sh boots one); prints
//! `NOT RUN` elsewhere. `RUNTIME_BIN=$(which runc)` runs the same checks against runc.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::cgroups::{self, assert_nothing_left, keyed, read, require_v2};
use spec_tests::container::Runtime;

const T: Duration = Duration::from_secs(30);

/// Runs the bundle detached and returns the init pid.
fn start(rt: &Runtime, b: &Bundle, id: &str) -> i64 {
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), id])
        .ok();
    rt.wait_status(id, "running", T)["pid"].as_i64().unwrap()
}

/// Removes a parent cgroup a test named in cgroupsPath (the runtime removes only the
/// container's own, as runc does).
struct ParentCgroup(PathBuf);

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
fn limits_land_in_the_v2_files() {
    if !require_v2("limits_land_in_the_v2_files") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("v2limits");
    let parent = spec_tests::container::unique_id("v2parent");
    let _parent = ParentCgroup(cgroups::v2_dir(&parent));
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"])
        .set("/linux/cgroupsPath", json!(format!("/{parent}/{}", c.id())))
        .set(
            "/linux/resources",
            json!({
                "memory": {"limit": 67108864, "reservation": 33554432, "swap": 100663296},
                "pids": {"limit": 42},
                "cpu": {"shares": 512, "quota": 50000, "period": 100000},
                "unified": {"memory.high": "50331648"}
            }),
        );
    let pid = start(&rt, &b, c.id());
    let dir = cgroups::v2_dir_of(pid);
    assert_eq!(dir, cgroups::v2_dir(&format!("/{parent}/{}", c.id())));
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.low"), "33554432");
    assert_eq!(read(&dir, "memory.high"), "50331648");
    // The spec's swap is memory+swap (cgroup v1); v2's memory.swap.max is swap alone.
    assert_eq!(read(&dir, "memory.swap.max"), "33554432");
    assert_eq!(read(&dir, "pids.max"), "42");
    assert_eq!(read(&dir, "cpu.max"), "50000 100000");
    assert_eq!(
        read(&dir, "cpu.weight"),
        cgroups::expected_cpu_weight(rt.bin(), 512).to_string()
    );
    assert!(read(&dir, "cgroup.procs")
        .lines()
        .any(|l| l == pid.to_string()));

    // Negative control: a container without limits has the kernel's defaults, so each
    // assertion above could have failed.
    let free = rt.guard("v2free");
    let mut fb = Bundle::busybox();
    fb.args(&["sleep", "60"]).set(
        "/linux/cgroupsPath",
        json!(format!("/{parent}/{}", free.id())),
    );
    let free_dir = cgroups::v2_dir_of(start(&rt, &fb, free.id()));
    for file in ["memory.max", "memory.high", "memory.swap.max", "pids.max"] {
        assert_eq!(read(&free_dir, file), "max", "{file}");
    }
    assert_eq!(read(&free_dir, "cpu.max"), "max 100000");
    assert_eq!(read(&free_dir, "cpu.weight"), "100");

    for id in [c.id(), free.id()] {
        rt.exec(&["delete", "--force", id]).ok();
        assert_nothing_left(id);
    }
}

#[test]
fn cpu_shares_become_cpu_weight_by_runcs_conversion() {
    if !require_v2("cpu_shares_become_cpu_weight_by_runcs_conversion") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("v2weight");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"])
        .set("/linux/resources/cpu", json!({"shares": 1024}));
    let dir = cgroups::v2_dir_of(start(&rt, &b, c.id()));
    // The default share count maps to the default weight with the current conversion.
    let mut seen = vec![(1024, read(&dir, "cpu.weight"))];
    for shares in [2u64, 512, 2048, 262144] {
        rt.exec(&["update", "--cpu-share", &shares.to_string(), c.id()])
            .ok();
        seen.push((shares, read(&dir, "cpu.weight")));
    }
    let expected: Vec<(u64, String)> = seen
        .iter()
        .map(|(s, _)| (*s, cgroups::expected_cpu_weight(rt.bin(), *s).to_string()))
        .collect();
    assert_eq!(seen, expected, "(shares, cpu.weight)");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn the_default_and_relative_cgroups_are_placed_as_runc_places_them() {
    if !require_v2("the_default_and_relative_cgroups_are_placed_as_runc_places_them") {
        return;
    }
    let rt = Runtime::new();
    // No cgroupsPath: runc's cgroupfs driver names the cgroup after the container, relative
    // to the parent of the caller's cgroup.
    let c = rt.guard("v2default");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    let pid = start(&rt, &b, c.id());
    assert_eq!(cgroups::v2_dir_of(pid), cgroups::runc_relative_dir(c.id()));
    // Later commands find it, from whatever cgroup they are called.
    let stats = rt.exec(&["events", "--stats", c.id()]).ok();
    assert!(stats.stdout.contains("\"pids\""), "{stats:?}");

    // A relative cgroupsPath goes to the same place.
    let r = rt.guard("v2relative");
    let parent = spec_tests::container::unique_id("v2relparent");
    let _parent = ParentCgroup(cgroups::runc_relative_dir(&parent));
    let mut rb = Bundle::busybox();
    rb.args(&["sleep", "60"])
        .set("/linux/cgroupsPath", json!(format!("{parent}/{}", r.id())))
        .set("/linux/resources/pids", json!({"limit": 17}));
    let rpid = start(&rt, &rb, r.id());
    let rdir = cgroups::v2_dir_of(rpid);
    assert_eq!(
        rdir,
        cgroups::runc_relative_dir(&format!("{parent}/{}", r.id()))
    );
    assert_eq!(read(&rdir, "pids.max"), "17");

    for id in [c.id(), r.id()] {
        rt.exec(&["delete", "--force", id]).ok();
        assert_nothing_left(id);
    }
}

#[test]
fn update_changes_the_v2_files() {
    if !require_v2("update_changes_the_v2_files") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("v2update");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    let dir = cgroups::v2_dir_of(start(&rt, &b, c.id()));
    rt.exec(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "96m",
        "--cpu-quota",
        "25000",
        "--cpu-period",
        "100000",
        "--pids-limit",
        "40",
        c.id(),
    ])
    .ok();
    assert_eq!(read(&dir, "memory.max"), "67108864");
    assert_eq!(read(&dir, "memory.swap.max"), "33554432");
    assert_eq!(read(&dir, "cpu.max"), "25000 100000");
    assert_eq!(read(&dir, "pids.max"), "40");
    let file = b.path().join("res.json");
    std::fs::write(
        &file,
        json!({"memory": {"limit": 33554432, "swap": 33554432}, "pids": {"limit": 20}}).to_string(),
    )
    .unwrap();
    rt.exec(&["update", "-r", &file.to_string_lossy(), c.id()])
        .ok();
    assert_eq!(read(&dir, "memory.max"), "33554432");
    assert_eq!(read(&dir, "memory.swap.max"), "0");
    assert_eq!(read(&dir, "pids.max"), "20");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

/// cpu.stat's microsecond counters of a cgroup, in nanoseconds.
fn cpu_stat_ns(dir: &Path) -> [u64; 4] {
    ["usage_usec", "user_usec", "system_usec", "throttled_usec"]
        .map(|k| keyed(dir, "cpu.stat", k) * 1000)
}

#[test]
fn events_stats_report_cpu_time_in_nanoseconds() {
    if !require_v2("events_stats_report_cpu_time_in_nanoseconds") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("v2stats");
    let mut b = Bundle::busybox();
    // Busy under a quota, so user time and throttled time both grow.
    b.set(
        "/linux/resources",
        json!({"cpu": {"quota": 10000, "period": 100000}, "memory": {"limit": 33554432}}),
    )
    .sh("while :; do :; done");
    let dir = cgroups::v2_dir_of(start(&rt, &b, c.id()));
    // Wait until the container has been throttled at least once.
    let deadline = std::time::Instant::now() + T;
    while keyed(&dir, "cpu.stat", "nr_throttled") == 0 {
        assert!(std::time::Instant::now() < deadline, "never throttled");
        std::thread::sleep(Duration::from_millis(50));
    }
    let before = cpu_stat_ns(&dir);
    let out = rt.exec(&["events", "--stats", c.id()]).ok();
    let after = cpu_stat_ns(&dir);
    let ev: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(ev["type"], "stats");
    let cpu = &ev["data"]["cpu"];
    let reported = [
        &cpu["usage"]["total"],
        &cpu["usage"]["user"],
        &cpu["usage"]["kernel"],
        &cpu["throttling"]["throttledTime"],
    ]
    .map(|v| v.as_u64().unwrap_or_else(|| panic!("not a number: {ev}")));
    // cpu.stat counts microseconds; runc reports nanoseconds. Read before and after the
    // command, each reported value lies between (a value in microseconds, 1000 times too
    // small, cannot).
    for (i, name) in ["total", "user", "kernel", "throttledTime"]
        .iter()
        .enumerate()
    {
        assert!(
            before[i] <= reported[i] && reported[i] <= after[i],
            "cpu {name}: reported {} ns, cpu.stat says {}..{} ns: {ev}",
            reported[i],
            before[i],
            after[i]
        );
    }
    assert!(reported[0] > 0 && reported[3] > 0, "{ev}");
    assert!(
        cpu["throttling"]["throttledPeriods"].as_u64().unwrap() > 0,
        "{ev}"
    );
    let memory = &ev["data"]["memory"]["usage"];
    assert_eq!(memory["limit"], 33554432, "{ev}");
    assert!(memory["usage"].as_u64().unwrap() > 0, "{ev}");
    // "swap" is memory+swap, as cgroup v1's memsw counts it (runc adds memory.current to
    // v2's memory.swap.current); the swap limit is unset, so it stays the maximum.
    let swap = &ev["data"]["memory"]["swap"];
    assert!(
        swap["usage"].as_u64().unwrap() >= memory["usage"].as_u64().unwrap(),
        "swap usage below memory usage: {ev}"
    );
    assert_eq!(swap["limit"], u64::MAX, "{ev}");
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn an_oom_kill_is_exit_137_and_an_oom_event() {
    if !require_v2("an_oom_kill_is_exit_137_and_an_oom_event") {
        return;
    }
    let rt = Runtime::new();
    // The init itself is killed: `run` reports 128+SIGKILL, as runc does. tail keeps every
    // line it reads, and /dev/zero has no newline.
    let c = rt.guard("v2oom");
    let mut b = Bundle::busybox();
    b.set(
        "/linux/resources/memory",
        json!({"limit": 16777216, "swap": 16777216}),
    )
    .args(&["tail", "/dev/zero"]);
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 137, "{out:?}");
    // `run` deletes the container it ran.
    assert!(rt.state(c.id()).is_none());
    assert_nothing_left(c.id());

    // A process other than the init is killed: the container runs on, and `events`
    // reports the kill.
    let e = rt.guard("v2oomev");
    cgroups::oom_event_scenario(&rt, e.id(), &[], None);
    assert_nothing_left(e.id());
}

#[test]
fn pause_freezes_the_v2_cgroup() {
    if !require_v2("pause_freezes_the_v2_cgroup") {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("v2pause");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"]);
    let dir = cgroups::v2_dir_of(start(&rt, &b, c.id()));
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 0);
    rt.exec(&["pause", c.id()]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "paused");
    assert_eq!(read(&dir, "cgroup.freeze"), "1");
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 1);
    rt.exec(&["resume", c.id()]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    assert_eq!(keyed(&dir, "cgroup.events", "frozen"), 0);
    rt.exec(&["pause", c.id()]).ok();
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert_nothing_left(c.id());
}

#[test]
fn exec_joins_the_container_cgroup() {
    if !require_v2("exec_joins_the_container_cgroup") {
        return;
    }
    let rt = Runtime::new();
    for (name, path) in [("v2execdef", None), ("v2execabs", Some("/spec-exec"))] {
        let c = rt.guard(name);
        let mut b = Bundle::busybox();
        b.args(&["sleep", "60"]);
        if let Some(p) = path {
            b.set("/linux/cgroupsPath", json!(format!("{p}/{}", c.id())));
        }
        let init = start(&rt, &b, c.id());
        let out = rt
            .exec(&["exec", c.id(), "sh", "-c", "cat /proc/self/cgroup"])
            .ok();
        // Without a cgroup namespace the container sees the host's path.
        assert_eq!(
            out.stdout.trim(),
            format!("0::{}", cgroups::v2_path_of(init)),
            "exec'd process in another cgroup than the init"
        );
        rt.exec(&["delete", "--force", c.id()]).ok();
        assert_nothing_left(c.id());
        if let Some(p) = path {
            let _ = std::fs::remove_dir(cgroups::v2_dir(p));
        }
    }
}

#[test]
fn the_leftover_check_sees_a_v2_cgroup() {
    if !require_v2("the_leftover_check_sees_a_v2_cgroup") {
        return;
    }
    // Negative control of assert_nothing_left on v2: a cgroup below the top level (where a
    // v1-style check that looks one level down under each controller would not look).
    let id = spec_tests::container::unique_id("leftover");
    let own = cgroups::runc_relative_dir("");
    let dir = own.join(format!("probe-{id}")).join(&id);
    std::fs::create_dir_all(&dir).unwrap();
    let caught = std::panic::catch_unwind(|| assert_nothing_left(&id));
    let _ = std::fs::remove_dir(&dir);
    let _ = std::fs::remove_dir(dir.parent().unwrap());
    assert!(
        caught.is_err(),
        "the leftover check missed {}",
        dir.display()
    );
    assert_nothing_left(&id);
}
