//! The holes of issue 12 and the cgroup mount of issue 19 (GHSA-m8cg-xc2p-r3fc), each
//! checked as a user or an attacker in the container sees it, beside runc on the same
//! bundle, with a negative control that shows the check can see the hole. The /proc
//! over-mount race and the `proc`-typed bind are in runtime_escapes.rs with the other
//! /proc escapes. docs/SECURITY.md lists them.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, cgroup_dirs_named, unique_id, Outcome, Runtime};
use spec_tests::host::runc;

/// Whether the tests must fail instead of skipping what they cannot run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// The runtime under test and runc, each with its own state root.
fn both() -> [(&'static str, Runtime); 2] {
    [
        ("ours", Runtime::new()),
        ("runc", Runtime::with_bin(runc())),
    ]
}

// ---------------------------------------------------------------------------------------
// 12.1: the device cgroup starts from deny-all whatever the config lists.

/// mknod of /dev/fuse's numbers (c 10:229) and an open of the node: what the container
/// says. mknod itself is allowed (runc's `c *:* m`); the open is the hole.
const MKNOD_OPEN: &str =
    "rm -f /tmp/f; mknod /tmp/f c 10 229 || exit 3; (exec 3<>/tmp/f) 2>/dev/null && echo OPENED || echo REFUSED";

/// A writable busybox bundle whose process has CAP_MKNOD (docker's default set has it).
fn mknod_bundle(devices: Option<Value>) -> Bundle {
    let mut b = Bundle::busybox();
    for set in ["bounding", "effective", "permitted"] {
        b.push(&format!("/process/capabilities/{set}"), json!("CAP_MKNOD"));
    }
    b.set("/root/readonly", json!(false)).sh(MKNOD_OPEN);
    match devices {
        Some(d) => b.set("/linux/resources", json!({ "devices": d })),
        None => b.remove("/linux/resources"),
    };
    b
}

/// How a runtime is run: on the host's cgroups as they are, or in a private mount
/// namespace whose /sys/fs/cgroup is the cgroup2 hierarchy (on a hybrid host: the same
/// kernel's eBPF device filter, the cgroup v2 code path).
#[derive(Clone, Copy, Debug, PartialEq)]
enum CgroupView {
    Host,
    Unified,
}

/// The views this host can give: always the host's; the unified one when the host is
/// hybrid (cgroup2 at /sys/fs/cgroup/unified). A v2-only host's own view is unified.
fn cgroup_views() -> Vec<CgroupView> {
    let mut views = vec![CgroupView::Host];
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists();
    if unified {
        views.push(CgroupView::Unified);
    } else if !Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        let why = "the cgroup v2 device filter is not tested: this host has no cgroup2 hierarchy";
        assert!(!in_ci(), "{why}");
        spec_tests::not_run::part_not_run("cgroup v2 device filter", why);
    }
    views
}

/// `run` of `bundle` as `id` (foreground, removed at exit) in the given view.
fn run_in_view(rt: &Runtime, view: CgroupView, bundle: &Path, id: &str) -> Outcome {
    let args = [
        rt.bin().to_string_lossy().to_string(),
        "--root".into(),
        rt.root().to_string_lossy().to_string(),
        "run".into(),
        "--bundle".into(),
        bundle.to_string_lossy().to_string(),
        id.to_string(),
    ];
    let mut cmd = match view {
        CgroupView::Host => {
            let mut c = Command::new(&args[0]);
            c.args(&args[1..]);
            c
        }
        CgroupView::Unified => {
            let mut c = Command::new("unshare");
            c.args([
                "-m",
                "sh",
                "-c",
                "mount --make-rprivate / && umount -l /sys/fs/cgroup && \
                 mount -t cgroup2 cgroup2 /sys/fs/cgroup && exec \"$@\"",
                "sh",
            ]);
            c.args(&args);
            c
        }
    };
    cmd.stdin(std::process::Stdio::null());
    let out = capture(cmd);
    // A run that failed half-way in the private namespace may leave its cgroup2 directory.
    let _ = std::fs::remove_dir(Path::new("/sys/fs/cgroup/unified").join(id));
    out
}

