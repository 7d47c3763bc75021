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
use spec_tests::container::{capture, Outcome, Runtime};
use spec_tests::leftovers::{cgroup_dirs_containing, Probe};

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

/// The runtime's descendants at the moment it is stopped (the container's processes in
/// its cgroups are found by the checker itself).
fn snapshot(runtime_pid: i32) -> Snapshot {
    let mut pids = BTreeSet::new();
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
    let snap = snapshot(child.id() as i32);
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
        for dir in cgroup_dirs_containing(&id).iter().rev() {
            let _ = std::fs::remove_dir(dir);
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

/// The detector: the one "nothing left" checker (`spec_tests::leftovers`), also given the
/// runtime's descendants at the kill and the bundle.
fn what_is_left(rt: &Runtime, id: &str, b: &Bundle, snap: &Snapshot) -> Vec<String> {
    rt.nothing_left_of(id)
        .mounts_naming(b.path())
        .processes(snap.pids.iter().copied())
        .find()
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
        Probe::new(&id)
            .state_root(&root)
            .assert_nothing_left("a read-only state root");
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
        lines[0].contains(&*fs.path().to_string_lossy())
            && lines[0].contains("no space left on device"),
        "the error names the state root and the cause: {out:?}"
    );
    assert!(!fs.path().join(&id).exists(), "state directory left");
    Probe::new(&id)
        .state_root(fs.path())
        .assert_nothing_left("a full state root");
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
fn negative_control_delete_without_the_sweep_leaves_an_interrupted_create_behind() {
    // What a create killed before libcontainer saved its state leaves: an init in its
    // cgroup and a state directory without state.json (done by hand: a container is
    // created, its state.json removed). libcontainer's delete alone (our sweep off, debug
    // builds) leaves the init and the cgroup, and the detector must see them; delete
    // --force with the sweep, on the same situation, leaves nothing.
    if !spec_tests::not_run::negative_control_has_test_switches() {
        return;
    }
    let rt = Runtime::new();
    let b = bundle_for(
        &StopAt::Phase("create:built".into()),
        Path::new("/nonexistent"),
    );
    let interrupted = |name: &str| {
        let id = spec_tests::container::unique_id(name);
        rt.create(b.path(), &id).ok();
        // No runtime runs now: pid -1 has no descendants, so only the cgroup counts.
        let snap = snapshot(-1);
        std::fs::remove_file(rt.root().join(&id).join("state.json")).unwrap();
        (id, snap)
    };
    let delete = |id: &str, env: &[(&str, &str)]| {
        let mut cmd = rt.command();
        cmd.args(["delete", "--force", id])
            .envs(env.iter().copied());
        capture(cmd)
    };

    let (swept, snap) = interrupted("faultneg-swept");
    delete(&swept, &[]).ok();
    let after = what_is_left(&rt, &swept, &b, &snap);
    assert!(after.is_empty(), "the sweep left: {after:?}");

    let (unswept, snap) = interrupted("faultneg-unswept");
    delete(&unswept, &[("_RUNTIME_TEST_UNSAFE", "delete-sweep")]);
    let left = what_is_left(&rt, &unswept, &b, &snap);
    // Clean up for real: the runtime no longer knows the container.
    rt.nothing_left_of(&unswept).clean_up();
    assert!(
        left.iter().any(|l| l.starts_with("cgroup "))
            && left.iter().any(|l| l.starts_with("process ")),
        "negative control: the init and its cgroup should be detected: {left:?}"
    );
}

#[test]
fn an_interrupted_exec_leaves_no_stray_cgroup_even_without_the_sweep() {
    // This was the negative control of the sweep: libcontainer's exec joined `:youki:<id>`
    // instead of the container's cgroup, and an exec killed before our layer moved its
    // process back left that cgroup for the sweep to remove. Since fork patch 0404 exec
    // joins the cgroup recorded at create, so libcontainer's delete alone (our sweep off,
    // debug builds) leaves nothing; with the build before 0404 this test fails with the
    // `:youki:` cgroup.
    let left = kill_at_then_delete(
        "exec",
        StopAt::Phase("exec:started".into()),
        &[("_RUNTIME_TEST_UNSAFE", "delete-sweep")],
    );
    assert!(left.is_empty(), "an interrupted exec left: {left:?}");
}

/// The commands of the random-kill loop: what is run, after which setup, and how long it
/// takes normally (measured), so the kills spread over its whole life.
#[derive(Clone, Copy, Debug)]
enum Killed {
    Create,
    RunDetached,
    RunForeground,
    Start,
    ExecForeground,
    ExecDetached,
    Delete,
    DeleteForce,
}

const KILLED: [Killed; 8] = [
    Killed::Create,
    Killed::RunDetached,
    Killed::RunForeground,
    Killed::Start,
    Killed::ExecForeground,
    Killed::ExecDetached,
    Killed::Delete,
    Killed::DeleteForce,
];

impl Killed {
    /// Brings `id` to the state the command starts from.
    fn setup(self, rt: &Runtime, b: &Bundle, id: &str) {
        let bundle = b.path().to_string_lossy();
        match self {
            Killed::Create | Killed::RunDetached | Killed::RunForeground => {}
            Killed::Start => {
                rt.exec(&["create", "--bundle", &bundle, id]).ok();
            }
            Killed::ExecForeground | Killed::ExecDetached | Killed::DeleteForce => {
                rt.exec(&["run", "-d", "--bundle", &bundle, id]).ok();
            }
            Killed::Delete => {
                rt.exec(&["run", "-d", "--bundle", &bundle, id]).ok();
                rt.exec(&["kill", id, "KILL"]).ok();
                rt.wait_status(id, "stopped", Duration::from_secs(20));
            }
        }
    }

    fn args(self, bundle: &str, id: &str) -> Vec<String> {
        let v: Vec<&str> = match self {
            Killed::Create => vec!["create", "--bundle", bundle, id],
            Killed::RunDetached => vec!["run", "-d", "--bundle", bundle, id],
            Killed::RunForeground => vec!["run", "--bundle", bundle, id],
            Killed::Start => vec!["start", id],
            Killed::ExecForeground => vec!["exec", id, "sleep", "31"],
            Killed::ExecDetached => vec!["exec", "-d", id, "sleep", "32"],
            Killed::Delete => vec!["delete", id],
            Killed::DeleteForce => vec!["delete", "--force", id],
        };
        v.into_iter().map(str::to_string).collect()
    }
}

/// A small xorshift generator: no crate needed, and the seed is printed so that a run can
/// be repeated (`KILL_SEED`).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// How long `cmd` takes when nobody kills it (the longest of three), for `bin`.
fn normal_duration(bin: &Path, b: &Bundle, cmd: Killed) -> Duration {
    let rt = Runtime::with_bin(bin.to_path_buf());
    let mut longest = Duration::ZERO;
    for _ in 0..3 {
        let c = rt.guard("killtime");
        cmd.setup(&rt, b, c.id());
        // A foreground run or exec of `sleep` never ends: time its detached form.
        let timed = match cmd {
            Killed::RunForeground => Killed::RunDetached,
            Killed::ExecForeground => Killed::ExecDetached,
            other => other,
        };
        let mut command = rt.command();
        command
            .args(timed.args(&b.path().to_string_lossy(), c.id()))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let t = Instant::now();
        let _ = command.status();
        longest = longest.max(t.elapsed());
    }
    longest
}

/// `rounds` kills of `bin` (ours or runc) at random instants of the commands above, four
/// workers at once (each loaded by the others), each followed by `delete --force` and the
/// "nothing left" checker. Returns what leaked, one line per iteration that leaked; prints
/// the iteration counts.
fn random_kills(bin: &Path, rounds: usize, seed: u64, who: &str) -> Vec<String> {
    const WORKERS: usize = 4;
    let b = {
        let mut b = Bundle::busybox();
        b.args(&["sleep", "30"]);
        b
    };
    let durations: Vec<Duration> = KILLED
        .iter()
        .map(|c| normal_duration(bin, &b, *c))
        .collect();
    eprintln!(
        "{who}: normal durations: {:?}",
        KILLED.iter().zip(&durations).collect::<Vec<_>>()
    );
    let next = std::sync::atomic::AtomicUsize::new(0);
    let leaks = std::sync::Mutex::new(Vec::new());
    let done = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let (b, durations, next, leaks, done) = (&b, &durations, &next, &leaks, &done);
            s.spawn(move || {
                let rt = Runtime::with_bin(bin.to_path_buf());
                let mut rng = Rng(seed ^ (w as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= rounds {
                        break;
                    }
                    let which = i % KILLED.len();
                    let cmd = KILLED[which];
                    // Up to 1.2x the normal duration: some kills land after the end.
                    let range = durations[which].as_micros() as u64 * 12 / 10 + 1;
                    let delay = Duration::from_micros(rng.next() % range);
                    let c = rt.guard("rkill");
                    let id = c.id().to_string();
                    cmd.setup(&rt, b, &id);
                    let mut command = rt.command();
                    command
                        .args(cmd.args(&b.path().to_string_lossy(), &id))
                        .stdout(Stdio::null())
                        .stderr(Stdio::null());
                    let mut child = command.spawn().expect("spawn the runtime");
                    // A deliberate random delay: the point is to land anywhere.
                    std::thread::sleep(delay);
                    let _ = child.kill();
                    let _ = child.wait();
                    let out = rt.exec(&["delete", "--force", &id]);
                    let probe = rt.nothing_left_of(&id).mounts_naming(b.path());
                    let mut left = probe.find();
                    if out.code != 0 {
                        left.push(format!("delete --force failed: {out:?}"));
                    }
                    if !left.is_empty() {
                        leaks
                            .lock()
                            .unwrap()
                            .push(format!("#{i} {cmd:?} killed after {delay:?}: {left:?}"));
                        probe.clean_up();
                    }
                    let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
                    if n % 50 == 0 || n == rounds {
                        eprintln!(
                            "{who}: {n} of {rounds} kills, {} leaked",
                            leaks.lock().unwrap().len()
                        );
                    }
                }
            });
        }
    });
    leaks.into_inner().unwrap()
}

