//! Rootless: an unprivileged user, created by the test with subordinate uid/gid ranges,
//! writes a spec with `spec --rootless` and runs it; state lives under $XDG_RUNTIME_DIR.
//! Without a cgroup the user may write to, cgroups are skipped as runc skips them (this
//! machine: cgroup v1 without delegation). On a systemd host with cgroup v2 (the guest
//! hack/vm-test.sh boots) the limits are applied, as runc applies them, with both drivers:
//! cgroupfs inside a cgroup systemd delegated to the user (`systemd-run --user --scope -p
//! Delegate=yes`), and `--systemd-cgroup` through the user's systemd manager.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::cgroups::{self, read, require_systemd};
use spec_tests::container::{capture, unique_id, Outcome};

const USER: &str = "spec-rootless";
/// The subordinate ids the test gives its user when useradd did not (as a fresh Debian
/// useradd does, from 100000 on).
const SUBID_FALLBACK: &str = "300000-365535";

/// The test user: (uid, gid, first subordinate uid, first subordinate gid), each range
/// 65536 ids long. Made once per test process: two useradd runs at once can both
/// "succeed", the later one rewriting /etc/passwd with another uid for the same name.
fn ensure_user() -> (u32, u32, u32, u32) {
    static USER_IDS: std::sync::OnceLock<(u32, u32, u32, u32)> = std::sync::OnceLock::new();
    *USER_IDS.get_or_init(make_user)
}

fn make_user() -> (u32, u32, u32, u32) {
    let id = |flag: &str| {
        let out = Command::new("id").args([flag, USER]).output().unwrap();
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<u32>()
                .unwrap()
        })
    };
    if id("-u").is_none() {
        let made = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", USER])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {USER}");
    }
    let sub = |file: &str| {
        std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let mut f = l.split(':');
                (f.next() == Some(USER)).then(|| f.next().and_then(|s| s.parse::<u32>().ok()))?
            })
    };
    if sub("/etc/subuid").is_none() || sub("/etc/subgid").is_none() {
        let ok = Command::new("usermod")
            .args([
                "--add-subuids",
                SUBID_FALLBACK,
                "--add-subgids",
                SUBID_FALLBACK,
                USER,
            ])
            .status()
            .unwrap();
        assert!(
            ok.success() || sub("/etc/subuid").is_some(),
            "usermod --add-subuids"
        );
    }
    (
        id("-u").unwrap(),
        id("-g").unwrap(),
        sub("/etc/subuid").unwrap(),
        sub("/etc/subgid").unwrap(),
    )
}

fn chown_r(path: &Path) {
    let ok = Command::new("chown")
        .args(["-R", &format!("{USER}:{USER}")])
        .arg(path)
        .status()
        .unwrap();
    assert!(ok.success());
}

/// What a rootless test needs on disk, owned by the user: a copy of the binary under test
/// it can execute wherever the build tree is, an XDG_RUNTIME_DIR and a bundle whose
/// config.json the runtime under test wrote with `spec --rootless`.
struct Setup {
    /// Holds the binary copy and XDG_RUNTIME_DIR; removed on drop.
    _tools: tempfile::TempDir,
    bin: PathBuf,
    xdg: PathBuf,
    bundle: Bundle,
}

impl Setup {
    fn new(args: &[&str]) -> Self {
        let tools = tempfile::tempdir().unwrap();
        let bin = tools.path().join("runtime");
        std::fs::copy(spec_tests::bins::runtime(), &bin).unwrap();
        let xdg = tools.path().join("xdg");
        std::fs::create_dir(&xdg).unwrap();
        chown_r(tools.path());
        let bundle = Bundle::busybox();
        std::fs::remove_file(bundle.path().join("config.json")).unwrap();
        chown_r(bundle.path());
        let s = Self {
            _tools: tools,
            bin,
            xdg,
            bundle,
        };
        let path = s.bundle_arg();
        s.run(&[], &["spec", "--rootless", "--bundle", &path])
            .ok_or_panic();
        s.edit(|c| {
            c["process"]["terminal"] = false.into();
            c["process"]["args"] = json!(args);
        });
        s
    }

    fn bundle_arg(&self) -> String {
        self.bundle.path().to_string_lossy().to_string()
    }

    /// Changes the config.json `spec --rootless` wrote.
    fn edit(&self, f: impl FnOnce(&mut Value)) {
        let path = self.bundle.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        f(&mut config);
        std::fs::write(&path, config.to_string()).unwrap();
        chown_r(&path);
    }

    /// Runs `PREFIX... runtime ARGS...` as the test user, state under its XDG_RUNTIME_DIR.
    /// `prefix` is what runs the runtime (e.g. systemd-run); `env` adds variables.
    fn run(&self, prefix: &[&str], args: &[&str]) -> Outcome {
        self.run_env(&[], prefix, args)
    }

    fn run_env(&self, env: &[(&str, String)], prefix: &[&str], args: &[&str]) -> Outcome {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", USER, "--regid", USER, "--init-groups", "env"])
            .arg(format!("XDG_RUNTIME_DIR={}", self.xdg.display()))
            .arg("HOME=/tmp");
        for (k, v) in env {
            cmd.arg(format!("{k}={v}"));
        }
        cmd.args(prefix).arg(&self.bin).args(args);
        capture(cmd)
    }
}

