//! `restore` through CRIU with runc's flags. Debian's criu 3.17 cannot restore on this
//! machine's kernel ("vdso: Unexpected rt vDSO area bounds", kerndat fails), so what is
//! tested here is what a user sees either way: every flag parses (runc and Go spellings),
//! bad input gets one line and leaves nothing, a real CRIU failure is reported on one line
//! with CRIU's reason and leaves no state directory, cgroup or mount, and a checkpoint →
//! restore round trip runs wherever `criu check` passes (and says why it cannot otherwise).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{cgroup_dirs_named, Outcome, Runtime};

/// The single stderr line of a failed command.
fn one_error_line(out: &Outcome) -> String {
    assert_ne!(out.code, 0, "expected a failure: {out:?}");
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected: {out:?}");
    lines[0].to_string()
}

/// An image directory that passes the runtime's checks (it holds an inventory.img) but
/// that CRIU itself rejects, or fails before reading on this kernel.
fn placeholder_images(dir: &Path) -> PathBuf {
    let images = dir.join("images");
    std::fs::create_dir_all(&images).unwrap();
    std::fs::write(images.join("inventory.img"), b"not a criu image").unwrap();
    images
}

/// Whether criu is installed (a failure under CI when it is not, see `not_run`).
fn criu_installed() -> bool {
    spec_tests::not_run::require_tool("criu", "criu")
}

use spec_tests::host::criu_check;

#[test]
fn help_lists_every_runc_restore_flag() {
    let rt = Runtime::new();
    let out = rt.exec(&["restore", "--help"]).ok();
    for flag in [
        "--image-path",
        "--work-path",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups-mode",
        "--bundle",
        "-b",
        "--detach",
        "-d",
        "--pid-file",
        "--no-subreaper",
        "--no-pivot",
        "--empty-ns",
        "--auto-dedup",
        "--lazy-pages",
        "--lsm-profile",
        "--lsm-mount-context",
        "--console-socket",
    ] {
        assert!(
            out.stdout.contains(flag),
            "{flag} missing from: {}",
            out.stdout
        );
    }
}

#[test]
fn every_flag_parses_in_runc_and_go_spellings() {
    let rt = Runtime::new();
    let b = Bundle::busybox();
    let bundle = b.path().to_string_lossy().to_string();
    let scratch = tempfile::tempdir().unwrap();
    let work = scratch.path().join("work");
    let pid_file = scratch.path().join("pid");
    let missing = scratch.path().join("no-images");
    let id = spec_tests::container::unique_id("rflags");
    // containerd's spelling: single-dash long flags, `-flag=value` and `-flag value`.
    let go_style = [
        "restore".to_string(),
        "-no-subreaper".into(),
        "-d".into(),
        "-bundle".into(),
        bundle.clone(),
        format!("-image-path={}", missing.display()),
        format!("-work-path={}", work.display()),
        "-tcp-established".into(),
        "-ext-unix-sk".into(),
        "-shell-job".into(),
        "-file-locks".into(),
        "-manage-cgroups-mode".into(),
        "full".into(),
        format!("-pid-file={}", pid_file.display()),
        "-no-pivot".into(),
        "-empty-ns".into(),
        "network".into(),
        "-auto-dedup".into(),
        "-lazy-pages".into(),
        "-lsm-profile=apparmor:restored".into(),
        "-lsm-mount-context".into(),
        "system_u:object_r:container_file_t:s0".into(),
        id.clone(),
    ];
    // runc's spelling: double dashes, `--flag=value`, short -b.
    let runc_style = [
        "restore".to_string(),
        "--no-subreaper".into(),
        "--detach".into(),
        "-b".into(),
        bundle.clone(),
        "--image-path".into(),
        missing.to_string_lossy().to_string(),
        "--work-path".into(),
        work.to_string_lossy().to_string(),
        "--tcp-established".into(),
        "--ext-unix-sk".into(),
        "--shell-job".into(),
        "--file-locks".into(),
        "--manage-cgroups-mode=strict".into(),
        "--pid-file".into(),
        pid_file.to_string_lossy().to_string(),
        "--no-pivot".into(),
        "--empty-ns=network".into(),
        "--auto-dedup".into(),
        "--lazy-pages".into(),
        "--lsm-profile".into(),
        "selinux:container_t".into(),
        "--lsm-mount-context=ctx".into(),
        id.clone(),
    ];
    for args in [&go_style[..], &runc_style[..]] {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = rt.exec(&args);
        // Parsing got through every flag: the first check after parsing is the images.
        let line = one_error_line(&out);
        assert!(
            line.contains("image path") && line.contains("does not exist"),
            "{args:?}: {out:?}"
        );
        assert!(
            !work.exists(),
            "the work path was created by a refused restore"
        );
        assert!(!pid_file.exists());
        rt.nothing_left_of(&id)
            .assert_nothing_left("runtime_restore");
    }

    let out = rt.exec(&[
        "restore",
        "--manage-cgroups-mode=sideways",
        "-b",
        &bundle,
        &id,
    ]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("sideways"), "{out:?}");
    let out = rt.exec(&["restore", "--no-such-flag", &id]);
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("--no-such-flag"), "{out:?}");
    rt.nothing_left_of(&id)
        .assert_nothing_left("runtime_restore");
}

