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
    cgroups::v1_file_or_not_run(
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
        &format!("{test}: checks cgroup v1 files, and this host has no v1 memory hierarchy; runtime_cgroup_v2.rs checks v2"),
    )
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
    // In every v1 controller's hierarchy, runc's name: `/<id>` (name=systemd and the
    // hybrid v2 tree are runtime_cgroups' hybrid test's concern).
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

const T: Duration = Duration::from_secs(10);

/// Cgroup directories a test makes by hand, removed (deepest first) when dropped; a
/// frozen one is thawed first so that nothing stays stuck in it.
struct HandMadeCgroups(Vec<PathBuf>);

impl HandMadeCgroups {
    fn make(&mut self, dir: PathBuf) -> PathBuf {
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        self.0.push(dir.clone());
        dir
    }
}

impl Drop for HandMadeCgroups {
    fn drop(&mut self) {
        for dir in self.0.iter().rev() {
            let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
            let _ = std::fs::remove_dir(dir);
        }
    }
}

/// Runs `args` and waits up to 30 s: a runtime that hangs is killed and reported.
fn exec_with_deadline(rt: &Runtime, args: &[&str]) -> spec_tests::container::Outcome {
    use std::os::unix::process::ExitStatusExt;
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = rt
        .command()
        .args(args)
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&err).unwrap())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} hung for 30 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    spec_tests::container::Outcome {
        code: status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        stdout: std::fs::read_to_string(out).unwrap(),
        stderr: std::fs::read_to_string(err).unwrap(),
    }
}

#[test]
fn a_frozen_cgroup_is_refused_and_left_alone() {
    let Some(freezer) = v1_controller("freezer") else {
        spec_tests::not_run::not_run("no cgroup v1 freezer on this host");
        return;
    };
    let rt = Runtime::new();
    let c = rt.guard("frozen");
    let cgpath = format!("/{}", c.id());
    let mut dirs = HandMadeCgroups(Vec::new());
    let frozen = dirs.make(freezer.join(c.id()));
    std::fs::write(frozen.join("freezer.state"), "FROZEN").unwrap();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/cgroupsPath", json!(cgpath));
    let bundle = b.path().to_string_lossy().into_owned();
    for args in [
        vec!["run", "-d", "--bundle", &bundle, c.id()],
        vec!["create", "--bundle", &bundle, c.id()],
    ] {
        let out = exec_with_deadline(&rt, &args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        assert!(
            out.stderr
                .contains("container's cgroup unexpectedly frozen"),
            "{args:?}: {out:?}"
        );
        assert!(rt.state(c.id()).is_none(), "{args:?}: a container was left");
        // Nothing was made, and the pre-existing cgroup is left as it was.
        assert_eq!(read(frozen.join("freezer.state")), "FROZEN");
        assert_eq!(read(frozen.join("cgroup.procs")), "");
        assert_eq!(cgroup_dirs_named(c.id()), vec![frozen.clone()]);
    }
    // The negative control: thawed, the same cgroup takes the container.
    std::fs::write(frozen.join("freezer.state"), "THAWED").unwrap();
    exec_with_deadline(&rt, &["run", "-d", "--bundle", &bundle, c.id()]).ok();
    rt.wait_status(c.id(), "running", T);
}

#[test]
fn a_non_empty_cgroup_is_shared_with_a_warning() {
    let rt = Runtime::new();
    let first = rt.guard("sharedfirst");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    // The negative control first: an empty cgroup, no warning.
    let out = rt
        .exec(&[
            "run",
            "-d",
            "--bundle",
            &b.path().to_string_lossy(),
            first.id(),
        ])
        .ok();
    assert!(!out.stderr.contains("not empty"), "{out:?}");
    // The first container's cgroup as the kernel names it (`/<id>` on v1; below the
    // caller's parent cgroup on v2, as runc places a default one).
    let pid = rt.wait_status(first.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
    let own = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = own
        .lines()
        .find_map(|l| {
            if cgroups::is_v2() {
                l.strip_prefix("0::")
            } else {
                l.split_once(":memory:").map(|(_, p)| p)
            }
        })
        .unwrap_or_else(|| panic!("no cgroup of the first container: {own}"))
        .to_string();
    b.set("/linux/cgroupsPath", json!(path));
    let second = rt.guard("sharedsecond");
    let out = rt
        .exec(&[
            "run",
            "-d",
            "--bundle",
            &b.path().to_string_lossy(),
            second.id(),
        ])
        .ok();
    assert!(
        out.stderr
            .contains("container's cgroup is not empty: 1 process(es) found"),
        "{out:?}"
    );
    assert!(out.stderr.contains("level=warning"), "{out:?}");
    rt.exec(&["delete", "--force", second.id()]).ok();
}

/// This host's hierarchy directory for a /proc/PID/cgroup controllers field.
fn hierarchy_dir(controllers: &str) -> PathBuf {
    let name = match controllers {
        "" => "unified",
        c => c.split(',').next().unwrap().trim_start_matches("name="),
    };
    Path::new("/sys/fs/cgroup").join(name)
}

#[test]
fn every_hierarchy_is_joined_on_a_hybrid_host() {
    if !Path::new("/sys/fs/cgroup/unified/cgroup.procs").exists() {
        spec_tests::not_run::not_run("this host is not a cgroup v1/v2 hybrid");
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("hybrid");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let init = rt.wait_status(c.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
    rt.exec(&["exec", "-d", c.id(), "sleep", "600"]).ok();
    let pids: Vec<i64> =
        serde_json::from_str(&rt.exec(&["ps", "--format", "json", c.id()]).ok().stdout).unwrap();
    let exec = *pids
        .iter()
        .find(|p| **p != init)
        .expect("the exec'd process");
    let suffix = format!("/{}", c.id());
    let mut dirs = Vec::new();
    for pid in [init, exec] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) =
                (parts.next(), parts.next().unwrap(), parts.next().unwrap());
            assert!(path.ends_with(&suffix), "pid {pid}: {line} ({text})");
            dirs.push(hierarchy_dir(controllers).join(path.trim_start_matches('/')));
        }
        assert!(
            text.contains("name=systemd:") && text.contains("\n0::"),
            "{text}"
        );
    }
    // The negative control: this test's own process is not in the container's cgroup.
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    assert!(!own.lines().any(|l| l.ends_with(&suffix)), "{own}");
    rt.exec(&["delete", "--force", c.id()]).ok();
    let left: Vec<&PathBuf> = dirs.iter().filter(|d| d.exists()).collect();
    assert!(left.is_empty(), "left after delete: {left:?}");
}

#[test]
fn unified_resources_are_refused_on_cgroup_v1() {
    if v1_controller("memory").is_none() {
        spec_tests::not_run::not_run("no cgroup v1 memory controller (a cgroup v2 host)");
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("unifiedv1");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/resources/unified", json!({"memory.min": "131072"}));
    let out = rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("invalid configuration"), "{out:?}");
    assert!(rt.state(c.id()).is_none());
    assert!(cgroup_dirs_named(c.id()).is_empty(), "cgroup left");
    // The negative control: an empty map is no configuration, and runs; `update` refuses
    // a non-empty one too.
    b.set("/linux/resources/unified", json!({}));
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let res = b.path().join("unified.json");
    std::fs::write(
        &res,
        json!({"unified": {"memory.min": "131072"}}).to_string(),
    )
    .unwrap();
    let out = rt.exec(&["update", "-r", &res.to_string_lossy(), c.id()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("invalid configuration"), "{out:?}");
}

/// The devices.list of a running container's devices cgroup, read from the host.
fn devices_list(pid: i64) -> Vec<String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_string()))
        .expect("a devices cgroup");
    let list = Path::new("/sys/fs/cgroup/devices")
        .join(path.trim_start_matches('/'))
        .join("devices.list");
    let mut rules: Vec<String> = read(list).lines().map(str::to_string).collect();
    rules.sort();
    rules
}

