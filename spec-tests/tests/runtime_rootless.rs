//! Rootless: an unprivileged user writes a spec with `spec --rootless` and runs it; state
//! lives under $XDG_RUNTIME_DIR and cgroups are skipped (this host has cgroup v1 without
//! delegation), as runc does.

use std::path::Path;
use std::process::Command;

use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, Outcome};

const USER: &str = "spec-rootless";

fn ensure_user() -> u32 {
    let id = |u: &str| Command::new("id").args(["-u", u]).output().unwrap();
    let out = id(USER);
    if !out.status.success() {
        let made = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", USER])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {USER}");
    }
    String::from_utf8_lossy(&id(USER).stdout)
        .trim()
        .parse()
        .unwrap()
}

fn chown_r(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Runs the runtime as the test user with its own XDG_RUNTIME_DIR.
fn as_user(xdg: &Path, bin: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("setpriv");
    cmd.args(["--reuid", USER, "--regid", USER, "--init-groups", "env"])
        .arg(format!("XDG_RUNTIME_DIR={}", xdg.display()))
        .arg("HOME=/tmp")
        .arg(bin)
        .args(args);
    capture(cmd)
}

#[test]
fn an_unprivileged_user_runs_a_rootless_container() {
    let uid = ensure_user();
    // A copy of the binary the user can execute wherever the build tree is.
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("runtime");
    std::fs::copy(spec_tests::bins::runtime(), &bin).unwrap();
    let xdg = tools.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    chown_r(tools.path());

    let b = Bundle::busybox();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    chown_r(b.path());
    let bundle = b.path().to_string_lossy().to_string();
    as_user(&xdg, &bin, &["spec", "--rootless", "--bundle", &bundle]).ok();
    let path = b.path().join("config.json");
    let mut config: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    config["process"]["terminal"] = false.into();
    config["process"]["args"] = serde_json::json!(["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    std::fs::write(&path, config.to_string()).unwrap();
    chown_r(&path);

    let out = as_user(
        &xdg,
        &bin,
        &["run", "--bundle", &bundle, "--keep", "rootless1"],
    );
    let listed = as_user(&xdg, &bin, &["list", "-q"]);
    let _ = as_user(&xdg, &bin, &["delete", "--force", "rootless1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{out:?}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"], "{out:?}");
    assert_eq!(listed.stdout, "rootless1\n", "{listed:?}");
    assert!(
        xdg.join("runtime").is_dir(),
        "state not under $XDG_RUNTIME_DIR/runtime"
    );
    assert!(
        !xdg.join("runtime").join("rootless1").exists(),
        "state left after delete"
    );
}