#[test]
fn bad_input_gets_one_line_and_leaves_nothing() {
    let rt = Runtime::new();
    let b = Bundle::busybox();
    let bundle = b.path().to_string_lossy().to_string();
    let images = placeholder_images(b.path());
    let images = images.to_string_lossy().to_string();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_string_lossy().to_string();
    let a_file = b.path().join("config.json").to_string_lossy().to_string();

    let mut malformed = Bundle::busybox();
    std::fs::write(malformed.path().join("config.json"), "{ \"ociVersion\": ").unwrap();
    let malformed_path = malformed.path().to_string_lossy().to_string();
    let mut tty = Bundle::busybox();
    tty.set("/process/terminal", json!(true));
    let tty_path = tty.path().to_string_lossy().to_string();
    let mut netns = Bundle::busybox();
    let mut namespaces = netns.config["linux"]["namespaces"].clone();
    for ns in namespaces.as_array_mut().unwrap() {
        if ns["type"] == "network" {
            ns["path"] = json!("/nonexistent/netns");
        }
    }
    netns.set("/linux/namespaces", namespaces);
    let netns_path = netns.path().to_string_lossy().to_string();
    let _ = &mut malformed;

    let id = spec_tests::container::unique_id("rbad");
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["-b", "/nonexistent/bundle", "--image-path", &images],
            vec!["/nonexistent/bundle"],
        ),
        (
            vec!["-b", &malformed_path, "--image-path", &images],
            vec!["config.json"],
        ),
        (
            vec!["-b", &bundle, "--image-path", "/nonexistent/images"],
            vec!["/nonexistent/images", "does not exist"],
        ),
        // runc's default when the path is left empty: ./checkpoint (none here).
        (
            vec!["-b", &bundle, "--image-path="],
            vec!["image path checkpoint (the default) does not exist"],
        ),
        (vec!["-b", &bundle], vec!["checkpoint (the default)"]),
        (
            vec!["-b", &bundle, "--image-path", &empty],
            vec![&empty, "inventory.img"],
        ),
        (
            vec!["-b", &bundle, "--image-path", &a_file],
            vec!["not a directory"],
        ),
        (
            vec!["-b", &bundle, "--image-path", &images, "--empty-ns", "pid"],
            vec!["--empty-ns", "pid"],
        ),
        (
            vec![
                "-b",
                &bundle,
                "--image-path",
                &images,
                "--lsm-profile",
                "nocolon",
            ],
            vec!["--lsm-profile", "TYPE:NAME"],
        ),
        (
            vec!["-b", &netns_path, "--image-path", &images],
            vec!["/nonexistent/netns", "does not exist"],
        ),
        (
            vec!["-b", &tty_path, "--image-path", &images, "-d"],
            vec!["--console-socket"],
        ),
    ];
    for (flags, needles) in cases {
        let mut args = vec!["restore"];
        args.extend(&flags);
        args.push(&id);
        let out = rt.exec(&args);
        let line = one_error_line(&out);
        assert_eq!(out.code, 1, "{out:?}");
        for n in needles {
            assert!(
                line.contains(n),
                "{flags:?}: {line:?} does not mention {n:?}"
            );
        }
        rt.nothing_left_of(&id)
            .assert_nothing_left("runtime_restore");
    }

    let out = rt.exec(&[
        "restore",
        "-b",
        &bundle,
        "--image-path",
        &images,
        "../escape",
    ]);
    assert!(
        one_error_line(&out).contains("invalid container id"),
        "{out:?}"
    );
    assert!(!rt.root().join("../escape").exists());
}

