//! Faults: the runtime is killed with SIGKILL at every phase of create, start, run, exec
//! and delete, and `delete --force` then leaves no process, cgroup directory, mount, state
//! directory or lock behind; the id can be used again. A read-only or full state root is
//! one clear error line naming the path.
//!
//! The phases are found, not listed: the runtime prints each phase it passes with
//! `_RUNTIME_TEST_TRACE_PHASES=1` during a normal lifecycle, and is then stopped at each
//! one with `_RUNTIME_TEST_STOP_AT` (it raises SIGSTOP there) and killed. Phases inside
//! libcontainer are reached with OCI hooks that block: prestart and createRuntime (the
//! runtime is running the hook during create), createContainer (the init is, and the
//! runtime waits for it) and poststop (during delete).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, cgroup_dirs_named, Outcome, Runtime};

/// The runtime commands of one lifecycle, with phase tracing on. Returns the phases in
/// the order they were passed, each with the command that passed it.
fn discover_phases() -> Vec<(String, String)> {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"])
        .set("/hooks", json!({"poststart": [{"path": "/bin/true"}]}));
    let c = rt.guard("phases");
    let bundle = b.path().to_string_lossy().into_owned();
    let mut phases = Vec::new();
    let steps: Vec<Vec<&str>> = vec![
        vec!["create", "--bundle", &bundle, c.id()],
        vec!["start", c.id()],
        vec!["exec", "-d", c.id(), "sleep", "30"],
        vec!["delete", "--force", c.id()],
    ];
    for args in &steps {
        let mut cmd = rt.command();
        cmd.args(args).env("_RUNTIME_TEST_TRACE_PHASES", "1");
        let out = capture(cmd).ok();
        collect_phases(&out, &mut phases);
    }
    // run (foreground) of a process that exits at once.
    let mut b = Bundle::busybox();
    b.args(&["true"]);
    let c = rt.guard("phasesrun");
    let mut cmd = rt.command();
    cmd.args(["run", "--bundle", &b.path().to_string_lossy(), c.id()])
        .env("_RUNTIME_TEST_TRACE_PHASES", "1");
    collect_phases(&capture(cmd).ok(), &mut phases);
    phases
}

fn collect_phases(out: &Outcome, phases: &mut Vec<(String, String)>) {
    for line in out.stderr.lines() {
        if let Some(p) = line.strip_prefix("runtime: phase ") {
            let cmd = p.split(':').next().unwrap().to_string();
            if !phases.iter().any(|(_, q)| q == p) {
                phases.push((cmd, p.to_string()));
            }
        }
    }
}

/// Where the test stops the runtime: one of its own phases, or a hook that blocks.
#[derive(Clone, Debug)]
enum StopAt {
    Phase(String),
    /// A blocking hook of this kind (createRuntime and prestart run in the runtime and
    /// createContainer in the init during create, poststop during delete); the hook writes
    /// its pid to a file when it is reached.
    Hook(&'static str),
}

/// Everything that belongs to a container attempt at the moment the runtime is stopped.
struct Snapshot {
    pids: BTreeSet<i32>,
}

/// Processes in the container's cgroups (both names) and descendants of the runtime.
fn snapshot(id: &str, runtime_pid: i32) -> Snapshot {
    let mut pids = BTreeSet::new();
    for name in [id.to_string(), format!(":youki:{id}")] {
        for dir in cgroup_dirs_named(&name) {
            for line in std::fs::read_to_string(dir.join("cgroup.procs"))
                .unwrap_or_default()
                .lines()
            {
                if let Ok(p) = line.trim().parse() {
                    pids.insert(p);
                }
            }
        }
    }
    // Descendants by parent pid.
    let mut frontier = vec![runtime_pid];
    while let Some(parent) = frontier.pop() {
        for e in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if ppid_of(pid) == Some(parent) && pids.insert(pid) {
                frontier.push(pid);
            }
        }
    }
    pids.remove(&runtime_pid);
    Snapshot { pids }
}

fn stat_fields(pid: i32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    Some(after.split_whitespace().map(str::to_string).collect())
}

