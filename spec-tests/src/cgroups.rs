//! The host's cgroups as the tests see them: which hierarchy this is, where a process's v2
//! cgroup is, systemd units, what a container left behind, and which runtime is under
//! test (runc's answers differ by version where runc changed its own behaviour).
//!
//! Tests that need a pure cgroup v2 host or systemd call `require_v2`/`require_systemd`
//! first. On a host without them (this project's CI machine is cgroup v1 hybrid without
//! systemd) they print `NOT RUN: ...` and return; hack/vm-test.sh runs them in a Debian 12
//! guest that has both, where `SPEC_TESTS_IN_VM` is set and a missing requirement fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use serde_json::{json, Value};

use crate::bundle::Bundle;
use crate::container::Runtime;

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True when /sys/fs/cgroup is the cgroup v2 hierarchy itself (not v1 or hybrid).
pub fn is_v2() -> bool {
    statfs(CGROUP_ROOT).is_ok_and(|fs| fs.filesystem_type() == CGROUP2_SUPER_MAGIC)
}

/// True when systemd is the init (sd_booted's test).
pub fn systemd_booted() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// True inside the guest hack/vm-test.sh boots for these tests.
pub fn in_vm() -> bool {
    std::env::var_os("SPEC_TESTS_IN_VM").is_some()
}

/// Reports a test that returns without checking anything here: `NOT RUN: TEST: WHY` on
/// stderr, written past the test harness's capture (which swallows the output of passing
/// tests) so that it shows in every run and hack/vm/guest.sh can count it.
pub fn not_run(test: &str, why: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "NOT RUN: {test}: {why}");
}

fn require(test: &str, what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    assert!(
        !in_vm(),
        "{test}: the test guest must have {what}, and this one has not"
    );
    not_run(
        test,
        &format!("needs {what} (hack/vm-test.sh runs it in a Debian 12 guest)"),
    );
    false
}

/// Whether a test that needs a pure cgroup v2 host can run here (see the module docs).
pub fn require_v2(test: &str) -> bool {
    require(test, "a pure cgroup v2 hierarchy", is_v2())
}

/// Whether a test that needs systemd as init on a cgroup v2 host can run here.
pub fn require_systemd(test: &str) -> bool {
    require_v2(test) && require(test, "systemd as init", systemd_booted())
}

/// A process's cgroup v2 path (the `0::` line of /proc/PID/cgroup), e.g.
/// `/system.slice/st-x-1-0`.
pub fn v2_path_of(pid: i64) -> String {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/cgroup: {e}"));
    text.lines()
        .find_map(|l| l.strip_prefix("0::"))
        .unwrap_or_else(|| panic!("no cgroup v2 line in /proc/{pid}/cgroup: {text}"))
        .to_string()
}

/// The directory of a process's cgroup v2.
pub fn v2_dir_of(pid: i64) -> PathBuf {
    v2_dir(&v2_path_of(pid))
}

/// The directory of a cgroup v2 path.
pub fn v2_dir(path: &str) -> PathBuf {
    Path::new(CGROUP_ROOT).join(path.trim_start_matches('/'))
}

/// The cgroup path of the calling process (and so of the runtime it starts).
pub fn own_v2_path() -> String {
    v2_path_of(std::process::id() as i64)
}

/// Where runc puts a cgroup v2 given as a relative path with the cgroupfs driver: under the
/// parent of the caller's own cgroup (the caller's cgroup usually holds processes, so a
/// child of it could not get controllers).
pub fn runc_relative_dir(rel: &str) -> PathBuf {
    let own = own_v2_path();
    let parent = Path::new(&own).parent().unwrap_or(Path::new("/"));
    v2_dir(&parent.join(rel).to_string_lossy())
}

/// A cgroup file's contents, trimmed.
pub fn read(dir: &Path, file: &str) -> String {
    std::fs::read_to_string(dir.join(file))
        .unwrap_or_else(|e| panic!("{}: {e}", dir.join(file).display()))
        .trim()
        .to_string()
}

/// One key of a flat-keyed file such as cpu.stat or memory.events.
pub fn keyed(dir: &Path, file: &str, key: &str) -> u64 {
    let text = read(dir, file);
    text.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {}: {text}", dir.join(file).display()))
}

/// Every cgroup directory, in any hierarchy and at any depth, whose name contains `id`:
/// what a deleted container must not leave behind.
pub fn dirs_containing(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![PathBuf::from(CGROUP_ROOT)];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            if e.file_name().to_string_lossy().contains(id) {
                found.push(e.path());
            }
            stack.push(e.path());
        }
    }
    found
}

/// Every unit the system manager has loaded, in any state, a line each (`systemctl
/// list-units --all --plain`: the unit's name first); none where systemd is not init.
pub fn unit_lines() -> Vec<String> {
    if !systemd_booted() {
        return Vec::new();
    }
    let out = Command::new("systemctl")
        .args([
            "list-units",
            "--all",
            "--plain",
            "--no-legend",
            "--no-pager",
        ])
        .output()
        .expect("systemctl list-units");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .collect()
}

/// systemd units (of the system manager) whose name contains `id`, loaded in any state.
pub fn units_containing(id: &str) -> Vec<String> {
    unit_lines()
        .iter()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|u| u.contains(id))
        .map(String::from)
        .collect()
}