#[test]
fn a_duplicate_id_is_refused_and_the_existing_container_is_untouched() {
    if !criu_installed() {
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("rdup");
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let images = placeholder_images(b.path());
    let out = rt.exec(&[
        "restore",
        "-d",
        "-b",
        &b.path().to_string_lossy(),
        "--image-path",
        &images.to_string_lossy(),
        c.id(),
    ]);
    let line = one_error_line(&out);
    assert!(
        line.contains(c.id()) && line.contains("already exists"),
        "{out:?}"
    );
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    assert!(
        !cgroup_dirs_named(c.id()).is_empty(),
        "the running container's cgroup went"
    );
}

#[test]
fn a_criu_failure_is_one_line_with_criu_s_reason_and_leaves_nothing() {
    if !criu_installed() {
        return;
    }
    let rt = Runtime::new();
    let id = spec_tests::container::unique_id("rcriu");
    let plain = Bundle::busybox();
    let mut tty = Bundle::busybox();
    tty.set("/process/terminal", json!(true));
    // A cgroup of the config's choosing must go too.
    let own_cgroup = format!("{id}-cg");
    let mut custom = Bundle::busybox();
    custom.set("/linux/cgroupsPath", json!(format!("/{own_cgroup}")));
    let scratch = tempfile::tempdir().unwrap();
    let pid_file = scratch.path().join("restored.pid");
    let pid_file_s = pid_file.to_string_lossy().to_string();
    let work = scratch.path().join("work");
    let work_s = work.to_string_lossy().to_string();
    let socket_s = scratch
        .path()
        .join("console.sock")
        .to_string_lossy()
        .to_string();
    let images = placeholder_images(scratch.path());
    let images_s = images.to_string_lossy().to_string();

    let attempts: Vec<(&Bundle, Vec<&str>, PathBuf)> = vec![
        // containerd's foreground call.
        (&plain, vec!["-no-subreaper"], images.join("restore.log")),
        (
            &plain,
            vec!["-d", "--pid-file", &pid_file_s],
            images.join("restore.log"),
        ),
        (
            &plain,
            vec!["--work-path", &work_s],
            work.join("restore.log"),
        ),
        // A terminal relayed by the runtime itself (its socket must go), or handed out.
        (&tty, vec![], images.join("restore.log")),
        (
            &tty,
            vec!["-d", "--console-socket", &socket_s],
            images.join("restore.log"),
        ),
        (&custom, vec!["-d"], images.join("restore.log")),
    ];
    for (bundle, flags, log) in attempts {
        let bundle_s = bundle.path().to_string_lossy().to_string();
        let mut args = vec!["restore", "-b", &bundle_s, "--image-path", &images_s];
        args.extend(&flags);
        args.push(&id);
        let out = rt.exec(&args);
        let line = one_error_line(&out);
        assert_eq!(out.code, 1, "{out:?}");
        assert!(
            line.contains(&format!("cannot restore container {id}")),
            "{out:?}"
        );
        // CRIU's own reason from its log, and where the log is.
        assert!(line.contains("(criu: Error"), "no CRIU reason: {out:?}");
        assert!(line.contains(&*log.to_string_lossy()), "{out:?}");
        if let Err(reason) = criu_check() {
            // Where CRIU cannot start at all, the reason is the one `criu check` gives.
            let cause = reason.split("; ").next().unwrap_or(&reason).to_string();
            assert!(
                line.contains(&cause) || line.contains("vDSO") || line.contains("kerndat"),
                "{line:?} vs criu check's {reason:?}"
            );
        }
        assert!(log.exists(), "no CRIU log at {}", log.display());
        assert!(!pid_file.exists(), "a pid file for a failed restore");
        rt.nothing_left_of(&id)
            .assert_nothing_left("runtime_restore");
        assert!(
            cgroup_dirs_named(&own_cgroup).is_empty(),
            "{own_cgroup} left behind"
        );
        assert!(rt.state(&id).is_none());
        // Not even the id's lock or the runtime's own console socket stays.
        let leftovers: Vec<_> = std::fs::read_dir(rt.root())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .filter(|n| n.contains(&id))
            .collect();
        assert!(leftovers.is_empty(), "{flags:?} left {leftovers:?}");
        // The rootfs is the bundle's again: nothing is mounted over it or beside it.
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains(&*bundle.path().to_string_lossy()));
    }
}