fn ppid_of(pid: i32) -> Option<i32> {
    stat_fields(pid)?.get(1)?.parse().ok()
}

/// Alive and not a zombie.
fn alive(pid: i32) -> bool {
    stat_fields(pid).is_some_and(|f| f[0] != "Z" && f[0] != "X")
}

/// Waits until the runtime has stopped itself (state T) or the hook has started.
fn wait_stopped(child: &mut Child, at: &StopAt, hook_flag: &Path) {
    let pid = child.id() as i32;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reached = match at {
            StopAt::Phase(_) => stat_fields(pid).is_some_and(|f| f[0] == "T"),
            StopAt::Hook(_) => hook_flag.exists(),
        };
        if reached {
            // Let processes the runtime started settle (they run on while it is stopped).
            std::thread::sleep(Duration::from_millis(200));
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the runtime finished ({status}) without reaching {at:?}");
        }
        assert!(
            Instant::now() < deadline,
            "the runtime never reached {at:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A bundle for the attempt: `sleep 30`, plus a blocking hook if the stop is a hook.
fn bundle_for(at: &StopAt, hook_flag: &Path) -> Bundle {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    if let StopAt::Hook(kind) = at {
        // Blocks the first time only: the delete and create after the kill run it again.
        let flag = hook_flag.display();
        let script = format!("[ -e {flag} ] && exit 0; echo $$ > {flag}; exec sleep 60");
        b.set(
            &format!("/hooks/{kind}"),
            json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]),
        );
    }
    b
}

/// Runs the command that contains `at` (after the setup it needs), kills the runtime
/// there, then checks that `delete --force` leaves nothing.
fn kill_at_and_check(command: &str, at: StopAt) {
    kill_at_then_delete(command, at, &[]);
}

/// Kills the runtime at `at`, runs `delete --force` with `delete_env`, and returns what is
/// left; with an empty `delete_env` asserts that nothing is and that the id works again.
fn kill_at_then_delete(command: &str, at: StopAt, delete_env: &[(&str, &str)]) -> Vec<String> {
    let rt = Runtime::new();
    let flag_dir = tempfile::tempdir().unwrap();
    let hook_flag = flag_dir.path().join("hook.pid");
    let b = bundle_for(&at, &hook_flag);
    // Cgroup names are global: the negative control must not share ids with the main test
    // running in parallel.
    let c = rt.guard(&format!(
        "{}-{}",
        if delete_env.is_empty() {
            "fault"
        } else {
            "faultneg"
        },
        match &at {
            StopAt::Phase(p) => p.replace(':', "-"),
            StopAt::Hook(h) => format!("hook-{h}"),
        }
    ));
    let id = c.id().to_string();
    let bundle = b.path().to_string_lossy().into_owned();
    // The setup the command needs, done normally.
    if matches!(command, "start" | "exec" | "delete") {
        rt.create(b.path(), &id).ok();
    }
    if matches!(command, "exec" | "delete") {
        rt.exec(&["start", &id]).ok();
    }
    let args: Vec<&str> = match command {
        "create" => vec!["create", "--bundle", &bundle, &id],
        "run" => vec!["run", "--bundle", &bundle, &id],
        "start" => vec!["start", &id],
        "exec" => vec!["exec", &id, "sleep", "30"],
        "delete" => vec!["delete", "--force", &id],
        other => panic!("no scenario for a phase of {other}"),
    };
    let mut cmd: Command = rt.command();
    cmd.args(&args).stdout(Stdio::null()).stderr(Stdio::null());
    if let StopAt::Phase(p) = &at {
        cmd.env("_RUNTIME_TEST_STOP_AT", p);
    }
    let mut child = cmd.spawn().expect("spawn the runtime");
    wait_stopped(&mut child, &at, &hook_flag);
    let snap = snapshot(&id, child.id() as i32);
    // SAFETY: kill takes a pid and a signal.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    // A blocking hook is the runtime's child, not the container's: the test ends it.
    if let Ok(pid) = std::fs::read_to_string(&hook_flag) {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }

    let mut cmd = rt.command();
    cmd.args(["delete", "--force", &id])
        .envs(delete_env.iter().copied());
    let out = capture(cmd);
    if !delete_env.is_empty() {
        let left = what_is_left(&rt, &id, &b, &snap);
        eprintln!("{at:?} with {delete_env:?}: {out:?}");
        // Clean up for real before the guard's delete: the container is gone from the
        // runtime's state, so the stray cgroups it left are the test's to remove.
        rt.exec(&["delete", "--force", &id]);
        for name in [id.clone(), format!(":youki:{id}")] {
            for dir in cgroup_dirs_named(&name) {
                let _ = std::fs::remove_dir(&dir);
            }
        }
        return left;
    }
    assert_eq!(
        out.code, 0,
        "{at:?}: delete --force after the kill: {out:?}"
    );
    assert_nothing_left(&rt, &id, &b, &snap, &at);
    // The id is usable again: no corrupted state stands in the way.
    rt.create(b.path(), &id).ok();
    assert_eq!(rt.state(&id).unwrap()["status"], "created", "{at:?}");
    rt.exec(&["delete", "--force", &id]).ok();
    assert_nothing_left(&rt, &id, &b, &snap, &at);
    Vec::new()
}

