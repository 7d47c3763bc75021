//! Where a container's processes land on a cgroup v1 (or hybrid) host: the init, a
//! foreground run's process and an exec'd process are in the container's cgroup in every v1
//! hierarchy the runtime manages, all their threads with them, and nothing of them stays in
//! the cgroup the runtime was started from.
//!
//! The fork joins these cgroups by writing `0` to the v1 `tasks` file from the joining
//! process itself when it has a single thread (third_party patch 0702, which skips the
//! grace period of a `cgroup.procs` write). A `tasks` write moves one thread only, so the
//! negative control does that by hand from one thread of a multi-threaded process and shows
//! the check sees the threads left behind.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// The v1 controllers libcgroups' v1 manager joins (`v1::ControllerType`).
const MANAGED: &[&str] = &[
    "cpu",
    "cpuacct",
    "cpuset",
    "devices",
    "hugetlb",
    "memory",
    "pids",
    "perf_event",
    "blkio",
    "net_prio",
    "net_cls",
    "freezer",
];

/// A v1 hierarchy of this host: its mount point and the test process's cgroup in it.
struct Hierarchy {
    mount: PathBuf,
    own: String,
}

/// The v1 hierarchies holding a managed controller, from this process's /proc/self/cgroup
/// (`ID:CONTROLLERS:PATH`, the v2 line has no controllers), mounted as
/// /sys/fs/cgroup/<first controller> (a co-mounted `cpu,cpuacct` has links by both names).
fn v1_hierarchies() -> Vec<Hierarchy> {
    let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let first = controllers.split(',').next()?;
            if !controllers.split(',').any(|c| MANAGED.contains(&c)) {
                return None;
            }
            let mount = Path::new("/sys/fs/cgroup").join(first);
            mount.join("tasks").exists().then(|| Hierarchy {
                mount,
                own: path.to_string(),
            })
        })
        .collect()
}

/// The v1 hierarchies, or None when the host has none (a unified host): recorded as not
/// run, never a pass.
fn v1_or_skip(test: &str) -> Option<Vec<Hierarchy>> {
    let found = v1_hierarchies();
    // A pure cgroup v2 host cannot run it (named in the suite's not-run summary); a v1 or
    // hybrid host that lost its hierarchies fails under CI.
    let first = found.first().map(|h| h.mount.join("cgroup.procs"));
    let probe = first.unwrap_or_else(|| PathBuf::from("/sys/fs/cgroup/memory/cgroup.procs"));
    spec_tests::cgroups::v1_file_or_not_run(
        &probe.to_string_lossy(),
        &format!("{test}: this host has no cgroup v1 hierarchy"),
    )
    .then_some(found)
}

/// The directory of cgroup `rel` (`/a/b`, or `/` for the root) under a mount point.
fn under(mount: &Path, rel: &str) -> PathBuf {
    match rel.trim_matches('/') {
        "" => mount.to_path_buf(),
        rel => mount.join(rel),
    }
}

fn lines(path: &Path) -> BTreeSet<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