/// The device cgroup's list of a running container (cgroup v1).
fn devices_list(pid: i64) -> Option<String> {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let path = cgroups
        .lines()
        .find_map(|l| l.split_once(":devices:").map(|(_, p)| p.to_string()))?;
    std::fs::read_to_string(format!(
        "/sys/fs/cgroup/devices{}/devices.list",
        path.trim_end_matches('/')
    ))
    .ok()
}

#[test]
fn device_cgroup_denies_host_devices_whatever_the_config_lists() {
    let cases: [(&str, Option<Value>, &str); 5] = [
        ("empty-list", Some(json!([])), "REFUSED"),
        ("no-resources", None, "REFUSED"),
        (
            "runc-spec",
            Some(json!([{"allow": false, "access": "rwm"}])),
            "REFUSED",
        ),
        (
            "allow-all-but-fuse",
            Some(json!([{"allow": true, "access": "rwm"},
                        {"allow": false, "type": "c", "major": 10, "minor": 229, "access": "rw"}])),
            "REFUSED",
        ),
        // Negative control: a config that allows the device; the detector sees the open.
        (
            "allows-fuse",
            Some(json!([{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}])),
            "OPENED",
        ),
    ];
    let runtimes = both();
    for view in cgroup_views() {
        for (name, devices, want) in &cases {
            let b = mknod_bundle(devices.clone());
            for (who, rt) in &runtimes {
                let id = unique_id(&format!("dev{name}"));
                let out = run_in_view(rt, view, b.path(), &id);
                let _ = rt.exec(&["delete", "--force", &id]);
                eprintln!(
                    "{view:?} {name} {who}: {} {}",
                    out.stdout.trim(),
                    out.stderr.trim()
                );
                assert_eq!(out.code, 0, "{view:?} {name} {who}: {out:?}");
                assert_eq!(out.stdout.trim(), *want, "{view:?} {name} {who}: {out:?}");
            }
        }
    }
}

#[test]
fn device_cgroup_list_is_runcs() {
    // cgroup v1: the kernel's own list of the container's device cgroup, ours and runc's
    // for the same bundles.
    if !spec_tests::cgroups::v1_file_or_not_run(
        "/sys/fs/cgroup/devices/devices.list",
        "no cgroup v1 devices hierarchy on this host: devices.list not compared",
    ) {
        return;
    }
    for devices in [
        json!([]),
        json!([{"allow": false, "type": "c", "major": 1, "minor": 9, "access": "rwm"}]),
        json!([{"allow": true, "type": "c", "major": 10, "minor": 229, "access": "rw"}]),
        json!([{"allow": true, "access": "rwm"}]),
        // runc's own update test config: a deny with a letter that is not r/w/m.
        json!([{"allow": false, "access": "rwm"},
               {"allow": false, "type": "c", "major": 1, "minor": 11, "access": "rwa"}]),
    ] {
        let mut b = mknod_bundle(Some(devices.clone()));
        b.args(&["sleep", "30"]);
        let mut lists = Vec::new();
        for (who, rt) in both() {
            let c = rt.guard("devlist");
            rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
                .ok();
            let pid = rt.wait_status(c.id(), "running", Duration::from_secs(10))["pid"]
                .as_i64()
                .unwrap();
            let list = devices_list(pid).expect("the container's devices.list");
            lists.push((who, list));
        }
        eprintln!("{devices}: {lists:?}");
        assert_eq!(lists[0].1, lists[1].1, "{devices}");
    }
    // A rule the kernel cannot express (a hole in a wildcard) is refused on one line, as
    // runc refuses it, and leaves nothing.
    let b = mknod_bundle(Some(json!([
        {"allow": true, "type": "c", "major": 4, "access": "rw"},
        {"allow": false, "type": "c", "major": 4, "minor": 5, "access": "w"}
    ])));
    for (who, rt) in both() {
        let c = rt.guard("devhole");
        let out = rt.run(b.path(), c.id());
        assert_ne!(out.code, 0, "{who}: {out:?}");
        assert!(out.stderr.contains("wildcard"), "{who}: {out:?}");
        if who == "ours" {
            assert_eq!(out.stderr.trim().lines().count(), 1, "{out:?}");
            assert!(out.stderr.contains("c 4:5 w"), "{out:?}");
            assert!(!rt.root().join(c.id()).exists(), "state left: {out:?}");
            assert!(cgroup_dirs_named(c.id()).is_empty(), "cgroup left: {out:?}");
        }
    }
}