fn assert_nothing_left(rt: &Runtime, id: &str, b: &Bundle, snap: &Snapshot, at: &StopAt) {
    let left = what_is_left(rt, id, b, snap);
    assert!(left.is_empty(), "{at:?}: left behind: {left:?}");
}

/// The detector: processes of the snapshot still alive (after up to 5 s), cgroup
/// directories under either name, mounts naming the id or the bundle, and anything under
/// the state root naming the id.
fn what_is_left(rt: &Runtime, id: &str, b: &Bundle, snap: &Snapshot) -> Vec<String> {
    let mut left = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let alive: Vec<i32> = snap.pids.iter().copied().filter(|p| alive(*p)).collect();
        if alive.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            for p in alive {
                let cmdline =
                    std::fs::read_to_string(format!("/proc/{p}/cmdline")).unwrap_or_default();
                left.push(format!(
                    "process {p} ({})",
                    cmdline.replace('\0', " ").trim()
                ));
            }
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    for name in [id.to_string(), format!(":youki:{id}")] {
        for dir in cgroup_dirs_named(&name) {
            left.push(format!("cgroup {}", dir.display()));
        }
    }
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let bundle = b.path().to_string_lossy();
    for line in mounts.lines() {
        if line.contains(id) || line.contains(&*bundle) {
            left.push(format!("mount {line}"));
        }
    }
    for e in std::fs::read_dir(rt.root()).unwrap().flatten() {
        if e.file_name().to_string_lossy().contains(id) {
            left.push(format!("state {}", e.path().display()));
        }
    }
    left
}

#[test]
fn kill_9_at_every_phase_then_delete_force_leaves_nothing() {
    let phases = discover_phases();
    let names: Vec<&str> = phases.iter().map(|(_, p)| p.as_str()).collect();
    // The lifecycle passes phases of every command (the runtime traces them).
    for cmd in ["create", "start", "exec", "delete", "run"] {
        assert!(
            phases.iter().any(|(c, _)| c == cmd),
            "no phase of {cmd} found in {names:?}"
        );
    }
    eprintln!("phases found: {names:?}");
    let mut attempts: Vec<(String, StopAt)> = phases
        .iter()
        // start:before-poststart needs a poststart hook; it is reached through `start`
        // in the discovery lifecycle but the attempts use hook-less bundles.
        .filter(|(_, p)| p != "start:before-poststart")
        .map(|(c, p)| (c.clone(), StopAt::Phase(p.clone())))
        .collect();
    attempts.push(("create".into(), StopAt::Hook("createRuntime")));
    attempts.push(("create".into(), StopAt::Hook("prestart")));
    attempts.push(("create".into(), StopAt::Hook("createContainer")));
    // (startContainer hooks run in the container after `start` has returned: not a phase
    // of the runtime.)
    attempts.push(("delete".into(), StopAt::Hook("poststop")));
    // Three at a time: each attempt is mostly waiting.
    let attempts = std::sync::Mutex::new(attempts);
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let next = attempts.lock().unwrap().pop();
                let Some((cmd, at)) = next else { break };
                let t = Instant::now();
                kill_at_and_check(&cmd, at.clone());
                eprintln!("{at:?}: checked in {:?}", t.elapsed());
            });
        }
    });
}