/// Panics unless no cgroup directory and no system unit mentions `id`. The cgroup of a
/// deleted container can linger for a moment while the kernel reaps its last task, so this
/// waits up to 5 s for it to go (never long enough to hide a cgroup that stays).
pub fn assert_nothing_left(id: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let dirs = dirs_containing(id);
        let units = units_containing(id);
        if dirs.is_empty() && units.is_empty() {
            return;
        }
        if Instant::now() > deadline {
            panic!("container {id} left cgroups {dirs:?} and units {units:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `systemctl show -p PROP --value UNIT` for the system manager.
pub fn unit_property(unit: &str, prop: &str) -> String {
    let out = Command::new("systemctl")
        .args(["show", "-p", prop, "--value", unit])
        .output()
        .expect("systemctl show");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The runtime under test as `--version` names it: `Some((major, minor, patch))` for runc,
/// `None` for ours.
pub fn runc_version(bin: &Path) -> Option<(u32, u32, u32)> {
    let out = Command::new(bin).arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let version = text.lines().next()?.strip_prefix("runc version ")?;
    let mut parts = version
        .split(|c: char| !c.is_ascii_digit())
        .filter_map(|p| p.parse().ok());
    Some((parts.next()?, parts.next()?, parts.next().unwrap_or(0)))
}

/// The cpu.weight a runtime writes for `linux.resources.cpu.shares` on cgroup v2.
///
/// Ours uses runc's conversion since runc 1.3.2 (opencontainers/cgroups#20, crun 1.23):
/// a quadratic in log2(shares) through (2, 1), (1024, 100) and (262144, 10000), so the
/// cgroup v1 default of 1024 shares maps to the cgroup v2 default weight of 100. runc
/// before 1.3.2 mapped [2, 262144] linearly onto [1, 10000] (1024 became 39); when the
/// runtime under test is such a runc, that is what it is held to.
pub fn expected_cpu_weight(runtime: &Path, shares: u64) -> u64 {
    let linear = runc_version(runtime).is_some_and(|v| v < (1, 3, 2));
    if shares == 0 {
        return 0;
    }
    if linear {
        return 1 + ((shares - 2) * 9999) / 262142;
    }
    if shares <= 2 {
        return 1;
    }
    if shares >= 262_144 {
        return 10_000;
    }
    let l = (shares as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    10f64.powf(exponent).ceil() as u64
}

/// A container limited to 16 MiB without swap, in which a process other than the init is
/// OOM-killed once `events` streams: asserts that memory.swap.max is 0 (memory+swap equal
/// to memory), that the kill is counted in memory.events, that the stream prints an `oom`
/// event and that the container runs on; then deletes it, which ends the stream.
/// `global` goes before `run` (e.g. `--systemd-cgroup`); `cgroups_path` is set if given.
pub fn oom_event_scenario(rt: &Runtime, id: &str, global: &[&str], cgroups_path: Option<&str>) {
    const T: Duration = Duration::from_secs(30);
    let mut b = Bundle::busybox();
    b.set(
        "/linux/resources/memory",
        json!({"limit": 16777216, "swap": 16777216}),
    )
    .sh("read go < /go; tail /dev/zero; sleep 60");
    if let Some(p) = cgroups_path {
        b.set("/linux/cgroupsPath", json!(p));
    }
    // The trigger is a fifo the test writes to once the event stream runs.
    let fifo = b.rootfs().join("go");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let bundle = b.path().to_string_lossy().to_string();
    let mut args = global.to_vec();
    args.extend(["run", "-d", "--bundle", &bundle, id]);
    rt.exec(&args).ok();
    let pid = rt.wait_status(id, "running", T)["pid"].as_i64().unwrap();
    let dir = v2_dir_of(pid);
    assert_eq!(read(&dir, "memory.swap.max"), "0");
    let out_file = b.path().join("events.out");
    let mut stream = rt
        .command()
        .args(["events", "--interval", "1s", id])
        .stdout(std::fs::File::create(&out_file).unwrap())
        .spawn()
        .unwrap();
    // The first stats line says the stream is watching.
    let deadline = Instant::now() + T;
    while std::fs::read_to_string(&out_file).unwrap().is_empty() {
        assert!(Instant::now() < deadline, "no event stream");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::fs::write(&fifo, "go\n").unwrap();
    let saw_oom = || {
        std::fs::read_to_string(&out_file)
            .unwrap()
            .lines()
            .any(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| v["type"] == "oom"))
    };
    let deadline = Instant::now() + T;
    while !saw_oom() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let kills = keyed(&dir, "memory.events", "oom_kill");
    let status = rt.state(id).unwrap()["status"].clone();
    rt.exec(&["delete", "--force", id]).ok();
    assert!(stream.wait().unwrap().success());
    assert!(kills >= 1, "memory.events counts no oom_kill");
    assert_eq!(status, "running");
    assert!(
        saw_oom(),
        "no oom event: {}",
        std::fs::read_to_string(&out_file).unwrap()
    );
}

/// Whether a cgroup v1 test can run: `file` (a v1 hierarchy's) exists. Where it does not,
/// a pure cgroup v2 host records the test as not run (`why`); any other host without it
/// fails under CI=true (a v1 or hybrid host that lost the hierarchy is broken), else is
/// recorded as not run too.
pub fn v1_file_or_not_run(file: &str, why: &str) -> bool {
    if Path::new(file).exists() {
        return true;
    }
    assert!(
        !crate::not_run::in_ci() || Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "{why}"
    );
    crate::not_run::not_run(why);
    false
}