trait OkOrPanic {
    fn ok_or_panic(self) -> Outcome;
}

impl OkOrPanic for Outcome {
    fn ok_or_panic(self) -> Outcome {
        assert_eq!(self.code, 0, "{self:?}");
        self
    }
}

#[test]
fn an_unprivileged_user_runs_a_rootless_container() {
    let (uid, _, _, _) = ensure_user();
    let s = Setup::new(&["sh", "-c", "id -u; cat /proc/self/uid_map"]);
    let bundle = s.bundle_arg();
    let out = s.run(&[], &["run", "--bundle", &bundle, "--keep", "rootless1"]);
    let listed = s.run(&[], &["list", "-q"]);
    let _ = s.run(&[], &["delete", "--force", "rootless1"]);
    assert_eq!(out.code, 0, "{out:?}");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{out:?}");
    let map: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(map, ["0", &uid.to_string(), "1"], "{out:?}");
    assert_eq!(listed.stdout, "rootless1\n", "{listed:?}");
    // Each runtime keeps its state in a directory named after itself.
    let name = match cgroups::runc_version(&spec_tests::bins::runtime()) {
        Some(_) => "runc",
        None => "runtime",
    };
    assert!(
        s.xdg.join(name).is_dir(),
        "state not under $XDG_RUNTIME_DIR/{name}"
    );
    assert!(
        !s.xdg.join(name).join("rootless1").exists(),
        "state left after delete"
    );
}

#[test]
fn subordinate_id_ranges_map_a_whole_range() {
    // Known gap (docs/runtime.md): on a cgroup v1 host without delegation our runtime hides
    // the v1 hierarchy inside a private user namespace that maps only the caller's ids, so
    // the container's namespace beneath it cannot map subordinate ranges; runc can.
    if !cgroups::is_v2() && cgroups::runc_version(&spec_tests::bins::runtime()).is_none() {
        cgroups::not_run(
            "subordinate_id_ranges_map_a_whole_range",
            "ours cannot map subordinate ids on a cgroup v1 host without delegation \
             (known gap, docs/runtime.md); it runs on cgroup v2",
        );
        return;
    }
    let (uid, gid, subuid, subgid) = ensure_user();
    let s = Setup::new(&[
        "sh",
        "-c",
        "cat /proc/self/uid_map /proc/self/gid_map; touch /f && chown 1000:1000 /f && stat -c %u:%g /f",
    ]);
    let mappings = |own: u32, sub: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": sub, "size": 65536}])
    };
    s.edit(|c| {
        c["root"]["readonly"] = false.into();
        // chown needs CAP_CHOWN, which `spec --rootless` does not grant.
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
        c["linux"]["uidMappings"] = mappings(uid, subuid);
        c["linux"]["gidMappings"] = mappings(gid, subgid);
    });
    let bundle = s.bundle_arg();
    let id = unique_id("subids");
    let out = s.run(&[], &["run", "--bundle", &bundle, &id]);
    assert_eq!(out.code, 0, "{out:?}");
    let maps: Vec<Vec<String>> = out
        .stdout
        .lines()
        .take(4)
        .map(|l| l.split_whitespace().map(String::from).collect())
        .collect();
    let row = |a: u32, b: u32, n: u32| vec![a.to_string(), b.to_string(), n.to_string()];
    assert_eq!(
        maps,
        [
            row(0, uid, 1),
            row(1, subuid, 65536),
            row(0, gid, 1),
            row(1, subgid, 65536)
        ],
        "{out:?}"
    );
    assert_eq!(out.stdout.lines().nth(4), Some("1000:1000"), "{out:?}");
    // Container uid 1000 is host uid subuid+999.
    let meta = std::os::unix::fs::MetadataExt::uid(
        &std::fs::metadata(s.bundle.rootfs().join("f")).unwrap(),
    );
    assert_eq!(meta, subuid + 999);

    // Negative control: a range /etc/subuid does not give the user is refused (by
    // newuidmap), so the mapping above really came from the user's own ranges.
    s.edit(|c| c["linux"]["uidMappings"] = mappings(uid, subuid + 65536 * 4));
    let refused = s.run(&[], &["run", "--bundle", &bundle, &unique_id("badsubids")]);
    assert_ne!(refused.code, 0, "{refused:?}");
}

