//! Bad input gets one clear error line naming what is wrong, a non-zero exit, and nothing
//! left behind: no state directory, cgroup or mount.

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{Outcome, Runtime};

/// Asserts a failure whose stderr has a line mentioning every `needle`, and that the
/// container left nothing behind.
fn assert_clean_failure(rt: &Runtime, out: &Outcome, id: &str, needles: &[&str]) {
    assert_ne!(out.code, 0, "expected failure: {out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(!lines.is_empty(), "no error message: {out:?}");
    let last = lines.last().unwrap().to_lowercase();
    for n in needles {
        assert!(
            last.contains(&n.to_lowercase()),
            "error {last:?} does not mention {n:?}"
        );
    }
    rt.nothing_left_of(id)
        .assert_nothing_left("a refused command");
}

#[test]
fn missing_bundle() {
    let rt = Runtime::new();
    let c = rt.guard("nobundle");
    let out = rt.exec(&["create", "--bundle", "/nonexistent/bundle", c.id()]);
    assert_clean_failure(&rt, &out, c.id(), &["/nonexistent/bundle"]);
}

#[test]
fn malformed_config_json() {
    let rt = Runtime::new();
    let c = rt.guard("malformed");
    let b = Bundle::busybox();
    std::fs::write(
        b.path().join("config.json"),
        "{ \"ociVersion\": \"1.0.2\", ",
    )
    .unwrap();
    let out = rt.create(b.path(), c.id());
    assert_clean_failure(&rt, &out, c.id(), &["config.json"]);
}

#[test]
fn schema_invalid_config_json() {
    let rt = Runtime::new();
    let c = rt.guard("schema");
    let mut b = Bundle::busybox();
    // process.args must be an array of strings.
    b.set("/process/args", json!("sh"));
    let out = rt.create(b.path(), c.id());
    assert_clean_failure(&rt, &out, c.id(), &["config.json"]);
    // A relative cwd where the spec requires an absolute path.
    let mut b = Bundle::busybox();
    b.set("/process/cwd", json!("relative/dir"));
    let out = rt.create(b.path(), c.id());
    assert_clean_failure(&rt, &out, c.id(), &["cwd"]);
    // A root path that does not exist.
    let mut b = Bundle::busybox();
    b.set("/root/path", json!("no-such-rootfs"));
    let out = rt.create(b.path(), c.id());
    assert_clean_failure(&rt, &out, c.id(), &["no-such-rootfs"]);
}

#[test]
fn an_unrunnable_process_fails_create_cleanly() {
    let rt = Runtime::new();
    let c = rt.guard("noexec");
    let mut b = Bundle::busybox();
    b.args(&["/no/such/program"]);
    // runc reports this at create (it checks the executable exists in the rootfs).
    let out = rt.create(b.path(), c.id());
    if out.code == 0 {
        // Acceptable only if start then fails and delete leaves nothing.
        let start = rt.exec(&["start", c.id()]);
        rt.exec(&["delete", "--force", c.id()]);
        assert!(!rt.root().join(c.id()).exists());
        let _ = start;
    } else {
        assert_clean_failure(&rt, &out, c.id(), &[]);
    }
}

#[test]
fn duplicate_id() {
    let rt = Runtime::new();
    let c = rt.guard("dup");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.create(b.path(), c.id()).ok();
    let out = rt.create(b.path(), c.id());
    assert_ne!(out.code, 0);
    assert!(
        out.stderr.contains(c.id()) && out.stderr.contains("exists"),
        "{out:?}"
    );
    // The first container is untouched.
    assert_eq!(rt.state(c.id()).unwrap()["status"], "created");
}

#[test]
fn unknown_id() {
    let rt = Runtime::new();
    for cmd in [vec!["state"], vec!["start"], vec!["kill"], vec!["delete"]] {
        let mut args = cmd.clone();
        args.push("st-does-not-exist");
        let out = rt.exec(&args);
        assert_ne!(out.code, 0, "{cmd:?}: {out:?}");
        assert!(
            out.stderr.contains("st-does-not-exist") && out.stderr.contains("does not exist"),
            "{cmd:?}: {out:?}"
        );
    }
    // delete --force of a missing container is not an error.
    rt.exec(&["delete", "--force", "st-does-not-exist"]).ok();
}

#[test]
fn start_twice() {
    let rt = Runtime::new();
    let c = rt.guard("twice");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.create(b.path(), c.id()).ok();
    rt.exec(&["start", c.id()]).ok();
    let out = rt.exec(&["start", c.id()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("running"), "{out:?}");
}

/// The message of a logrus-shaped line (`time=... level=error msg="..."`), its quotes and
/// backslashes unescaped; a line of another shape as it is.
fn logrus_msg(line: &str) -> String {
    let Some(start) = line.find("msg=\"") else {
        return line.to_string();
    };
    let quoted = line[start + 5..].trim_end();
    let quoted = quoted.strip_suffix('"').unwrap_or(quoted);
    let mut msg = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(n @ ('\\' | '"'))) => {
                msg.push(n);
                chars.next();
            }
            _ => msg.push(c),
        }
    }
    msg
}

/// Whether `out` is the refusal of `id` as an invalid container id: a failure with one
/// stderr line saying so and naming the id (runc: "invalid container ID format"). Returns
/// what is wrong otherwise.
fn refused_as_an_invalid_id(out: &Outcome, id: &str) -> Result<(), String> {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let line = lines.first().map(|l| l.to_lowercase()).unwrap_or_default();
    if out.code == 0 {
        Err("the command succeeded".into())
    } else if lines.len() != 1 {
        Err(format!("{} error lines", lines.len()))
    } else if !line.contains("invalid container id") {
        Err(format!("{line:?} does not say the id is invalid"))
    } else if !logrus_msg(lines[0]).contains(&format!("{id:?}")) {
        Err(format!("{line:?} does not name {id:?}"))
    } else {
        Ok(())
    }
}

#[test]
fn invalid_ids_are_refused() {
    let rt = Runtime::new();
    let b = Bundle::busybox();
    let ids = [
        "../escape",
        "a/b",
        "",
        ".",
        "..",
        "a b",
        "tab\tid",
        "ü",
        &"x".repeat(1025),
    ];
    for id in ids {
        for args in [
            vec!["create", "--bundle", &*b.path().to_string_lossy(), id],
            vec!["run", "-d", "--bundle", &*b.path().to_string_lossy(), id],
            vec!["delete", id],
            vec!["state", id],
        ] {
            let out = rt.exec(&args);
            if let Err(why) = refused_as_an_invalid_id(&out, id) {
                panic!("{args:?}: {why}: {out:?}");
            }
        }
    }
    // Nothing was made, in the state root or beside it.
    let made: Vec<_> = std::fs::read_dir(rt.root()).unwrap().flatten().collect();
    assert!(made.is_empty(), "{made:?}");
    assert!(!rt.root().join("..").join("escape").exists());
    // Negative control: another failure (a missing bundle) is not taken for this one.
    let c = rt.guard("validid");
    let out = rt.create(&b.path().join("missing"), c.id());
    assert!(refused_as_an_invalid_id(&out, c.id()).is_err(), "{out:?}");
}

#[test]
fn delete_of_a_running_container_needs_force() {
    let rt = Runtime::new();
    let c = rt.guard("delrun");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let out = rt.exec(&["delete", c.id()]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("running"), "{out:?}");
    rt.exec(&["delete", "--force", c.id()]).ok();
    assert!(rt.state(c.id()).is_none());
}
