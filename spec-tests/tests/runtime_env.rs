//! The process's environment as runc sets it: the config's order (a repeated name keeps
//! its first place and takes the last value), entries runc refuses refused before anything
//! is made, `exec -e` appended the same way, and HOME `/` for a uid /etc/passwd does not
//! name. Each check has a negative control.

use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Runtime};

/// `env` run in a container with this process.env: its stdout lines.
fn env_of(env: serde_json::Value, name: &str) -> Vec<String> {
    let mut b = Bundle::busybox();
    b.set("/process/env", env).args(&["env"]);
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = rt.run(b.path(), c.id()).ok();
    out.stdout.lines().map(str::to_string).collect()
}

/// The program sees the variables in the config's order: tools that print or hash their
/// environment (and people reading `env`) see what the config says, as with runc.
#[test]
fn env_keeps_the_config_order() {
    let env = json!([
        "B=1",
        "PATH=/bin",
        "A=2",
        "B=3",
        "HOME=",
        "Z=4",
        "C=5",
        "Y=6"
    ]);
    assert_eq!(
        env_of(env, "envorder"),
        ["B=3", "PATH=/bin", "A=2", "HOME=/root", "Z=4", "C=5", "Y=6"],
        "a repeated name keeps its first place and takes the last value; an empty HOME is \
         filled in its place"
    );

    // Negative control: another order is seen as that order (HOME, absent, goes last).
    let env = json!(["Y=6", "C=5", "Z=4", "A=2", "PATH=/bin"]);
    assert_eq!(
        env_of(env, "envorder2"),
        ["Y=6", "C=5", "Z=4", "A=2", "PATH=/bin", "HOME=/root"]
    );
    println!("control: a reversed config gives the reversed environment");
}

/// stderr with logrus's escaped quotes (`msg="... \"X\""`) unescaped.
fn unescaped(stderr: &str) -> String {
    stderr.replace("\\\"", "\"")
}

/// Asserts nothing of container `id` is left: no state, no cgroup.
fn nothing_left(rt: &Runtime, id: &str) {
    assert!(rt.state(id).is_none(), "{id} still has a state");
    let left = cgroup_dirs_named(id);
    assert!(left.is_empty(), "{id} left cgroups {left:?}");
}

/// An entry without `=` or with an empty name is refused, naming it as runc does, and
/// nothing is created.
#[test]
fn a_malformed_env_entry_is_refused() {
    for (entry, why) in [
        ("NOEQUALS", "invalid environment variable: \"NOEQUALS\""),
        ("=x", "environment variable name can't be empty: \"=x\""),
    ] {
        let mut b = Bundle::busybox();
        b.set("/process/env", json!(["PATH=/bin", entry]))
            .args(&["env"]);
        let rt = Runtime::new();
        let c = rt.guard("badenv");
        let out = rt.run(b.path(), c.id());
        assert_ne!(out.code, 0, "{entry:?} accepted: {out:?}");
        assert!(unescaped(&out.stderr).contains(why), "{out:?}");
        nothing_left(&rt, c.id());
    }

    // Negative control: the same config with the `=` runs and sets the empty variable.
    let env = env_of(json!(["PATH=/bin", "NOEQUALS="]), "okenv");
    assert!(env.contains(&"NOEQUALS=".to_string()), "{env:?}");
    println!("control: NOEQUALS= is accepted and set empty");
}

/// `exec -e` is appended to the container's environment: a name it repeats keeps its
/// place; an entry without `=` fails the exec (exit 255) and starts nothing.
#[test]
fn exec_env_is_appended_and_checked() {
    let mut b = Bundle::busybox();
    b.set("/process/env", json!(["PATH=/bin", "A=1", "B=2"]))
        .args(&["sleep", "100"]);
    let rt = Runtime::new();
    let c = rt.guard("execenv");
    rt.create(b.path(), c.id()).ok();
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", Duration::from_secs(20));
    let out = rt
        .exec(&["exec", "-e", "C=3", "-e", "A=9", c.id(), "env"])
        .ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        lines,
        ["PATH=/bin", "A=9", "B=2", "C=3", "HOME=/root"],
        "{out:?}"
    );

    let out = rt.exec(&[
        "exec",
        "-e",
        "NOEQ",
        c.id(),
        "sh",
        "-c",
        "touch /dev/shm/ran",
    ]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        unescaped(&out.stderr).contains("invalid environment variable: \"NOEQ\""),
        "{out:?}"
    );
    let ran = rt.exec(&["exec", c.id(), "test", "-e", "/dev/shm/ran"]);
    assert_ne!(ran.code, 0, "the refused exec ran its command");

    // Negative control: with the `=` the same exec runs its command.
    rt.exec(&[
        "exec",
        "-e",
        "NOEQ=1",
        c.id(),
        "sh",
        "-c",
        "touch /dev/shm/ran",
    ])
    .ok();
    rt.exec(&["exec", c.id(), "test", "-e", "/dev/shm/ran"])
        .ok();
    println!("control: exec -e NOEQ=1 runs and its file is seen");
}

/// A uid /etc/passwd does not name gets HOME `/` (runc's default user's home); a uid it
/// names gets its home from there.
#[test]
fn home_of_a_uid_without_passwd_entry_is_root_dir() {
    let home = |uid: u32, name: &str| {
        let mut b = Bundle::busybox();
        b.set("/process/env", json!(["PATH=/bin"]))
            .set("/process/user", json!({"uid": uid, "gid": uid}))
            .sh("echo \"HOME=$HOME\"");
        let rt = Runtime::new();
        let c = rt.guard(name);
        rt.run(b.path(), c.id()).ok().stdout
    };
    assert_eq!(home(4242, "home4242"), "HOME=/\n");

    // Negative control: a uid with an entry gets that entry's home, not `/`.
    let passwd = std::fs::read_to_string(Bundle::busybox().rootfs().join("etc/passwd"))
        .expect("the busybox rootfs has /etc/passwd");
    let (uid, dir) = passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some((f.get(2)?.parse::<u32>().ok()?, f.get(5)?.to_string()))
        })
        .find(|(uid, dir)| *uid != 0 && dir != "/")
        .expect("a user with a home other than /");
    assert_eq!(home(uid, "homeknown"), format!("HOME={dir}\n"));
    println!("control: uid {uid} gets {dir} from /etc/passwd");
}