#[test]
fn checkpoint_then_restore_round_trip() {
    if !criu_installed() {
        return;
    }
    if let Err(reason) = criu_check() {
        spec_tests::not_run::not_run(&format!("`criu check` fails on this kernel: {reason}"));
        return;
    }
    let rt = Runtime::new();
    let c = rt.guard("rtrip");
    let mut b = Bundle::busybox();
    let marks = b.marks();
    // A counter in memory, written out: a restored process continues from its value, a
    // restarted one would begin again at 1.
    b.sh("i=0; while true; do i=$((i+1)); echo $i > /marks/count; sleep 0.1; done");
    let read_count = || -> u64 {
        std::fs::read_to_string(marks.join("count"))
            .unwrap_or_default()
            .trim()
            .parse()
            .unwrap_or(0)
    };
    let bundle = b.path().to_string_lossy().to_string();
    let status = rt
        .command()
        .args(["run", "-d", "--bundle", &bundle, c.id()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    spec_tests::wait::until_true(
        "the counter to reach 10",
        spec_tests::wait::DEADLINE,
        || read_count() >= 10,
    );
    let images = b.path().join("images");
    rt.exec(&[
        "checkpoint",
        "--image-path",
        &images.to_string_lossy(),
        c.id(),
    ])
    .ok();
    assert!(
        rt.state(c.id()).is_none(),
        "checkpoint without --leave-running removes it"
    );
    let at_checkpoint = read_count();
    assert!(
        at_checkpoint >= 10,
        "the counter barely ran: {at_checkpoint}"
    );

    let pid_file = b.path().join("restored.pid");
    let status = rt
        .command()
        .args([
            "restore",
            "-d",
            "-b",
            &bundle,
            "--image-path",
            &images.to_string_lossy(),
            "--pid-file",
            &pid_file.to_string_lossy(),
            c.id(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status()
        .unwrap();
    assert!(status.success(), "restore failed");
    let state = rt.wait_status(c.id(), "running", Duration::from_secs(10));
    let pid: i64 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(state["pid"], pid);
    // The restored process counts on from where it was: the next values follow it (a
    // restarted one would write 1, 2, ...).
    let after = spec_tests::wait::until(
        "the restored counter to move on",
        spec_tests::wait::DEADLINE,
        || Some(read_count()).filter(|n| *n != at_checkpoint),
    );
    assert!(
        after > at_checkpoint,
        "the restored counter did not continue from {at_checkpoint}: {after}"
    );
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", Duration::from_secs(10));
    rt.exec(&["delete", c.id()]).ok();
    assert!(cgroup_dirs_named(c.id()).is_empty());
}