fn threads(pid: i32) -> Vec<String> {
    let mut tids: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap_or_else(|e| panic!("/proc/{pid}/task: {e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    tids.sort();
    tids
}

/// What is wrong with process `pid`'s placement in cgroup `rel` (relative to each
/// hierarchy's root) of every hierarchy: a thread missing from the cgroup's `tasks`, the
/// process missing from its `cgroup.procs`, a thread still in the test's own cgroup.
fn misplaced(pid: i32, rel: &str, hierarchies: &[Hierarchy]) -> Vec<String> {
    let tids = threads(pid);
    let mut problems = Vec::new();
    for h in hierarchies {
        let dir = under(&h.mount, rel);
        if !dir.is_dir() {
            problems.push(format!("{}: no such cgroup", dir.display()));
            continue;
        }
        let tasks = lines(&dir.join("tasks"));
        for tid in &tids {
            if !tasks.contains(tid) {
                problems.push(format!(
                    "thread {tid} of {pid} not in {}/tasks",
                    dir.display()
                ));
            }
        }
        if !lines(&dir.join("cgroup.procs")).contains(&pid.to_string()) {
            problems.push(format!("{pid} not in {}/cgroup.procs", dir.display()));
        }
        let home = under(&h.mount, &h.own);
        if home != dir {
            let left: Vec<String> = lines(&home.join("tasks"))
                .into_iter()
                .filter(|t| tids.contains(t))
                .collect();
            if !left.is_empty() {
                problems.push(format!(
                    "threads {left:?} of {pid} left in {}/tasks",
                    home.display()
                ));
            }
        }
    }
    problems
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .parse()
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn init_and_exec_join_every_v1_hierarchy_with_all_their_threads() {
    let Some(hierarchies) = v1_or_skip("init_and_exec_join_every_v1_hierarchy") else {
        return;
    };
    let rt = Runtime::new();
    let c = rt.guard("join");
    // An absolute cgroupsPath: where a runtime puts a container without one differs
    // (runc: relative to its own cgroup).
    let rel = format!("/{}", c.id());
    let mut b = Bundle::busybox();
    b.args(&["sleep", "60"])
        .set("/linux/cgroupsPath", serde_json::json!(rel));
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let init = rt.wait_status(c.id(), "running", Duration::from_secs(10))["pid"]
        .as_i64()
        .expect("state has the init's pid") as i32;
    let problems = misplaced(init, &rel, &hierarchies);
    assert!(problems.is_empty(), "init: {problems:#?}");

    let pid_file = b.path().join("exec.pid");
    rt.exec(&[
        "exec",
        "--detach",
        "--pid-file",
        &pid_file.to_string_lossy(),
        c.id(),
        "sleep",
        "60",
    ])
    .ok();
    let exec = read_pid(&pid_file);
    let problems = misplaced(exec, &rel, &hierarchies);
    assert!(problems.is_empty(), "exec'd process: {problems:#?}");

    // A foreground run reads its own placement: /proc/self/cgroup names its cgroup for
    // every managed v1 hierarchy.
    let fg = rt.guard("join-fg");
    let want = format!("/{}", fg.id());
    let mut b = Bundle::busybox();
    b.args(&["cat", "/proc/self/cgroup"])
        .set("/linux/cgroupsPath", serde_json::json!(want));
    let out = rt.run(b.path(), fg.id()).ok();
    for line in out.stdout.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (parts.next(), parts.next(), parts.next());
        let (Some(controllers), Some(path)) = (controllers, path) else {
            continue;
        };
        if controllers.split(',').any(|c| MANAGED.contains(&c)) {
            assert_eq!(path, want, "{line} (all: {})", out.stdout);
        }
    }
}

/// One thread of this (multi-threaded) test process, parked until dropped.
struct ParkedThread {
    tid: i32,
    stop: std::sync::mpsc::Sender<()>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for ParkedThread {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A scratch cgroup in one hierarchy; on drop the thread it holds goes back home and the
/// cgroup is removed.
struct Scratch {
    dir: PathBuf,
    home: PathBuf,
    tid: i32,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::write(self.home.join("tasks"), self.tid.to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn negative_control_a_tasks_write_from_one_thread_leaves_the_others_behind() {
    let Some(hierarchies) = v1_or_skip("negative_control_a_tasks_write") else {
        return;
    };
    let h = &hierarchies[0];
    let home = under(&h.mount, &h.own);
    let rel = format!(
        "{}/st-tasks-{}",
        h.own.trim_end_matches('/'),
        std::process::id()
    );
    let dir = under(&h.mount, &rel);
    std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));

    // The thread writes `0` to the scratch cgroup's `tasks` itself, as the fork's init
    // does, but in a process with other threads.
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let (told, tid_rx) = std::sync::mpsc::channel();
    let tasks = dir.join("tasks");
    let handle = std::thread::spawn(move || {
        let moved = std::fs::write(&tasks, "0");
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        told.send((tid, moved.map_err(|e| e.to_string()))).unwrap();
        let _ = stopped.recv();
    });
    let (tid, moved) = tid_rx.recv().unwrap();
    let _thread = ParkedThread {
        tid,
        stop,
        handle: Some(handle),
    };
    let _scratch = Scratch {
        dir: dir.clone(),
        home,
        tid: _thread.tid,
    };
    moved.unwrap_or_else(|e| panic!("writing 0 to {}/tasks: {e}", dir.display()));

    let me = std::process::id() as i32;
    let problems = misplaced(me, &rel, std::slice::from_ref(h));
    eprintln!("the check saw: {problems:#?}");
    assert!(
        problems.iter().any(|p| p.contains("left in")),
        "the threads the write did not move went unnoticed: {problems:?}"
    );
    assert!(
        lines(&dir.join("tasks")).contains(&tid.to_string()),
        "the writing thread itself was not moved"
    );
}