/// A mounted tmpfs, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn new(options: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("fault-root-")
            .tempdir()
            .unwrap();
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "tmpfs"])
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(st.success(), "mount tmpfs");
        Self { dir }
    }
    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

fn assert_one_line_naming(out: &Outcome, path: &Path, what: &str) {
    assert_eq!(out.code, 1, "{what}: {out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one error line: {out:?}");
    assert!(
        lines[0].contains(&*path.to_string_lossy()),
        "{what}: the error names {}: {out:?}",
        path.display()
    );
}

fn run_with_root(root: &Path, b: &Bundle, id: &str) -> Outcome {
    let mut cmd = Command::new(spec_tests::bins::runtime());
    cmd.arg("--root")
        .arg(root)
        .args(["run", "-d", "--bundle", &b.path().to_string_lossy(), id])
        .stdin(Stdio::null());
    capture(cmd)
}

#[test]
fn read_only_state_root_is_one_clear_error() {
    let fs = Tmpfs::new("size=1m,ro");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let id = spec_tests::container::unique_id("rostate");
    for root in [fs.path().to_path_buf(), fs.path().join("sub")] {
        let out = run_with_root(&root, &b, &id);
        assert_one_line_naming(&out, &root, "read-only root");
        assert!(out.stderr.to_lowercase().contains("read-only"), "{out:?}");
        assert!(cgroup_dirs_named(&id).is_empty(), "cgroup left");
    }
}

#[test]
fn full_state_root_is_one_clear_error() {
    // A tmpfs whose every block is taken: the lock file (no data) can still be made, the
    // container's state cannot be written.
    let fs = Tmpfs::new("size=64k");
    let filler = fs.path().join("filler");
    let _ = std::fs::write(&filler, vec![0u8; 1 << 20]);
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let id = spec_tests::container::unique_id("fullstate");
    let out = run_with_root(fs.path(), &b, &id);
    assert_ne!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {out:?}");
    assert!(
        lines[0].contains(&*fs.path().to_string_lossy()) && lines[0].contains("No space left"),
        "the error names the state root and the cause: {out:?}"
    );
    assert!(!fs.path().join(&id).exists(), "state directory left");
    assert!(cgroup_dirs_named(&id).is_empty(), "cgroup left");
    assert!(
        cgroup_dirs_named(&format!(":youki:{id}")).is_empty(),
        "cgroup left"
    );
    // Once there is room again, the same id works: nothing half-written stands in the way.
    std::fs::remove_file(&filler).unwrap();
    let out = run_with_root(fs.path(), &b, &id);
    assert_eq!(out.code, 0, "{out:?}");
    let mut cmd = Command::new(spec_tests::bins::runtime());
    cmd.arg("--root")
        .arg(fs.path())
        .args(["delete", "--force", &id]);
    capture(cmd).ok();
}

#[test]
fn negative_control_delete_without_the_sweep_leaves_an_interrupted_exec_behind() {
    // libcontainer's delete alone (our sweep off, debug builds): an exec killed before its
    // process was moved out of libcontainer's `:youki:<id>` cgroup leaves that cgroup.
    if !spec_tests::not_run::negative_control_has_test_switches() {
        return;
    }
    let left = kill_at_then_delete(
        "exec",
        StopAt::Phase("exec:started".into()),
        &[("_RUNTIME_TEST_UNSAFE", "delete-sweep")],
    );
    assert!(
        left.iter().any(|l| l.contains(":youki:")),
        "negative control: the stray cgroup should be detected: {left:?}"
    );
}
