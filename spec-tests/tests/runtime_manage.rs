//! Managing a running container: ps, pause/resume, update (flags, -r FILE, -r -,
//! --resources=FILE) with the new limits visible in the cgroup files, events (stats and OOM).

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

const T: Duration = Duration::from_secs(10);

fn start_detached(rt: &Runtime, b: &Bundle, id: &str) -> i64 {
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), id])
        .ok();
    rt.wait_status(id, "running", T)["pid"].as_i64().unwrap()
}

fn cgroup_file(ctrl: &str, id: &str, file: &str) -> String {
    std::fs::read_to_string(Path::new("/sys/fs/cgroup").join(ctrl).join(id).join(file))
        .unwrap_or_else(|e| panic!("{ctrl}/{id}/{file}: {e}"))
        .trim()
        .to_string()
}

#[test]
fn ps_lists_the_container_processes() {
    let rt = Runtime::new();
    let c = rt.guard("ps");
    let mut b = Bundle::busybox();
    b.sh("sleep 30 & sleep 31 & wait");
    let init = start_detached(&rt, &b, c.id());
    // Wait until both children exist.
    let mut pids: Vec<i64> = Vec::new();
    for _ in 0..100 {
        let out = rt.exec(&["ps", "--format", "json", c.id()]).ok();
        pids = serde_json::from_str(&out.stdout).unwrap();
        if pids.len() == 3 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert!(pids.contains(&init));
    let table = rt.exec(&["ps", c.id()]).ok().stdout;
    assert!(table.lines().next().unwrap().contains("PID"), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");
    let custom = rt.exec(&["ps", c.id(), "-o", "pid,comm"]).ok().stdout;
    assert!(
        custom
            .lines()
            .skip(1)
            .any(|l| l.trim_end().ends_with("sleep")),
        "{custom}"
    );
}

#[test]
fn pause_and_resume() {
    let rt = Runtime::new();
    let c = rt.guard("pause");
    let mut b = Bundle::busybox();
    b.sh("while true; do date +%s%N > /dev/null; done");
    start_detached(&rt, &b, c.id());
    rt.exec(&["pause", c.id()]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "paused");
    assert_eq!(cgroup_file("freezer", c.id(), "freezer.state"), "FROZEN");
    let again = rt.exec(&["pause", c.id()]);
    assert_ne!(again.code, 0);
    // runc's words: pausing needs a running container.
    assert!(again.stderr.contains("container not running"), "{again:?}");
    rt.exec(&["resume", c.id()]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    assert_eq!(cgroup_file("freezer", c.id(), "freezer.state"), "THAWED");
    assert_ne!(rt.exec(&["resume", c.id()]).code, 0);
    // A paused container can be deleted with --force.
    rt.exec(&["pause", c.id()]).ok();
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert!(rt.state(c.id()).is_none());
}

#[test]
fn update_by_flags_and_by_resources_json() {
    let rt = Runtime::new();
    let c = rt.guard("update");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    start_detached(&rt, &b, c.id());
    rt.exec(&[
        "update",
        "--memory",
        "64m",
        "--cpu-share",
        "300",
        "--cpu-quota=25000",
        "--cpu-period",
        "100000",
        "--pids-limit",
        "40",
        c.id(),
    ])
    .ok();
    assert_eq!(
        cgroup_file("memory", c.id(), "memory.limit_in_bytes"),
        "67108864"
    );
    assert_eq!(cgroup_file("cpu", c.id(), "cpu.shares"), "300");
    assert_eq!(cgroup_file("cpu", c.id(), "cpu.cfs_quota_us"), "25000");
    assert_eq!(cgroup_file("pids", c.id(), "pids.max"), "40");

    let file = b.path().join("res.json");
    std::fs::write(&file, json!({"memory": {"limit": 33554432}}).to_string()).unwrap();
    rt.exec(&["update", "-r", &file.to_string_lossy(), c.id()])
        .ok();
    assert_eq!(
        cgroup_file("memory", c.id(), "memory.limit_in_bytes"),
        "33554432"
    );

    std::fs::write(&file, json!({"pids": {"limit": 20}}).to_string()).unwrap();
    rt.exec(&["update", &format!("--resources={}", file.display()), c.id()])
        .ok();
    assert_eq!(cgroup_file("pids", c.id(), "pids.max"), "20");

    let mut child = rt
        .command()
        .args(["update", "-r", "-", c.id()])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(json!({"cpu": {"shares": 700}}).to_string().as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(cgroup_file("cpu", c.id(), "cpu.shares"), "700");

    let bad = rt.exec(&["update", "--memory", "lots", c.id()]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("--memory"), "{bad:?}");
}

#[test]
fn events_stats_and_oom() {
    let rt = Runtime::new();
    let c = rt.guard("events");
    let mut b = Bundle::busybox();
    let marks = b.marks();
    // The container causes the OOM only once the test says go: an OOM before the events
    // stream has read its baseline would not be an event.
    b.set(
        "/linux/resources/memory",
        json!({"limit": 16777216, "swap": 16777216}),
    )
    .sh("while [ ! -e /marks/go ]; do sleep 0.02; done; head -c 200000000 /dev/zero | tail > /dev/null; sleep 30");
    start_detached(&rt, &b, c.id());
    let one: Value =
        serde_json::from_str(&rt.exec(&["events", "--stats", c.id()]).ok().stdout).unwrap();
    assert_eq!(one["type"], "stats");
    assert_eq!(one["id"], c.id());
    assert_eq!(one["data"]["memory"]["usage"]["limit"], 16777216);
    assert!(one["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    assert!(one["data"]["pids"]["current"].as_u64().unwrap() >= 1);

    let out_file = b.path().join("events.out");
    let mut stream = rt
        .command()
        .args(["events", "--interval", "200ms", c.id()])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .spawn()
        .unwrap();
    // The stream is watching once it has printed its first stats.
    spec_tests::wait::for_lines(&out_file, 1);
    std::fs::write(marks.join("go"), "").unwrap();
    let mut saw_oom = false;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(100));
        let text = std::fs::read_to_string(&out_file).unwrap();
        if text
            .lines()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "oom"))
        {
            saw_oom = true;
            break;
        }
    }
    // Deleting the container ends the stream.
    rt.exec(&["delete", "--force", c.id()]).ok();
    let status = stream.wait().unwrap();
    assert!(status.success());
    assert!(
        saw_oom,
        "no oom event: {}",
        std::fs::read_to_string(&out_file).unwrap()
    );
}

/// The directory of `pid`'s cgroup in a v1 controller's hierarchy, as the host sees it.
fn controller_dir_of(pid: i64, controller: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    let path = text
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
            ctrls
                .split(',')
                .any(|c| c == controller)
                .then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("no {controller} cgroup: {text}"));
    Path::new("/sys/fs/cgroup")
        .join(controller)
        .join(path.trim_start_matches('/'))
}

#[test]
fn update_accepts_memory_swap_minus_one() {
    let rt = Runtime::new();
    let c = rt.guard("swapunlimited");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let pid = start_detached(&rt, &b, c.id());
    let memory = controller_dir_of(pid, "memory");
    rt.exec(&["update", "--memory", "100m", "--memory-swap", "-1", c.id()])
        .ok();
    let read = |f: &str| {
        std::fs::read_to_string(memory.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(read("memory.limit_in_bytes"), "104857600");
    if memory.join("memory.memsw.limit_in_bytes").exists() {
        // -1 is unlimited: the kernel's largest page-aligned value.
        let v: u64 = read("memory.memsw.limit_in_bytes").parse().unwrap();
        assert!(v > 1 << 62, "{v}");
    }
    // The negative control: a value that is no size is refused, naming the flag.
    let out = rt.exec(&["update", "--memory-swap", "lots", c.id()]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("memory-swap"), "{out:?}");
}

/// A parent cgroup a test makes: the container's create makes it in every hierarchy (and
/// delete removes only the container's own), so it is removed from every hierarchy when
/// dropped, after the container.
struct ParentCgroup(String);

impl Drop for ParentCgroup {
    fn drop(&mut self) {
        if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
            for e in entries.flatten() {
                let _ = std::fs::remove_dir(e.path().join(&self.0));
            }
        }
    }
}

#[test]
fn update_orders_period_and_quota_under_a_limited_parent() {
    let cpu = Path::new("/sys/fs/cgroup/cpu");
    if !cpu.join("cpu.cfs_quota_us").exists() {
        spec_tests::not_run::not_run("no cgroup v1 cpu controller with CFS bandwidth");
        return;
    }
    let rt = Runtime::new();
    // A parent limited to half a CPU, the container at 500000/1000000 (half a CPU). The
    // parent's guard is declared first, so it is dropped after the container's.
    let parent = spec_tests::container::unique_id("cpuparent");
    let _parent = ParentCgroup(parent.clone());
    let c = rt.guard("cpuorder");
    std::fs::create_dir(cpu.join(&parent)).unwrap();
    std::fs::write(cpu.join(&parent).join("cpu.cfs_quota_us"), "50000").unwrap();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"])
        .set("/linux/cgroupsPath", json!(format!("/{parent}/{}", c.id())))
        .set(
            "/linux/resources/cpu",
            json!({"shares": 100, "quota": 500000, "period": 1000000}),
        );
    start_detached(&rt, &b, c.id());
    let child = cpu.join(&parent).join(c.id());
    let read = |f: &str| {
        std::fs::read_to_string(child.join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    // The negative control: the period alone (old quota over new period is 50 CPUs) is
    // refused by the kernel, with runc too.
    let out = rt.exec(&["update", "--cpu-period", "10000", c.id()]);
    assert_ne!(out.code, 0, "{out:?}");
    assert_eq!(read("cpu.cfs_period_us"), "1000000");
    // With the quota, runc's order gets both in.
    rt.exec(&[
        "update",
        "--cpu-period",
        "10000",
        "--cpu-quota",
        "3000",
        c.id(),
    ])
    .ok();
    assert_eq!(read("cpu.cfs_period_us"), "10000");
    assert_eq!(read("cpu.cfs_quota_us"), "3000");
    rt.exec(&["delete", "--force", c.id()]).ok();
}