/// kill -9 at random instants of create, run (detached and foreground), start, exec
/// (foreground and detached), delete and delete --force, 300 times, four at a time: after
/// each, `delete --force ID` exits 0 and no process, cgroup (any name, any hierarchy),
/// mount, state file or socket of the id is left. runc 1.1.5 goes through the same loop
/// for comparison (its count is printed, not asserted).
#[test]
fn kill_9_at_random_instants_then_delete_force_leaves_nothing() {
    // `KILL_ROUNDS` raises the count when hunting a rare leak.
    let kills: usize = std::env::var("KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(300);
    let seed = std::env::var("KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("KILL_SEED={seed}");
    let ours = random_kills(&spec_tests::bins::runtime(), kills, seed, "ours");
    eprintln!(
        "ours: {} of {kills} kills left something: {ours:#?}",
        ours.len()
    );
    // runc leaks often (cgroups of a killed create or run): a third of the rounds shows it.
    let runc_kills = kills / 3;
    if std::env::var_os("KILL_NO_RUNC").is_none() {
        let runc = random_kills(&spec_tests::host::runc(), runc_kills, seed, "runc");
        eprintln!(
            "runc, the same loop: {} of {runc_kills} kills left something: {runc:#?}",
            runc.len()
        );
    }
    assert!(
        ours.is_empty(),
        "{} of {kills} kills left something (KILL_SEED={seed}): {ours:#?}",
        ours.len()
    );
}