/// Starts the user's systemd manager (lingering) and returns its bus address.
fn user_manager(uid: u32) -> String {
    let ok = Command::new("loginctl")
        .args(["enable-linger", USER])
        .status()
        .unwrap();
    assert!(ok.success(), "loginctl enable-linger");
    let bus = PathBuf::from(format!("/run/user/{uid}/bus"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while !bus.exists() {
        assert!(
            Instant::now() < deadline,
            "the user manager never made {bus:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    format!("unix:path={}", bus.display())
}

/// The environment `systemd-run --user` and the systemd driver need to reach the user's
/// manager.
fn user_bus_env(uid: u32) -> Vec<(&'static str, String)> {
    vec![("DBUS_SESSION_BUS_ADDRESS", user_manager(uid))]
}

/// The user manager's cgroup, under which everything of the user's own lives.
fn user_service_path(uid: u32) -> String {
    format!("/user.slice/user-{uid}.slice/user@{uid}.service")
}

#[test]
fn rootless_cgroupfs_limits_apply_inside_a_delegated_cgroup() {
    if !require_systemd("rootless_cgroupfs_limits_apply_inside_a_delegated_cgroup") {
        return;
    }
    let (uid, _, _, _) = ensure_user();
    let env = user_bus_env(uid);
    let s = Setup::new(&["sleep", "60"]);
    s.edit(|c| {
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 30}})
    });
    let bundle = s.bundle_arg();
    let scope = [
        "systemd-run",
        "--user",
        "--scope",
        "--quiet",
        "-p",
        "Delegate=yes",
    ];
    let id = unique_id("rlfs");
    let started = s.run_env(&env, &scope, &["run", "-d", "--bundle", &bundle, &id]);
    let state = s.run(&[], &["state", &id]);
    let cleanup = |id: &str| {
        let _ = s.run(&[], &["delete", "--force", id]);
    };
    if started.code != 0 || state.code != 0 {
        cleanup(&id);
        panic!("rootless run in a delegated scope failed: {started:?} {state:?}");
    }
    let pid = serde_json::from_str::<Value>(&state.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let path = cgroups::v2_path_of(pid);
    let dir = cgroups::v2_dir(&path);
    let limits = (read(&dir, "memory.max"), read(&dir, "pids.max"));
    cleanup(&id);
    // Where runc puts it: beside the caller's scope, inside the user's delegated subtree.
    assert!(
        path.starts_with(&format!("{}/", user_service_path(uid)))
            && path.ends_with(&format!("/{id}")),
        "container cgroup {path}"
    );
    assert_eq!(limits, ("67108864".into(), "30".into()));
    cgroups::assert_nothing_left(&id);

    // Negative control: outside a delegated cgroup the same config cannot get its limits,
    // and the run fails (runc: "rootless needs no limits ... when no permission is granted
    // for cgroups") instead of running the container unlimited.
    let denied_id = unique_id("rlfsdenied");
    let denied = s.run(&[], &["run", "-d", "--bundle", &bundle, &denied_id]);
    cleanup(&denied_id);
    assert_ne!(denied.code, 0, "{denied:?}");
    // The error says why (ours: "cannot create the cgroup ... (permission denied) ...",
    // runc: "... when no permission is granted for cgroups").
    assert!(
        denied.stderr.to_lowercase().contains("permission"),
        "{denied:?}"
    );
    cgroups::assert_nothing_left(&denied_id);
}

#[test]
fn rootless_systemd_driver_puts_the_limits_on_a_user_scope() {
    if !require_systemd("rootless_systemd_driver_puts_the_limits_on_a_user_scope") {
        return;
    }
    let (uid, _, _, _) = ensure_user();
    let env = user_bus_env(uid);
    let s = Setup::new(&["sleep", "60"]);
    let id = unique_id("rlsd");
    s.edit(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("user.slice:spec:{id}"));
        c["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 30}});
    });
    let bundle = s.bundle_arg();
    let started = s.run_env(
        &env,
        &[],
        &["--systemd-cgroup", "run", "-d", "--bundle", &bundle, &id],
    );
    let state = s.run(&[], &["state", &id]);
    let unit = format!("spec-{id}.scope");
    let show = |prop: &str| {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid", USER, "--regid", USER, "--init-groups", "env"])
            .arg(format!("DBUS_SESSION_BUS_ADDRESS={}", env[0].1))
            .args(["systemctl", "--user", "show", "-p", prop, "--value", &unit]);
        capture(cmd).stdout.trim().to_string()
    };
    let cleanup = |id: &str| {
        let _ = s.run_env(&env, &[], &["delete", "--force", id]);
    };
    if started.code != 0 || state.code != 0 {
        cleanup(&id);
        panic!("rootless --systemd-cgroup run failed: {started:?} {state:?}");
    }
    let pid = serde_json::from_str::<Value>(&state.stdout).unwrap()["pid"]
        .as_i64()
        .unwrap();
    let path = cgroups::v2_path_of(pid);
    let dir = cgroups::v2_dir(&path);
    let seen = (
        show("ActiveState"),
        show("MemoryMax"),
        show("TasksMax"),
        read(&dir, "memory.max"),
        read(&dir, "pids.max"),
    );
    cleanup(&id);
    assert_eq!(
        path,
        format!("{}/user.slice/{unit}", user_service_path(uid)),
        "the user manager's scope"
    );
    assert_eq!(
        seen,
        (
            "active".into(),
            "67108864".into(),
            "30".into(),
            "67108864".into(),
            "30".into()
        )
    );
    assert_eq!(show("LoadState"), "not-found", "the user unit is left");
    cgroups::assert_nothing_left(&id);
}