/// The rules of a container given `devices` (runc's spec starts with deny-all), started
/// detached by `rt`.
fn effective_rules(rt: &Runtime, name: &str, devices: serde_json::Value) -> Vec<String> {
    let c = rt.guard(name);
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/resources/devices", devices);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let pid = rt.wait_status(c.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
    devices_list(pid)
}

#[test]
fn device_rules_are_runcs_effective_set() {
    let Some(devices) = v1_controller("devices") else {
        spec_tests::not_run::not_run("no cgroup v1 devices controller");
        return;
    };
    let ours = Runtime::new();
    let runc = Runtime::with_bin(spec_tests::host::runc());
    // /dev/console (c 5:1) is in libcgroups' default list and not in runc 1.1.5's
    // (docs/runtime.md).
    let without_console = |mut rules: Vec<String>| {
        rules.retain(|r| r != "c 5:1 rwm");
        rules
    };
    let cases = [
        ("none", json!([])),
        ("denyall", json!([{"allow": false, "access": "rwm"}])),
        (
            "kmsg-rwa",
            json!([{"allow": false, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]),
        ),
        (
            "redundant",
            json!([{"allow": false, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                   {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"},
                   {"allow": false, "type": "c", "major": 1, "minor": 9, "access": "w"}]),
        ),
    ];
    for (name, rules) in cases {
        let a = without_console(effective_rules(&ours, name, rules.clone()));
        let b = without_console(effective_rules(&runc, name, rules));
        assert_eq!(a, b, "{name}: ours, runc");
    }
    // The negative control: the "rwa" rule as given is refused by the kernel.
    let mut dirs = HandMadeCgroups(Vec::new());
    let scratch = dirs.make(devices.join(format!("st-devices-{}", std::process::id())));
    let err = std::fs::write(scratch.join("devices.allow"), "c 1:11 rwa").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EINVAL), "{err}");
}

#[test]
fn update_leaves_device_rules_untouched() {
    let Some(_) = v1_controller("devices") else {
        spec_tests::not_run::not_run("no cgroup v1 devices controller");
        return;
    };
    let rt = Runtime::new();
    let c = rt.guard("devupdate");
    let mut b = Bundle::busybox();
    // runc's update.bats "minimal transition rules": writes to /dev/null must never fail
    // while the container is updated.
    b.set("/root/readonly", json!(false))
        .sh("while :; do echo >/dev/null || echo FAILED >> /tmp/failures; done");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let pid = rt.wait_status(c.id(), "running", T)["pid"]
        .as_i64()
        .unwrap();
    let before = devices_list(pid);
    for n in 0..12 {
        rt.exec(&["update", "--pids-limit", &(30 + n).to_string(), c.id()])
            .ok();
    }
    assert_eq!(devices_list(pid), before);
    let failures = b.rootfs().join("tmp/failures");
    assert!(
        !failures.exists(),
        "a write to /dev/null failed during update"
    );
    // The negative control: the rule taken away by hand, the loop sees it.
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_string()))
        .unwrap();
    let dir = Path::new("/sys/fs/cgroup/devices").join(path.trim_start_matches('/'));
    std::fs::write(dir.join("devices.deny"), "c 1:3 w").unwrap();
    let deadline = std::time::Instant::now() + T;
    while !failures.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        failures.exists(),
        "the detector did not see a denied /dev/null"
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
