//! runc's commands on a live container: exec (issue 19.5, 19.6, 19.10), ps, events (19.15),
//! pause and resume, update (13.5, 19.11), list.

use serde_json::json;
use spec_tests::matrix::run::{step_output, Ctx};
use spec_tests::matrix::{cli, row, Class, Obs, Requires, Row, Stdout};

const S: &str = "CLI: exec, ps, events, pause, resume, update, list";

fn running(name: &str) -> Row {
    row(S, name).args(&["sleep", "100"]).daemon()
}

/// `exec ID ...` with stdout as text and stderr as text (the program's own).
fn exec(name: &str, args: &[&str]) -> Row {
    let mut a = vec!["exec"];
    a.extend_from_slice(args);
    running(&format!("exec: {name}")).step(cli(&a).err(Class::Shape))
}

/// A running container updated with `args`, observed through `files`.
fn update(name: &str, args: &[&str], files: &[(&'static str, &'static str)]) -> Row {
    let mut a = vec!["update"];
    a.extend_from_slice(args);
    a.push("{id}");
    let mut r = running(&format!("update: {name}")).cli(&a);
    for (c, f) in files {
        r = r.observe(Obs::CgroupFile(c, f));
    }
    r.requires(Requires::CgroupV1)
}

/// How many stats events the background `events` step `step` has printed so far.
fn stats_events(c: &Ctx, step: usize) -> usize {
    step_output(c, step, &Class::Text)
        .lines()
        .filter(|l| l.contains(r#""type":"stats""#))
        .count()
}

/// Waits (20 s at most) until step `step` has printed more than `seen` stats events.
fn stats_events_after(c: &Ctx, step: usize, seen: usize) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if stats_events(c, step) > seen {
            return "another stats event".into();
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    "none within 20 s".into()
}

pub fn rows() -> Vec<Row> {
    vec![
        exec("a command's output and exit", &["{id}", "sh", "-c", "echo hi; exit 4"]),
        exec("-e VAR", &["-e", "V=1", "{id}", "sh", "-c", "echo $V"]),
        exec("--env overrides the container's", &["--env", "TERM=dumb", "{id}", "sh", "-c", "echo $TERM"]),
        exec("--cwd", &["--cwd", "/tmp", "{id}", "pwd"]),
        exec("--user 1000:1000", &["--user", "1000:1000", "{id}", "id"]),
        exec("--user 1000 (gid 0)", &["--user", "1000", "{id}", "id"]),
        exec("--additional-gids", &["--user", "1000:1000", "--additional-gids", "2000", "{id}", "id"]),
        exec("--cap adds to every set", &["--cap", "CAP_SYS_ADMIN", "{id}", "sh", "-c", "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"]),
        row(S, "exec: into a container without process.capabilities gets none")
            .remove("/process/capabilities")
            .args(&["sleep", "100"])
            .daemon()
            .exec(&["sh", "-c", "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status"]),
        row(S, "exec: --cap into a container without process.capabilities")
            .remove("/process/capabilities")
            .args(&["sleep", "100"])
            .daemon()
            .step(cli(&["exec", "--cap", "CAP_KILL", "{id}", "sh", "-c", "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"]).err(Class::Ignore))
            .by_design("runc 1.1.5 panics (nil pointer in getProcess, exit 2) on exec --cap into a container whose config has no capabilities object; we add the capability to empty sets"),
        exec("-e keeps the container's order, a repeated name its place", &["-e", "Z=1", "-e", "PATH=/bin:/usr/bin", "{id}", "env"]),
        exec("-e without '='", &["-e", "NOEQUALS", "{id}", "true"]),
        exec("--cap with an unknown name", &["--cap", "CAP_NO_SUCH", "{id}", "sh", "-c", "grep -E '^Cap(Prm|Eff|Bnd)' /proc/self/status"]),
        exec("--no-new-privs", &["--no-new-privs", "{id}", "grep", "NoNewPrivs", "/proc/self/status"]),
        exec("inherits the container's seccomp", &["{id}", "grep", "Seccomp:", "/proc/self/status"]),
        exec("joins the container's namespaces", &["{id}", "sh", "-c", "hostname; for p in /proc/[0-9]*; do read c < $p/comm; echo $c; done"]),
        exec("joins the container's cgroup", &["{id}", "cat", "/proc/self/cgroup"]).by_design(super::mounts::V1_PLACEMENT),
        exec("--detach", &["-d", "{id}", "sleep", "1"]),
        exec("--pid-file", &["-d", "--pid-file", "{dir}/epid", "{id}", "sleep", "5"]).observe(Obs::File("epid", Class::Masked)),
        exec("--pid-file in a missing directory (19.6)", &["--pid-file", "/no/such/dir/pid", "{id}", "true"]),
        // 0901: the process killed for the unwritable pid file is gone when exec returns
        // (the names of the container's processes right after, read by sh's builtins alone:
        // a pipeline's count depended on whether grep was forked before ls read /proc).
        running("exec: --pid-file in a missing directory leaves no process").step(cli(&["exec", "--pid-file", "/no/such/dir/pid", "{id}", "sleep", "100"])).step(cli(&["exec", "{id}", "sh", "-c", "for p in /proc/[0-9]*; do read c < $p/comm; echo $c; done"]).out(Class::Text)),
        exec("--cgroup that does not exist (19.6)", &["--cgroup", "no-such-sub", "{id}", "true"]),
        exec("no command", &["{id}"]),
        exec("a command that does not exist", &["{id}", "no-such-cmd"]),
        exec("--tty without a terminal", &["-t", "{id}", "true"]),
        exec("--preserve-fds 0", &["--preserve-fds", "0", "{id}", "echo", "ok"]),
        exec("--process file", &["--process", "{dir}/process.json", "{id}"])
            .with(|s| {
                std::fs::write(s.dir.join("process.json"), json!({"args": ["id"], "cwd": "/", "user": {"uid": 1000, "gid": 1000}, "env": ["PATH=/bin"]}).to_string())?;
                Ok(())
            }),
        exec("--process file without user defaults to 0:0 (19.10)", &["--process", "{dir}/process.json", "{id}"])
            .with(|s| {
                std::fs::write(s.dir.join("process.json"), json!({"args": ["id"], "cwd": "/", "env": ["PATH=/bin"]}).to_string())?;
                Ok(())
            }),
        row(S, "exec: into a created container (19.5)").args(&["sleep", "100"]).create()
            .exec(&["echo", "in-created"]),
        running("exec: into a paused container (19.6)").cli(&["pause", "{id}"])
            .cli_err(&["exec", "{id}", "true"], "cannot exec in a paused container"),
        row(S, "exec: into a stopped container").args(&["true"]).create().start().wait("stopped")
            .cli_err(&["exec", "{id}", "true"], "cannot exec in a stopped container"),
        row(S, "exec: an unknown id").cli_err(&["exec", "no-such-ctr", "true"], "container does not exist"),
        // ps
        running("ps: the table").step(cli(&["ps", "{id}"]).out(Class::Masked)),
        running("ps: -f json").step(cli(&["ps", "-f", "json", "{id}"]).out(Class::Json)),
        running("ps: ps(1) options").step(cli(&["ps", "{id}", "-o", "pid,comm"]).out(Class::Masked)),
        row(S, "ps: a created container").args(&["sleep", "100"]).create().step(cli(&["ps", "-f", "json", "{id}"]).out(Class::Json)),
        row(S, "ps: an unknown id").cli_err(&["ps", "no-such-ctr"], "container does not exist"),
        running("ps: a bad format").cli(&["ps", "-f", "yaml", "{id}"]),
        // events
        running("events --stats: JSON key order (19.15)").step(cli(&["events", "--stats", "{id}"]).out(Class::Json)),
        running("events --stats | head -0 (broken pipe, 19.15)").step(cli(&["events", "--stats", "{id}"]).stdout(Stdout::BrokenPipe)),
        row(S, "events: an unknown id").cli_err(&["events", "--stats", "no-such-ctr"], "container does not exist"),
        // The stream's JSON is compared by the --stats rows; here, when it ends. The delete
        // waits for the first event: a delete before events has loaded the container is a
        // different row ("an unknown id").
        running("events: a stream ends when the container is deleted")
            .step(cli(&["events", "--interval", "1s", "{id}"]).out(Class::Ignore).background())
            .host("first event", |c| Ok(stats_events_after(c, 3, 0)))
            .cli(&["delete", "-f", "{id}"])
            .reap(3),
        row(S, "events: a stream goes on after the container stops")
            .args(&["sleep", "3"])
            .daemon()
            .step(cli(&["events", "--interval", "200ms", "{id}"]).out(Class::Ignore).background())
            .host("first event", |c| Ok(stats_events_after(c, 3, 0)))
            .wait("stopped")
            .host("events after the stop", |c| {
                let seen = stats_events(c, 3);
                Ok(stats_events_after(c, 3, seen))
            })
            .cli(&["delete", "{id}"])
            .reap(3),
        // pause / resume
        running("pause: then the freezer is FROZEN").cli(&["pause", "{id}"]).observe(Obs::CgroupFile("freezer", "freezer.state")).observe(Obs::State),
        running("resume: then running").cli(&["pause", "{id}"]).cli(&["resume", "{id}"]).observe(Obs::CgroupFile("freezer", "freezer.state")).wait("running"),
        running("pause: twice").cli(&["pause", "{id}"]).cli(&["pause", "{id}"]),
        running("resume: a running container").cli(&["resume", "{id}"]),
        row(S, "pause: a stopped container").args(&["true"]).create().start().wait("stopped").cli_err(&["pause", "{id}"], "container not running"),
        row(S, "pause: an unknown id").cli_err(&["pause", "no-such-ctr"], "container does not exist"),
        // update
        update("--memory", &["--memory", "100M"], &[("memory", "memory.limit_in_bytes")]),
        update("--memory-reservation", &["--memory-reservation", "50M"], &[("memory", "memory.soft_limit_in_bytes")]),
        update("--memory-swap -1 (19.11)", &["--memory", "100M", "--memory-swap", "-1"], &[("memory", "memory.limit_in_bytes")]),
        update("--cpu-share (runc's spelling)", &["--cpu-share", "256"], &[("cpu", "cpu.shares")]),
        update("--cpu-period and --cpu-quota", &["--cpu-period", "50000", "--cpu-quota", "10000"], &[("cpu", "cpu.cfs_period_us"), ("cpu", "cpu.cfs_quota_us")]),
        update("--cpuset-cpus", &["--cpuset-cpus", "0"], &[("cpuset", "cpuset.cpus")]),
        update("--pids-limit", &["--pids-limit", "77"], &[("pids", "pids.max")]),
        update("--blkio-weight", &["--blkio-weight", "300"], &[("blkio", "blkio.weight")]),
        update("-r resources.json", &["-r", "{dir}/res.json"], &[("pids", "pids.max"), ("memory", "memory.limit_in_bytes")])
            .with(|s| {
                std::fs::write(s.dir.join("res.json"), json!({"pids": {"limit": 33}, "memory": {"limit": 80 << 20}}).to_string())?;
                Ok(())
            }),
        update("--memory below usage", &["--memory", "4096"], &[("memory", "memory.limit_in_bytes")]),
        row(S, "update: disableOOMKiller through -r (13.5)").args(&["sleep", "100"]).daemon()
            .with(|s| {
                std::fs::write(s.dir.join("res.json"), json!({"memory": {"limit": 80 << 20, "disableOOMKiller": true}}).to_string())?;
                Ok(())
            })
            .cli(&["update", "-r", "{dir}/res.json", "{id}"])
            .observe(Obs::CgroupFile("memory", "memory.oom_control"))
            .requires(Requires::CgroupV1),
        row(S, "update: a created container").args(&["sleep", "100"]).create().cli(&["update", "--pids-limit", "10", "{id}"])
            .observe(Obs::CgroupFile("pids", "pids.max")).requires(Requires::CgroupV1),
        running("update: a paused container").cli(&["pause", "{id}"]).cli(&["update", "--pids-limit", "10", "{id}"])
            .observe(Obs::CgroupFile("pids", "pids.max")).requires(Requires::CgroupV1),
        row(S, "update: a stopped container").args(&["true"]).create().start().wait("stopped").cli(&["update", "--pids-limit", "10", "{id}"]),
        row(S, "update: an unknown id").cli_err(&["update", "--pids-limit", "10", "no-such-ctr"], "container does not exist"),
        // list
        row(S, "list: no containers").step(cli(&["list"]).out(Class::Words)),
        row(S, "list: -f json with none").step(cli(&["list", "-f", "json"]).out(Class::Text)),
        row(S, "list: -q with one").args(&["sleep", "100"]).create().cli(&["list", "-q"]),
        row(S, "list: the table with one").args(&["sleep", "100"]).create().step(cli(&["list"]).out(Class::Words)),
        row(S, "list: -f json with one").args(&["sleep", "100"]).create().step(cli(&["list", "-f", "json"]).out(Class::JsonValues)),
        row(S, "list: a bad format").cli(&["list", "-f", "yaml"]),
    ]
}