#[test]
fn runtime_spec_writes_runcs_deny_all_device_rule() {
    for (who, rt) in both() {
        let dir = tempfile::tempdir().unwrap();
        rt.exec(&["spec", "--bundle", &dir.path().to_string_lossy()])
            .ok();
        let config: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap())
                .unwrap();
        assert_eq!(
            config["linux"]["resources"]["devices"],
            json!([{"allow": false, "access": "rwm"}]),
            "{who}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// 12.8: a failure inside the container's init reaches the caller with the operation, the
// path or field, and the errno text.

/// Whether an error line names everything in `needles` (the operation, the path or field,
/// the errno text).
fn names_cause(line: &str, needles: &[&str]) -> bool {
    needles.iter().all(|n| line.contains(n))
}

#[test]
fn init_failures_name_the_operation_the_path_and_the_errno() {
    // (what, how to break the bundle, what ours must name)
    type Breaker = fn(&mut Bundle);
    let cases: [(&str, Breaker, &[&str]); 6] = [
        (
            "a mount destination under a file",
            |b| {
                std::fs::write(b.rootfs().join("afile"), "").unwrap();
                b.push(
                    "/mounts",
                    json!({"destination": "/afile/sub", "type": "tmpfs", "source": "tmpfs"}),
                );
            },
            &["mounts[", "/afile/sub", "not a directory"],
        ),
        (
            "a mount destination that is a symlink to a file",
            |b| {
                std::fs::write(b.rootfs().join("afile"), "").unwrap();
                std::os::unix::fs::symlink("/afile", b.rootfs().join("flink")).unwrap();
                b.push(
                    "/mounts",
                    json!({"destination": "/flink", "type": "tmpfs", "source": "tmpfs"}),
                );
            },
            &["mounts[", "/flink", "not a directory"],
        ),
        (
            "a bind of a file onto a dangling symlink",
            |b| {
                std::os::unix::fs::symlink("/nonexistent/x", b.rootfs().join("dangling")).unwrap();
                b.push(
                    "/mounts",
                    json!({"destination": "/dangling", "type": "bind", "source": "/etc/hostname", "options": ["bind"]}),
                );
            },
            // (the file cannot be made where the link is: openat(O_CREAT|O_EXCL|O_NOFOLLOW))
            &["mounts[", "/dangling", "create_file", "file exists"],
        ),
        (
            "an effective capability outside the bounding set",
            |b| {
                b.push("/process/capabilities/effective", json!("CAP_SYS_ADMIN"));
            },
            &["process.capabilities", "capset", "operation not permitted"],
        ),
        (
            "an rlimit above the kernel's maximum",
            |b| {
                b.set(
                    "/process/rlimits",
                    json!([{"type": "RLIMIT_NOFILE", "soft": 99999999u64, "hard": 99999999u64}]),
                );
            },
            &[
                "process.rlimits RLIMIT_NOFILE",
                "error setting rlimit type 7",
                "operation not permitted",
            ],
        ),
        (
            "an executable that is a symlink loop",
            |b| {
                std::os::unix::fs::symlink("loop2", b.rootfs().join("bin/loop1")).unwrap();
                std::os::unix::fs::symlink("loop1", b.rootfs().join("bin/loop2")).unwrap();
                b.args(&["/bin/loop1"]);
            },
            &["/bin/loop1", "stat", "too many levels of symbolic links"],
        ),
    ];
    // Negative control: the detector refuses what the runtime said before (issue 12).
    for (old, needles) in [
        ("runtime: cannot create container x: failed to create container: exec process failed with error error in executing process : failed to prepare rootfs", cases[0].2),
        ("runtime: cannot create container x: failed to create container: exec process failed with error error in executing process : failed syscall", cases[3].2),
        ("runtime: cannot create container x: failed to create container: exec process failed with error error in executing process : EPERM: Operation not permitted", cases[4].2),
        ("runtime: cannot create container x: failed to create container: exec process failed with error error in executing process : executable '/bin/loop1' not found", cases[5].2),
    ] {
        assert!(!names_cause(old, needles), "the detector must refuse {old:?}");
    }
    for (what, breaker, needles) in cases {
        let mut b = Bundle::busybox();
        b.args(&["true"]);
        breaker(&mut b);
        for (who, rt) in both() {
            let c = rt.guard("initerr");
            let out = rt.run(b.path(), c.id());
            // runc's line is printed for comparison. (runc creates a dangling link's
            // target inside the rootfs; ours refuses it, docs/SECURITY.md, CVE-2021-30465.)
            eprintln!("{what}: {who}: exit {} {}", out.code, out.stderr.trim());
            if who == "ours" {
                assert_ne!(out.code, 0, "{what}: {out:?}");
                let lines: Vec<&str> = out.stderr.lines().filter(|l| !l.is_empty()).collect();
                assert_eq!(lines.len(), 1, "{what}: one line: {out:?}");
                assert!(
                    names_cause(lines[0], needles),
                    "{what}: {needles:?} in {out:?}"
                );
                assert!(!rt.root().join(c.id()).exists(), "{what}: state left");
                assert!(cgroup_dirs_named(c.id()).is_empty(), "{what}: cgroup left");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Issue 19, item 1 (GHSA-m8cg-xc2p-r3fc): a `ro` cgroup mount gives read-only per-controller
// cgroup v1 mounts inside the container, with and without a cgroup namespace.

/// The container's mounts below /sys/fs/cgroup (not the tmpfs itself): mount point and
/// per-mount options, as its /proc/self/mountinfo lists them, then whether a write to a
/// hierarchy's cgroup.procs went through.
const CGROUP_MOUNTS: &str = "awk '$5 ~ \"^/sys/fs/cgroup/\" {print $5, $6}' /proc/self/mountinfo; \
     for f in /sys/fs/cgroup/pids/cgroup.procs /sys/fs/cgroup/unified/cgroup.procs; do \
     [ -e $f ] && { echo 1 > $f 2>/dev/null && echo WROTE $f || echo REFUSED $f; }; done; true";

#[test]
fn ro_cgroup_mount_gives_read_only_hierarchies_as_runc() {
    if !spec_tests::cgroups::v1_file_or_not_run(
        "/sys/fs/cgroup/pids/cgroup.procs",
        "no cgroup v1 hierarchies on this host: the per-controller mounts are not tested",
    ) {
        return;
    }
    for cgroupns in [true, false] {
        for ro in [true, false] {
            let mut b = Bundle::busybox();
            b.sh(CGROUP_MOUNTS);
            let namespaces: Vec<Value> = ["pid", "network", "ipc", "uts", "mount"]
                .iter()
                .chain(cgroupns.then_some(&"cgroup"))
                .map(|t| json!({ "type": t }))
                .collect();
            b.set("/linux/namespaces", json!(namespaces));
            let options = [
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                if ro { "ro" } else { "rw" },
            ];
            let mounts: Vec<Value> = b.config["mounts"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| {
                    let mut m = m.clone();
                    if m["type"] == "cgroup" {
                        m["options"] = json!(options);
                    }
                    m
                })
                .collect();
            b.set("/mounts", json!(mounts));
            let mut seen = Vec::new();
            for (who, rt) in both() {
                let c = rt.guard("cgroupro");
                let out = rt.run(b.path(), c.id());
                assert_eq!(out.code, 0, "{who}: {out:?}");
                seen.push((who, out.stdout));
            }
            let (ours, runc) = (&seen[0].1, &seen[1].1);
            eprintln!("cgroupns {cgroupns} ro {ro}:\nours:\n{ours}runc:\n{runc}");
            let hierarchies: Vec<&str> = ours
                .lines()
                .filter(|l| !l.starts_with("WROTE") && !l.starts_with("REFUSED"))
                .collect();
            assert!(hierarchies.len() > 3, "{ours}");
            for line in &hierarchies {
                let opts = line.split_whitespace().nth(1).unwrap_or("");
                for want in ["nosuid", "nodev", "noexec"] {
                    assert!(opts.split(',').any(|o| o == want), "{line}");
                }
                assert!(opts.starts_with(if ro { "ro," } else { "rw," }), "{line}");
            }
            if ro {
                assert!(ours.contains("REFUSED /sys/fs/cgroup/pids"), "{ours}");
                assert!(!ours.contains("WROTE"), "{ours}");
            } else {
                // Negative control: a `rw` cgroup mount; the detector sees the write.
                assert!(ours.contains("WROTE /sys/fs/cgroup/pids"), "{ours}");
            }
            // The same mounts with the same options as runc's.
            assert_eq!(ours, runc, "cgroupns {cgroupns} ro {ro}");
        }
    }
}

// ---------------------------------------------------------------------------------------
// 12.5: the state is its owner's: the state root 0700, container directories 0711,
// state.json and the saved config 0600, as runc; rootless too.

/// An unprivileged user for the checks (shared with runtime_rootless.rs's tests).
const OTHER_USER: &str = "spec-rootless";

fn ensure_other_user() {
    let known = || {
        Command::new("id")
            .args(["-u", OTHER_USER])
            .output()
            .unwrap()
            .status
            .success()
    };
    if !known() {
        // Another test binary may be adding it at the same time: only the end matters.
        let _ = Command::new("useradd")
            .args(["--no-create-home", "--shell", "/bin/sh", OTHER_USER])
            .status();
    }
    assert!(known(), "cannot create the user {OTHER_USER}");
}

/// `cmd args...` as the unprivileged user, with its own XDG_RUNTIME_DIR.
fn as_other_user(xdg: Option<&Path>, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("setpriv");
    cmd.args([
        "--reuid",
        OTHER_USER,
        "--regid",
        OTHER_USER,
        "--init-groups",
        "env",
    ]);
    if let Some(xdg) = xdg {
        cmd.arg(format!("XDG_RUNTIME_DIR={}", xdg.display()));
    }
    cmd.arg("HOME=/tmp")
        .args(args)
        .stdin(std::process::Stdio::null());
    capture(cmd)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn container_state_is_readable_by_its_owner_only() {
    ensure_other_user();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"])
        .set("/annotations", json!({"secret": "s3cr3t-token"}));
    for (who, rt) in both() {
        // A state root the runtime makes itself.
        let root = rt.root().join("made");
        let c_id = unique_id("modes");
        let out = capture({
            let mut c = Command::new(rt.bin());
            c.arg("--root")
                .arg(&root)
                .args(["create", "--bundle", &b.path().to_string_lossy(), &c_id])
                .stdin(std::process::Stdio::null());
            c
        });
        let dir = root.join(&c_id);
        let modes = (
            mode(&root),
            dir.exists().then(|| mode(&dir)),
            dir.join("state.json")
                .exists()
                .then(|| mode(&dir.join("state.json"))),
        );
        let read = as_other_user(None, &["cat", &dir.join("state.json").to_string_lossy()]);
        let _ = Command::new(rt.bin())
            .arg("--root")
            .arg(&root)
            .args(["delete", "--force", &c_id])
            .output();
        let octal = |m: Option<u32>| m.map_or("-".to_string(), |m| format!("{m:o}"));
        eprintln!(
            "{who}: modes root {:o}, dir {}, state.json {}; another user reads: {read:?}",
            modes.0,
            octal(modes.1),
            octal(modes.2)
        );
        assert_eq!(out.code, 0, "{who}: {out:?}");
        assert_eq!(modes.0, 0o700, "{who}: state root");
        assert_eq!(modes.1, Some(0o711), "{who}: container directory");
        if who == "ours" {
            // (runc keeps its state in state.json only; ours also in youki_config.json
            // and the id's lock file.)
            assert_eq!(modes.2, Some(0o600), "state.json");
        }
        assert_ne!(read.code, 0, "{who}: another user read the state: {read:?}");
        assert!(!read.stdout.contains("s3cr3t"), "{who}: {read:?}");
    }
    // Every file of a created container, also in a state root that already existed with
    // a wider mode (the files protect themselves).
    let rt = Runtime::new();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(rt.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let c = rt.guard("modes2");
    rt.create(b.path(), c.id()).ok();
    let dir = rt.root().join(c.id());
    assert_eq!(mode(&dir), 0o711);
    for f in ["state.json", "youki_config.json"] {
        assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&rt.root().join(format!(".{}.lock", c.id()))), 0o600);
    let read = as_other_user(None, &["cat", &dir.join("state.json").to_string_lossy()]);
    assert_ne!(read.code, 0, "another user read the state: {read:?}");
    // Negative control: the same read of a 0644 copy in the 0755 root succeeds.
    let copy = rt.root().join("state-copy.json");
    std::fs::copy(dir.join("state.json"), &copy).unwrap();
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let read = as_other_user(None, &["cat", &copy.to_string_lossy()]);
    assert_eq!(read.code, 0, "negative control: {read:?}");
    assert!(
        read.stdout.contains("s3cr3t-token"),
        "negative control: {read:?}"
    );
}

#[test]
fn rootless_state_has_the_same_modes() {
    ensure_other_user();
    let tools = tempfile::tempdir().unwrap();
    let bin = tools.path().join("runtime");
    std::fs::copy(spec_tests::bins::runtime(), &bin).unwrap();
    let xdg = tools.path().join("xdg");
    std::fs::create_dir(&xdg).unwrap();
    let mut b = Bundle::busybox();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    let chown = |p: &Path| {
        assert!(Command::new("chown")
            .args(["-R", &format!("{OTHER_USER}:{OTHER_USER}")])
            .arg(p)
            .status()
            .unwrap()
            .success());
    };
    chown(tools.path());
    chown(b.path());
    let bundle = b.path().to_string_lossy().to_string();
    let binp = bin.to_string_lossy().to_string();
    as_other_user(
        Some(&xdg),
        &[&binp, "spec", "--rootless", "--bundle", &bundle],
    )
    .ok();
    let config: Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    b.config = config;
    b.set("/process/terminal", json!(false)).args(&["true"]);
    chown(b.path());
    let out = as_other_user(
        Some(&xdg),
        &[&binp, "run", "--keep", "--bundle", &bundle, "rl-modes"],
    );
    let root = xdg.join("runtime");
    let dir = root.join("rl-modes");
    let modes = (
        mode(&root),
        dir.exists().then(|| mode(&dir)),
        dir.join("state.json")
            .exists()
            .then(|| mode(&dir.join("state.json"))),
    );
    let _ = as_other_user(Some(&xdg), &[&binp, "delete", "--force", "rl-modes"]);
    assert_eq!(out.code, 0, "{out:?}");
    assert_eq!(modes, (0o700, Some(0o711), Some(0o600)), "{modes:?}");
}

// ---------------------------------------------------------------------------------------
// 12.6: an LSM field without its LSM is refused before anything is made.

fn selinux_on_host() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

fn apparmor_on_host() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with('Y'))
}

#[test]
fn lsm_fields_without_their_lsm_are_refused_up_front() {
    let cases = [
        (
            "/process/selinuxLabel",
            "system_u:system_r:container_t:s0",
            "process.selinuxLabel",
            "SELinux",
            selinux_on_host(),
        ),
        (
            "/process/apparmorProfile",
            "docker-default",
            "process.apparmorProfile",
            "AppArmor",
            apparmor_on_host(),
        ),
        (
            "/linux/mountLabel",
            "system_u:object_r:container_file_t:s0",
            "linux.mountLabel",
            "SELinux",
            selinux_on_host(),
        ),
    ];
    for (pointer, value, field, lsm, host_has_it) in cases {
        if host_has_it {
            spec_tests::not_run::part_not_run(field, &format!("this host has {lsm}"));
            continue;
        }
        let mut b = Bundle::busybox();
        b.args(&["true"]);
        // Negative control: without the field the same bundle runs (the detector tells a
        // refusal from a run).
        let rt = Runtime::new();
        let c = rt.guard("lsmbase");
        assert_eq!(rt.run(b.path(), c.id()).code, 0);
        drop(c);
        b.set(pointer, json!(value));
        for (who, rt) in both() {
            let c = rt.guard("lsm");
            let out = rt.run(b.path(), c.id());
            eprintln!("{field}: {who}: exit {} {}", out.code, out.stderr.trim());
            if who == "ours" {
                assert_ne!(out.code, 0, "{field}: ran without {lsm}: {out:?}");
                let lines: Vec<&str> = out.stderr.lines().collect();
                assert_eq!(lines.len(), 1, "{out:?}");
                assert!(
                    lines[0].contains(field) && lines[0].contains(lsm),
                    "{field}: {out:?}"
                );
                assert!(
                    !lines[0].contains("youki") && !lines[0].contains("runc"),
                    "{out:?}"
                );
                assert!(!rt.root().join(c.id()).exists(), "state left: {out:?}");
                assert!(
                    !rt.root().join(format!(".{}.lock", c.id())).exists(),
                    "lock left"
                );
                assert!(cgroup_dirs_named(c.id()).is_empty(), "cgroup left: {out:?}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// 12.7: `process.terminal: true` with no console socket and no terminal of the caller's
// fails before anything is made (it used to start the container and hang).

/// The runtime with its stdio on files and no controlling terminal (a new session), with
/// a deadline: a runtime that hangs is killed and reported as exit 137.
fn without_terminal(rt: &Runtime, args: &[&str]) -> Outcome {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "KILL", "20", "setsid", "-w"])
        .arg(rt.bin())
        .arg("--root")
        .arg(rt.root())
        .args(args)
        .stdin(std::process::Stdio::null());
    capture(cmd)
}

#[test]
fn terminal_without_console_socket_or_caller_terminal_fails_before_creating() {
    let mut b = Bundle::busybox();
    b.set("/process/terminal", json!(true))
        .args(&["echo", "hi"]);
    let bundle = b.path().to_string_lossy().to_string();
    for (who, rt) in both() {
        for (how, extra) in [
            ("create", &["create"][..]),
            ("run -d", &["run", "-d"][..]),
            ("run", &["run"][..]),
        ] {
            let c = rt.guard("tty");
            let mut args: Vec<&str> = extra.to_vec();
            args.extend(["--bundle", &bundle, c.id()]);
            let out = without_terminal(&rt, &args);
            eprintln!("{how}: {who}: exit {} {}", out.code, out.stderr.trim());
            assert_ne!(out.code, 137, "{how}: {who}: hung: {out:?}");
            assert_ne!(out.code, 0, "{how}: {who}: {out:?}");
            if who == "ours" {
                let lines: Vec<&str> = out.stderr.lines().collect();
                assert_eq!(lines.len(), 1, "{how}: {out:?}");
                assert!(lines[0].contains("process.terminal"), "{how}: {out:?}");
                assert!(
                    !lines[0].contains("youki") && !lines[0].contains("runc"),
                    "{out:?}"
                );
                assert!(!rt.root().join(c.id()).exists(), "{how}: state left");
                assert!(
                    !rt.root().join(format!(".{}.lock", c.id())).exists(),
                    "{how}: lock left"
                );
                assert!(cgroup_dirs_named(c.id()).is_empty(), "{how}: cgroup left");
                assert!(
                    !out.stdout.contains("hi"),
                    "{how}: the container ran: {out:?}"
                );
            }
        }
    }
    // Negative control: in a terminal the same bundle runs and its output comes through.
    let rt = Runtime::new();
    let c = rt.guard("ttyok");
    let out = spec_tests::host::in_terminal(
        &[
            &rt.bin().to_string_lossy(),
            "--root",
            &rt.root().to_string_lossy(),
            "run",
            "--bundle",
            &bundle,
            c.id(),
        ],
        &[],
    );
    assert_eq!(out.code, 0, "{out:?}");
    assert!(out.stdout.contains("hi"), "{out:?}");
}
