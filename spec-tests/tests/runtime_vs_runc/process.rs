//! runtime-spec `process`: args, env, cwd, user, capabilities, rlimits, noNewPrivileges,
//! oomScoreAdj, terminal, and the stdio a client hands over (issue 13.3).

use serde_json::json;
use spec_tests::matrix::{cli, row, Class, Obs, Row, Stdout};

const S: &str = "process";

/// The capability lines of the process's own status.
const CAPS: &str = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status";

fn caps(set: &str, list: &[&str]) -> Row {
    row(S, format!("capabilities.{set} = {list:?}"))
        .set(&format!("/process/capabilities/{set}"), json!(list))
        .sh(CAPS)
        .run()
}

fn rlimit(kind: &str, soft: u64, hard: u64) -> Row {
    row(S, format!("rlimits: {kind} {soft}/{hard}"))
        .push(
            "/process/rlimits",
            json!({"type": kind, "soft": soft, "hard": hard}),
        )
        .sh("grep -v '^Limit' /proc/self/limits")
        .run()
}

pub fn rows() -> Vec<Row> {
    vec![
        // args
        row(S, "args: argv reaches the program word by word")
            .args(&["echo", "a", "b c", ""])
            .run(),
        row(S, "args[0] is looked up in the container's PATH").args(&["true"]).run(),
        row(S, "args[0] as an absolute path").args(&["/bin/echo", "abs"]).run(),
        row(S, "args[0] not found: create fails naming it")
            .args(&["no-such-program"])
            .run_err("executable file not found in $PATH"),
        row(S, "args[0] not executable: permission denied")
            .args(&["/etc/passwd"])
            .run_err("permission denied"),
        row(S, "args empty: refused").set("/process/args", json!([])).run(),
        row(S, "exit status of the program is run's")
            .sh("exit 3")
            .run(),
        row(S, "a program killed by a signal: run exits 128+N")
            .sh("kill -9 $$")
            .run(),
        row(S, "stdout and stderr stay apart")
            .sh("echo out; echo err >&2")
            .step(cli(&["run", "{id}"]).err(Class::Text)),
        // env
        row(S, "env: the list in order, nothing added but HOME")
            .set("/process/env", json!(["A=1", "B=two words", "PATH=/bin", "C=3", "D=4", "E=5", "F=6", "G=7"]))
            .args(&["env"])
            .run(),
        row(S, "env: a repeated name keeps its first place and takes the last value")
            .set("/process/env", json!(["B=1", "PATH=/bin", "A=2", "B=3", "HOME=", "C=4"]))
            .args(&["env"])
            .run(),
        row(S, "env: an empty name")
            .set("/process/env", json!(["PATH=/bin", "=x"]))
            .args(&["env"])
            .run(),
        row(S, "env: HOME comes from /etc/passwd when unset (root)")
            .set("/process/env", json!(["PATH=/bin"]))
            .sh("echo $HOME")
            .run(),
        row(S, "env: HOME of uid 1000 from /etc/passwd")
            .set("/process/env", json!(["PATH=/bin"]))
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .sh("echo $HOME")
            .run(),
        row(S, "env: HOME given is kept")
            .set("/process/env", json!(["PATH=/bin", "HOME=/tmp"]))
            .sh("echo $HOME")
            .run(),
        row(S, "env: a variable given twice")
            .set("/process/env", json!(["PATH=/bin", "A=1", "A=2"]))
            .sh("echo $A; env | grep -c ^A=")
            .run(),
        row(S, "env: no PATH at all, args[0] bare")
            .set("/process/env", json!(["A=1"]))
            .args(&["echo", "nopath"])
            .run(),
        row(S, "env: an entry without '='")
            .set("/process/env", json!(["PATH=/bin", "NOEQUALS"]))
            .args(&["env"])
            .run(),
        // cwd
        row(S, "cwd: /tmp").set("/process/cwd", json!("/tmp")).args(&["pwd"]).run(),
        row(S, "cwd: missing directories are created")
            .set("/process/cwd", json!("/new/deep/dir"))
            .args(&["pwd"])
            .run(),
        row(S, "cwd: relative path refused")
            .set("/process/cwd", json!("tmp"))
            .args(&["pwd"])
            .run(),
        row(S, "cwd: a file is refused")
            .set("/process/cwd", json!("/etc/passwd"))
            .args(&["pwd"])
            .run_err("not a directory"),
        row(S, "cwd: a symlink inside the rootfs resolves inside it")
            .with(|s| {
                std::os::unix::fs::symlink("/tmp", s.bundle.rootfs().join("lnk"))?;
                Ok(())
            })
            .set("/process/cwd", json!("/lnk"))
            .args(&["pwd"])
            .run(),
        // user
        row(S, "user: uid and gid 1000")
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .args(&["id"])
            .run(),
        row(S, "user: additionalGids")
            .set("/process/user", json!({"uid": 1000, "gid": 1000, "additionalGids": [2000, 3000]}))
            .args(&["id"])
            .run(),
        row(S, "user: root's supplementary groups without additionalGids")
            .args(&["id", "-G"])
            .run(),
        row(S, "user: uid 4242 absent from /etc/passwd")
            .set("/process/user", json!({"uid": 4242, "gid": 4242}))
            .set("/process/env", json!(["PATH=/bin"]))
            .sh("id; echo HOME=$HOME")
            .run(),
        row(S, "user: umask 027")
            .set("/process/user/umask", json!(0o27))
            .sh("umask; touch /tmp/f; stat -c %a /tmp/f")
            .set("/root/readonly", json!(false))
            .run(),
        row(S, "user: default umask")
            .sh("umask")
            .run(),
        // capabilities
        caps("bounding", &["CAP_KILL"]),
        caps("effective", &["CAP_KILL", "CAP_CHOWN"]),
        caps("permitted", &["CAP_KILL"]),
        caps("inheritable", &["CAP_KILL"]),
        caps("ambient", &[]),
        row(S, "capabilities: every set empty")
            .set("/process/capabilities", json!({}))
            .sh(CAPS)
            .run(),
        row(S, "capabilities: no capabilities object")
            .remove("/process/capabilities")
            .sh(CAPS)
            .run(),
        row(S, "capabilities: only bounding given, the other sets are empty")
            .set("/process/capabilities", json!({"bounding": ["CAP_KILL", "CAP_CHOWN"]}))
            .sh(CAPS)
            .run(),
        row(S, "capabilities: an unknown name in a container exec joins")
            .set("/process/capabilities/bounding", json!(["CAP_KILL", "CAP_NO_SUCH"]))
            .args(&["sleep", "100"])
            .daemon()
            .exec(&["sh", "-c", CAPS]),
        row(S, "capabilities: a name without CAP_ is unknown to runc")
            .set("/process/capabilities/bounding", json!(["CAP_KILL", "SYS_ADMIN"]))
            .set("/process/capabilities/effective", json!(["CAP_KILL", "SYS_ADMIN"]))
            .set("/process/capabilities/permitted", json!(["CAP_KILL", "SYS_ADMIN"]))
            .sh(CAPS)
            .run(),
        row(S, "capabilities: uid 1000 keeps ambient ones")
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .sh(CAPS)
            .run(),
        row(S, "capabilities: an unknown name")
            .set("/process/capabilities/bounding", json!(["CAP_KILL", "CAP_NO_SUCH"]))
            .sh(CAPS)
            .run(),
        row(S, "capabilities: CAP_SYS_ADMIN lets the program mount")
            .set("/process/capabilities/bounding", json!(["CAP_SYS_ADMIN"]))
            .set("/process/capabilities/effective", json!(["CAP_SYS_ADMIN"]))
            .set("/process/capabilities/permitted", json!(["CAP_SYS_ADMIN"]))
            .sh("mount -t tmpfs t /mnt && echo mounted")
            .run(),
        row(S, "capabilities: ambient not in inheritable")
            .set("/process/capabilities/inheritable", json!([]))
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .sh(CAPS)
            .run(),
        // rlimits
        rlimit("RLIMIT_NOFILE", 512, 2048),
        rlimit("RLIMIT_NPROC", 100, 200),
        rlimit("RLIMIT_CORE", 0, 1 << 20),
        rlimit("RLIMIT_STACK", 4 << 20, 16 << 20),
        rlimit("RLIMIT_MEMLOCK", 65536, 65536),
        rlimit("RLIMIT_CPU", 100, 200),
        row(S, "rlimits: none given")
            .remove("/process/rlimits")
            .sh("ulimit -n; ulimit -Hn")
            .run(),
        row(S, "rlimits: an unknown type")
            .push("/process/rlimits", json!({"type": "RLIMIT_NO_SUCH", "soft": 1, "hard": 1}))
            .args(&["true"])
            .run(),
        row(S, "rlimits: soft above hard")
            .set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 4096, "hard": 1024}]))
            .args(&["true"])
            .run(),
        row(S, "rlimits: NOFILE above the kernel's nr_open (12.8)")
            .set("/process/rlimits", json!([{"type": "RLIMIT_NOFILE", "soft": 1u64 << 40, "hard": 1u64 << 40}]))
            .args(&["true"])
            .run_err("error setting rlimit type 7: operation not permitted"),
        row(S, "rlimits: the same type twice")
            .set("/process/rlimits", json!([
                {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 100},
                {"type": "RLIMIT_NOFILE", "soft": 200, "hard": 200}]))
            .sh("ulimit -n")
            .run(),
        // noNewPrivileges, oomScoreAdj
        row(S, "noNewPrivileges: true")
            .sh("grep NoNewPrivs /proc/self/status")
            .run(),
        row(S, "noNewPrivileges: false")
            .set("/process/noNewPrivileges", json!(false))
            .sh("grep NoNewPrivs /proc/self/status")
            .run(),
        row(S, "oomScoreAdj: 500").set("/process/oomScoreAdj", json!(500)).args(&["cat", "/proc/self/oom_score_adj"]).run(),
        row(S, "oomScoreAdj: -1000").set("/process/oomScoreAdj", json!(-1000)).args(&["cat", "/proc/self/oom_score_adj"]).run(),
        row(S, "oomScoreAdj: unset inherits the runtime's").args(&["cat", "/proc/self/oom_score_adj"]).run(),
        row(S, "oomScoreAdj: 2000 is out of range")
            .set("/process/oomScoreAdj", json!(2000))
            .args(&["true"])
            .run(),
        // terminal
        row(S, "terminal: run in a terminal relays it (13.10)")
            .set("/process/terminal", json!(true))
            // The size is runtime_terminal's to compare (runc 1.1.5 races there: its `stty size`
            // sometimes fails with "No child processes"); this row compares the relay.
            .sh("tty")
            .step(cli(&["run", "{id}"]).tty()),
        row(S, "terminal: the tty belongs to the process's user (19.10)")
            .set("/process/terminal", json!(true))
            .set("/process/user", json!({"uid": 1000, "gid": 1000}))
            .sh("stat -c '%u %g %a' $(tty)")
            .step(cli(&["run", "{id}"]).tty()),
        row(S, "terminal: run -d without --console-socket is refused, named (13.9)")
            .set("/process/terminal", json!(true))
            .args(&["sleep", "100"])
            .cli_err(&["run", "-d", "{id}"], "cannot allocate tty if runc will detach without setting console socket")
            .by_design("issue 13.9: the message names this runtime (\"cannot allocate tty if the runtime will detach without setting console socket\") and the field and flag, where runc names itself"),
        row(S, "terminal: true with no terminal and no socket fails before creating (12.7)")
            .set("/process/terminal", json!(true))
            .args(&["true"])
            .step(cli(&["run", "{id}"]).timeout(20))
            .observe(Obs::State),
        row(S, "stdio: foreground run relays stdout and stderr through pipes")
            .sh("readlink /proc/self/fd/1 | sed 's/:.*//'; readlink /proc/self/fd/2 | sed 's/:.*//'")
            .run()
            .by_design("a foreground run hands the caller's stdout and stderr to the container, as crun does; runc relays them through pipes it copies"),
        // stdio
        row(S, "stdio: stdin /dev/null reads EOF").args(&["cat"]).run(),
        row(S, "stdio: stdout >/dev/null stays writable (13.3)")
            .sh("echo hi; echo rc=$? >&2")
            .step(cli(&["run", "{id}"]).stdout(Stdout::DevNull).err(Class::Text)),
        row(S, "stdio: fd modes of a container created with </dev/null >/dev/null (13.3)")
            .args(&["sleep", "100"])
            .step(cli(&["create", "{id}"]).stdout(Stdout::DevNull))
            .start()
            .wait("running")
            .observe(Obs::FdModes),
        row(S, "stdio: fd modes with captured stdout and stderr (13.3)")
            .args(&["sleep", "100"])
            .daemon()
            .observe(Obs::FdModes),
        row(S, "stdio: no fd beyond 0-2 reaches the program")
            .args(&["ls", "/proc/self/fd"])
            .run(),
    ]
}
