//! Container escapes, one regression test per CVE, each with a negative control: the same
//! detector is run against the vulnerable behaviour (our runtime with the protection
//! switched off by the debug-only `_RUNTIME_TEST_UNSAFE`, or the old runtimes' unsafe
//! step done by the test itself) and must fire there. docs/SECURITY.md lists them.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::{capture, Outcome, Runtime};

/// procfs's statfs magic.
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// `run -d` with extra environment for the runtime.
fn run_detached(rt: &Runtime, b: &Bundle, id: &str, env: &[(&str, &str)]) -> Outcome {
    let mut cmd = rt.command();
    cmd.args(["run", "-d", "--bundle", &b.path().to_string_lossy(), id]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    capture(cmd)
}

/// The container's init pid from `state`.
fn init_pid(rt: &Runtime, id: &str) -> i32 {
    rt.wait_status(id, "running", Duration::from_secs(10))["pid"]
        .as_i64()
        .expect("pid") as i32
}

/// A negative control needs the debug build's `_RUNTIME_TEST_UNSAFE`. Returns false when
/// the runtime under test has no switches (recorded as not run, `not_run`); a runtime that
/// has them but did not turn this one off fails the test.
fn unsafe_switch_took_effect(out: &Outcome) -> bool {
    if !spec_tests::not_run::negative_control_has_test_switches() {
        return false;
    }
    assert!(
        out.stderr.contains("TEST-ONLY"),
        "the runtime has test switches but this one did not take effect: {out:?}"
    );
    true
}

/// A host directory outside every rootfs, with a marker file, removed on drop.
fn host_dir(marker: &str) -> tempfile::TempDir {
    let d = tempfile::Builder::new()
        .prefix("escape-host-")
        .tempdir()
        .unwrap();
    std::fs::write(d.path().join(marker), "host").unwrap();
    d
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------
// CVE-2019-5736: overwriting the host runtime binary through /proc/self/exe.

/// Runs the runtime from a private copy so that a vulnerable runtime damages only the copy.
fn private_runtime_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("runtime-under-test");
    std::fs::copy(spec_tests::bins::runtime(), &copy).unwrap();
    (dir, copy)
}

/// The detector: takes a handle on the container init's exe while the init is still the
/// runtime (as the attack does from inside), lets every runtime process exit, then tries to
/// reopen that handle for writing. Returns whether the reopen succeeded (= vulnerable).
fn runtime_binary_writable_through_init_exe(env: &[(&str, &str)]) -> bool {
    let (_dir, bin) = private_runtime_copy();
    let rt = Runtime::with_bin(bin.clone());
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let c = rt.guard("cve5736");
    let mut cmd = rt.command();
    cmd.args(["create", "--bundle", &b.path().to_string_lossy(), c.id()]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    capture(cmd).ok();
    let pid = rt.state(c.id()).unwrap()["pid"].as_i64().unwrap();
    let exe = std::fs::File::open(format!("/proc/{pid}/exe")).expect("open the init's exe");
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", Duration::from_secs(10));
    // "running" is reported once start has released the init, which may still be the
    // runtime for a moment: wait until it has exec'd the container's program (while any
    // process runs the binary, opening it for writing fails with ETXTBSY either way).
    spec_tests::wait::until_true(
        "the init to exec the container's program",
        spec_tests::wait::DEADLINE,
        || std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c.starts_with(b"sleep\0")),
    );
    let reopen = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/self/fd/{}", exe.as_raw_fd()));
    match reopen {
        Ok(_) => true,
        Err(e) => {
            assert!(
                matches!(
                    e.raw_os_error(),
                    Some(libc::EROFS)
                        | Some(libc::ETXTBSY)
                        | Some(libc::EACCES)
                        | Some(libc::EPERM)
                ),
                "unexpected error {e}"
            );
            false
        }
    }
}

#[test]
fn cve_2019_5736_runtime_binary_not_writable_through_proc_self_exe() {
    assert!(
        !runtime_binary_writable_through_init_exe(&[]),
        "the runtime binary could be opened for writing through the container init's exe"
    );
    // Negative control: without the read-only re-exec (the documented bypass used by the
    // re-executed runtime itself) the same detector fires.
    assert!(
        runtime_binary_writable_through_init_exe(&[("_RUNTIME_EXE_PROTECTED", "1")]),
        "negative control: an unprotected runtime binary should be writable through the init's exe"
    );
}

// ---------------------------------------------------------------------------------------
// CVE-2024-21626: a host fd leaked into the container / a working directory outside the
// rootfs through /proc/self/fd/N.

/// The detector: what of the host a container process holds: its cwd outside its root,
/// or any descriptor beyond stdio. Empty when it holds nothing.
fn host_handles(pid: i32) -> Vec<String> {
    let mut found = Vec::new();
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap();
    if !cwd.starts_with(&root) {
        found.push(format!(
            "cwd {} is outside the root {}",
            cwd.display(),
            root.display()
        ));
    }
    for e in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let n: i32 = e.file_name().to_string_lossy().parse().unwrap();
        if n > 2 {
            let target = std::fs::read_link(e.path()).unwrap_or_default();
            found.push(format!("fd {n} -> {}", target.display()));
        }
    }
    found
}

/// `run -d` with `process.cwd` = /proc/self/fd/N and host directory fds at 3..6: asserts
/// the container is refused on one line with nothing left, or holds nothing of the host.
fn cwd_attempt(rt: &Runtime, host: &tempfile::TempDir, n: i32, env: &[(&str, &str)]) -> Outcome {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"])
        .set("/process/cwd", json!(format!("/proc/self/fd/{n}")));
    let c = rt.guard(&format!("cve21626cwd{n}{}", env.len()));
    let mut cmd = rt.command();
    cmd.args(["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()]);
    cmd.envs(env.iter().copied());
    with_inherited_dir_fds(&mut cmd, host.path());
    let out = capture(cmd);
    eprintln!(
        "cwd /proc/self/fd/{n} {env:?}: exit {} {}",
        out.code,
        out.stderr.trim()
    );
    if out.code != 0 {
        let lines = out
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.contains("TEST-ONLY"))
            .count();
        assert_eq!(lines, 1, "one error line: {out:?}");
        rt.nothing_left_of(c.id())
            .assert_nothing_left("runtime_escapes");
        return out;
    }
    let pid = init_pid(rt, c.id());
    let held = host_handles(pid);
    assert!(
        held.is_empty(),
        "cwd /proc/self/fd/{n}: the container holds {held:?}"
    );
    out
}

/// Opens `dir` as descriptors 3..=6 of the runtime (not close-on-exec), as the
/// descriptors a caller or a runtime's own setup may hold.
fn with_inherited_dir_fds(cmd: &mut std::process::Command, dir: &Path) {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: open returns a new fd we own.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(fd >= 0);
    // Moved above 6 first: were it one of 3..6 itself, dup2 onto itself would leave it
    // close-on-exec, and that fd would not reach the runtime (the negative control then
    // saw nothing whenever the test process had fd 3 free).
    // SAFETY: F_DUPFD_CLOEXEC returns a new fd; the original is closed right after.
    let high = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 100) };
    // SAFETY: fd was opened above and is not used again.
    unsafe { libc::close(fd) };
    assert!(high >= 0);
    // SAFETY: just made, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(high) };
    let raw = fd.as_raw_fd();
    // SAFETY: only async-signal-safe calls (dup2) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            for target in 3..=6 {
                if libc::dup2(raw, target) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // The fd must stay open until the command has been spawned.
    std::mem::forget(fd);
}

#[test]
fn cve_2024_21626_no_host_fd_or_cwd_reaches_the_container() {
    let host = host_dir("HOST-MARKER");
    let rt = Runtime::new();

    // 1. Descriptors the runtime inherited do not reach the container process.
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let c = rt.guard("cve21626fd");
    let mut cmd = rt.command();
    cmd.args(["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()]);
    with_inherited_dir_fds(&mut cmd, host.path());
    capture(cmd).ok();
    let pid = init_pid(&rt, c.id());
    let held = host_handles(pid);
    assert!(
        held.is_empty(),
        "the container holds host handles: {held:?}"
    );
    drop(c);

    // 2. A working directory of /proc/self/fd/N never lands outside the rootfs: for
    //    every N the runtime could hold, create refuses on one line naming process.cwd
    //    (our check: nothing under /proc).
    for n in 3..=12 {
        let out = cwd_attempt(&rt, &host, n, &[]);
        assert!(out.stderr.contains("process.cwd"), "fd {n}: {out:?}");
    }
    // With our check off, the second layer (libcontainer verifies the cwd after chdir, as
    // runc >= 1.1.12 does) still refuses or keeps the cwd inside: the fds of the caller
    // (3..6) and one of libcontainer's own (a directory on the host) were reachable.
    let switch = [("_RUNTIME_TEST_UNSAFE", "proc-cwd-check")];
    for n in 3..=12 {
        let out = cwd_attempt(&rt, &host, n, &switch);
        if n == 3 && !unsafe_switch_took_effect(&out) {
            break;
        }
    }

    // Negative control (descriptors): a runtime that leaks an fd into the container is
    // what --preserve-fds does on purpose; the detector sees it.
    let b = Bundle::busybox();
    let mut b = b;
    b.args(&["sleep", "30"]);
    let c = rt.guard("cve21626leak");
    let mut cmd = rt.command();
    cmd.args([
        "run",
        "-d",
        "--preserve-fds",
        "1",
        "--bundle",
        &b.path().to_string_lossy(),
        c.id(),
    ]);
    with_inherited_dir_fds(&mut cmd, host.path());
    capture(cmd).ok();
    let pid = init_pid(&rt, c.id());
    let held = host_handles(pid);
    assert!(
        held.iter()
            .any(|h| h.contains(&*host.path().to_string_lossy())),
        "negative control: a leaked host directory fd should be detected: {held:?}"
    );

    // Negative control (cwd): runc < 1.1.12 chdir'ed into a leaked fd; a process whose
    // root is the rootfs but whose cwd stayed on the host (chroot without chdir) is that
    // state, and the detector sees it.
    let rootfs = b.rootfs();
    let rootfs_c = std::ffi::CString::new(rootfs.as_os_str().as_encoded_bytes()).unwrap();
    let mut escaped = std::process::Command::new("/bin/sleep");
    escaped.arg("30").current_dir(host.path());
    // SAFETY: only chroot (async-signal-safe) between fork and exec.
    unsafe {
        escaped.pre_exec(move || {
            if libc::chroot(rootfs_c.as_ptr()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = escaped.arg0("sleep").spawn().expect("spawn chrooted sleep");
    let held = host_handles(child.id() as i32);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        held.iter().any(|h| h.starts_with("cwd")),
        "negative control: a cwd outside the root should be detected: {held:?}"
    );
}

// ---------------------------------------------------------------------------------------
// /proc over-mounts: CVE-2019-16884 (a fake procfs mounted on /proc), CVE-2019-19921 (the
// same through a mount destination that is a symlink to /proc), CVE-2023-27561 (/proc in
// the image is itself a symlink).

/// A fake procfs: a directory with a marker and the paths runc's default config masks.
fn fake_proc() -> tempfile::TempDir {
    let d = host_dir("FAKE-PROC-MARKER");
    for sub in ["self/attr", "sys", "bus", "fs", "irq"] {
        std::fs::create_dir_all(d.path().join(sub)).unwrap();
    }
    std::fs::write(d.path().join("self/attr/current"), "unconfined").unwrap();
    std::fs::write(d.path().join("sysrq-trigger"), "").unwrap();
    d
}

/// The detector: what the container process sees at /proc, if it is not the real procfs.
fn fake_proc_seen(pid: i32) -> Option<String> {
    fake_proc_seen_at(Path::new(&format!("/proc/{pid}/root")))
}

/// The same for a root directory seen from the host.
fn fake_proc_seen_at(root: &Path) -> Option<String> {
    let proc = root.join("proc");
    if proc.join("FAKE-PROC-MARKER").exists() {
        return Some("the container's /proc is the fake procfs".into());
    }
    let st = nix::sys::statfs::statfs(&proc).expect("statfs the container's /proc");
    let magic = st.filesystem_type().0 as i64;
    if magic != PROC_SUPER_MAGIC {
        return Some(format!(
            "the container's /proc is not procfs (magic {magic:#x})"
        ));
    }
    None
}

/// Runs an over-mount attack bundle; returns the refusal, or what the detector saw.
fn proc_attack(b: &Bundle, name: &str, env: &[(&str, &str)]) -> (Outcome, Option<String>) {
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = run_detached(&rt, b, c.id(), env);
    if out.code != 0 {
        rt.nothing_left_of(c.id())
            .assert_nothing_left("runtime_escapes");
        return (out, None);
    }
    let pid = init_pid(&rt, c.id());
    (out, fake_proc_seen(pid))
}

fn proc_attack_bundle(fake: &Path, dest: &str) -> Bundle {
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]).push(
        "/mounts",
        json!({"destination": dest, "type": "bind", "source": fake, "options": ["rbind"]}),
    );
    b
}

/// Asserts the refusal is one line naming the mount and /proc.
fn assert_refused_naming_proc(out: &Outcome) {
    assert_ne!(
        out.code, 0,
        "the over-mount of /proc was not refused: {out:?}"
    );
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one error line: {out:?}");
    assert!(
        lines[0].contains("mounts[") && lines[0].contains("/proc"),
        "{out:?}"
    );
}

/// The attack bundle `b` is refused with an error naming /proc and the container never
/// sees the fake procfs. Two layers: with our path check before libcontainer switched off
/// (`proc-mount-check`), libcontainer's check on the mount's descriptors (third_party
/// patch 0101) still refuses; the negative control (both off: libcontainer 0.7 alone,
/// which checks /proc only for mounts of type proc/sysfs) shows the fake procfs is what
/// the container would see.
fn assert_fake_proc_refused_unless_unchecked(b: &Bundle, id: &str) {
    let (out, seen) = proc_attack(b, id, &[]);
    assert!(seen.is_none(), "{seen:?}");
    assert_refused_naming_proc(&out);
    let (out, seen) = proc_attack(
        b,
        &format!("{id}lib"),
        &[("_RUNTIME_TEST_UNSAFE", "proc-mount-check")],
    );
    if unsafe_switch_took_effect(&out) {
        assert!(seen.is_none(), "{seen:?}");
        assert_ne!(out.code, 0, "{out:?}");
        assert!(out.stderr.contains("only procfs may be"), "{out:?}");
        let (out, seen) = proc_attack(
            b,
            &format!("{id}neg"),
            &[("_RUNTIME_TEST_UNSAFE", "proc-mount-check,proc-handle-check")],
        );
        assert!(
            seen.is_some(),
            "negative control: the fake /proc went unnoticed: {out:?}"
        );
    }
}

#[test]
fn cve_2019_16884_fake_procfs_over_proc_is_refused() {
    let fake = fake_proc();
    let b = proc_attack_bundle(fake.path(), "/proc");
    assert_fake_proc_refused_unless_unchecked(&b, "cve16884");
}

#[test]
fn cve_2019_19921_mount_through_a_symlink_to_proc_is_refused() {
    let fake = fake_proc();
    let b = proc_attack_bundle(fake.path(), "/data/vol");
    std::fs::create_dir_all(b.rootfs().join("data")).unwrap();
    std::os::unix::fs::symlink("../proc", b.rootfs().join("data/vol")).unwrap();
    assert_fake_proc_refused_unless_unchecked(&b, "cve19921");
}

#[test]
fn cve_2023_27561_proc_as_a_symlink_in_the_rootfs_is_refused() {
    // The image's /proc is a symlink to a directory the attacker controls (here in the
    // rootfs, holding a fake procfs); a bind mount onto that directory makes it fake.
    let fake = fake_proc();
    let b = proc_attack_bundle(fake.path(), "/fakeproc");
    std::fs::remove_dir(b.rootfs().join("proc")).unwrap();
    std::fs::create_dir(b.rootfs().join("fakeproc")).unwrap();
    std::os::unix::fs::symlink("fakeproc", b.rootfs().join("proc")).unwrap();
    let (out, seen) = proc_attack(&b, "cve27561", &[]);
    assert!(seen.is_none(), "{seen:?}");
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("/proc") && out.stderr.contains("symlink"),
        "the error names /proc and the symlink: {out:?}"
    );

    // With our check off, libcontainer's own check (procfs only on an ordinary
    // directory) still refuses: two layers.
    let (out, seen) = proc_attack(
        &b,
        "cve27561lib",
        &[("_RUNTIME_TEST_UNSAFE", "proc-mount-check")],
    );
    assert!(seen.is_none() && out.code != 0, "{out:?} {seen:?}");

    // Negative control: runc 1.0.0-rc95..1.1.4 mounted procfs where the symlink pointed
    // and the bind mount then covered it, so the container's /proc led to the fake. That
    // root, built by hand (its /proc a symlink to the fake), is what the detector reports.
    let scratch = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(fake.path(), scratch.path().join("proc")).unwrap();
    assert!(
        fake_proc_seen_at(scratch.path()).is_some(),
        "negative control: a /proc symlink to a fake procfs should be detected"
    );
}

/// A `proc`-typed mount with a `bind`/`rbind` option is a bind mount (runc ignores the type
/// then): judged as one, a directory over /proc is refused; with our check off,
/// libcontainer's check on the mount's descriptors still refuses (two layers); with both
/// off the fake is what the container sees (the negative control).
#[test]
fn proc_typed_bind_of_a_directory_over_proc_is_refused() {
    let fake = fake_proc();
    for options in [json!(["bind"]), json!(["rbind"]), json!(["bind", "ro"])] {
        let mut b = Bundle::busybox();
        b.args(&["sleep", "30"]).push(
            "/mounts",
            json!({"destination": "/proc", "type": "proc", "source": fake.path(), "options": options}),
        );
        let (out, seen) = proc_attack(&b, "procbind", &[]);
        assert!(seen.is_none(), "{options}: {seen:?}");
        assert_refused_naming_proc(&out);
        assert!(out.stderr.contains("only procfs"), "{options}: {out:?}");
        // runc refuses it too ("... cannot be mounted because it is not of type proc").
        let runc = Runtime::with_bin(spec_tests::host::runc());
        let c = runc.guard("procbindrunc");
        let r = runc.create(b.path(), c.id());
        assert_ne!(r.code, 0, "runc: {r:?}");
        assert!(r.stderr.contains("not of type proc"), "runc: {r:?}");
        drop(c);
        let (out, seen) = proc_attack(
            &b,
            "procbindlib",
            &[("_RUNTIME_TEST_UNSAFE", "proc-mount-check")],
        );
        if unsafe_switch_took_effect(&out) {
            assert!(seen.is_none(), "{options}: {seen:?}");
            assert_ne!(out.code, 0, "{options}: {out:?}");
            assert!(
                out.stderr.contains("only procfs may be"),
                "{options}: {out:?}"
            );
            let (out, seen) = proc_attack(
                &b,
                "procbindneg",
                &[("_RUNTIME_TEST_UNSAFE", "proc-mount-check,proc-handle-check")],
            );
            assert!(
                seen.is_some(),
                "negative control: with both checks off the fake /proc should be seen: {out:?}"
            );
        }
    }
}

/// How often the /proc swap race was won (the container saw a fake /proc), out of how
/// many runs, and how many runs were refused.
struct RaceTally {
    runs: usize,
    refused: usize,
    /// Of the refused runs, those refused at mount time (in the container's init) rather
    /// than by the path check before anything is created.
    refused_at_mount: usize,
    hits: usize,
}

/// CVE-2019-19921's race: `rootfs/data/vol` (a mount destination: a bind of a fake
/// procfs) is exchanged with a symlink to `../proc` over and over while `runs` containers
/// are run; each reports whether its /proc is the real procfs. Stops early after
/// `stop_after` hits.
fn proc_swap_race(rt: &Runtime, env: &[(&str, &str)], runs: usize, stop_after: usize) -> RaceTally {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let fake = fake_proc();
    let mut b = Bundle::busybox();
    std::fs::create_dir_all(b.rootfs().join("data/vol")).unwrap();
    std::os::unix::fs::symlink("../proc", b.rootfs().join("data/vol_link")).unwrap();
    b.sh("if [ -e /proc/FAKE-PROC-MARKER ]; then echo FAKE; else echo \"magic $(stat -f -c %t /proc)\"; fi")
        .push(
            "/mounts",
            json!({"destination": "/data/vol", "type": "bind", "source": fake.path(), "options": ["rbind"]}),
        );
    let stop = Arc::new(AtomicBool::new(false));
    let cstr = |p: PathBuf| std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let (a, l) = (
        cstr(b.rootfs().join("data/vol")),
        cstr(b.rootfs().join("data/vol_link")),
    );
    let swapper = swap_until_stopped(a, l, stop.clone());
    let mut tally = RaceTally {
        runs: 0,
        refused: 0,
        refused_at_mount: 0,
        hits: 0,
    };
    for _ in 0..runs {
        let c = rt.guard("procrace");
        let mut cmd = rt.command();
        cmd.args(["run", "--bundle", &b.path().to_string_lossy(), c.id()]);
        cmd.envs(env.iter().copied());
        let out = capture(cmd);
        tally.runs += 1;
        if out.code != 0 {
            tally.refused += 1;
            if out.stderr.contains("prepare rootfs") || out.stderr.contains("error mounting") {
                tally.refused_at_mount += 1;
            }
        } else if out.stdout.contains("FAKE") || !out.stdout.contains("magic 9fa0") {
            tally.hits += 1;
            eprintln!("hit: the container saw {:?}", out.stdout.trim());
            if tally.hits >= stop_after {
                break;
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    tally
}

#[test]
fn cve_2019_19921_race_swapping_a_mount_destination_for_a_symlink_to_proc_never_wins() {
    const RUNS: usize = 300;
    let rt = Runtime::new();
    let ours = proc_swap_race(&rt, &[], RUNS, 1);
    eprintln!(
        "proc swap race, ours: {} runs, {} refused ({} at mount time), {} saw a fake /proc",
        ours.runs, ours.refused, ours.refused_at_mount, ours.hits
    );
    assert_eq!(ours.hits, 0, "a run saw a fake /proc");
    assert_eq!(ours.runs, RUNS);
    // The race did happen: some runs met the symlink and were refused.
    assert!(
        ours.refused > 0,
        "the swap never met a run: no race was tried"
    );

    // runc through the same loop, for comparison.
    let runc = Runtime::with_bin(spec_tests::host::runc());
    let theirs = proc_swap_race(&runc, &[], RUNS, RUNS);
    eprintln!(
        "proc swap race, runc: {} runs, {} refused ({} at mount time), {} saw a fake /proc",
        theirs.runs, theirs.refused, theirs.refused_at_mount, theirs.hits
    );

    // Negative control: with the check on the mount's descriptors off (only the path
    // check before libcontainer is left), the same loop sees the fake /proc.
    let probe = {
        let b = proc_attack_bundle(fake_proc().path(), "/proc");
        let both = [("_RUNTIME_TEST_UNSAFE", "proc-mount-check,proc-handle-check")];
        proc_attack(&b, "procraceprobe", &both).0
    };
    if unsafe_switch_took_effect(&probe) {
        assert!(
            probe.stderr.contains("protection proc-handle-check is off"),
            "{probe:?}"
        );
        let neg = proc_swap_race(
            &rt,
            &[("_RUNTIME_TEST_UNSAFE", "proc-handle-check")],
            RUNS,
            3,
        );
        eprintln!(
            "proc swap race, negative control (proc-handle-check off): {} runs, {} refused ({} at mount time), {} saw a fake /proc",
            neg.runs, neg.refused, neg.refused_at_mount, neg.hits
        );
        assert!(
            neg.hits > 0,
            "negative control: without the descriptor check the race should be won at least once in {RUNS} runs"
        );
    }
}

// ---------------------------------------------------------------------------------------
// CVE-2021-30465: mount destinations swapped for symlinks that lead out of the rootfs.

/// A rootfs symlink pointing at a host directory, used as a mount destination.
fn symlink_escape_bundle(host: &Path) -> Bundle {
    let mut b = Bundle::busybox();
    std::os::unix::fs::symlink(host, b.rootfs().join("mnt/abs")).unwrap();
    let depth = "../".repeat(20);
    let rel = format!("{depth}{}", host.to_string_lossy().trim_start_matches('/'));
    std::os::unix::fs::symlink(rel, b.rootfs().join("mnt/rel")).unwrap();
    b.args(&["sleep", "30"])
        .push(
            "/mounts",
            json!({"destination": "/mnt/abs/sub", "type": "tmpfs", "source": "tmpfs"}),
        )
        .push(
            "/mounts",
            json!({"destination": "/mnt/rel/sub2", "type": "tmpfs", "source": "tmpfs"}),
        )
        .set("/process/cwd", json!("/mnt/abs/cwd"));
    b
}

/// The detector for the symlink escapes: anything the container's setup created in the
/// host directory the symlinks point at, and container mounts outside the rootfs.
fn host_dir_touched(host: &Path, before: &[String]) -> Option<String> {
    let now = listing(host);
    (now != before).then(|| format!("{} changed: {before:?} -> {now:?}", host.display()))
}

#[test]
fn cve_2021_30465_symlinked_mount_destinations_stay_in_the_rootfs() {
    let host = host_dir("HOST-MARKER");
    let before = listing(host.path());
    let rt = Runtime::new();
    // Links whose targets do not exist inside the rootfs: refused (libcontainer and
    // libpathrs do not create through dangling links) or contained; the host is untouched.
    let b = symlink_escape_bundle(host.path());
    let c = rt.guard("cve30465dangling");
    let out = run_detached(&rt, &b, c.id(), &[]);
    assert_eq!(host_dir_touched(host.path(), &before), None, "{out:?}");
    if out.code != 0 {
        assert_eq!(
            out.stderr.trim().lines().count(),
            1,
            "one error line: {out:?}"
        );
        rt.nothing_left_of(c.id())
            .assert_nothing_left("runtime_escapes");
    }
    drop(c);
    // Links whose targets exist inside the rootfs too: the mounts land there.
    let b = symlink_escape_bundle(host.path());
    std::fs::create_dir_all(b.rootfs().join(host.path().strip_prefix("/").unwrap())).unwrap();
    let c = rt.guard("cve30465");
    let out = run_detached(&rt, &b, c.id(), &[]);
    assert_eq!(out.code, 0, "{out:?}");
    let pid = init_pid(&rt, c.id());
    assert_eq!(host_dir_touched(host.path(), &before), None);
    // The mounts are where the links point *inside* the rootfs.
    let inside = host.path().strip_prefix("/").unwrap();
    let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    for sub in ["sub", "sub2"] {
        let want = format!(" /{}/{sub} ", inside.display());
        assert!(mountinfo.contains(&want), "no tmpfs at {want}: {mountinfo}");
    }
    drop(c);

    // The race itself: while containers are created, another process keeps exchanging a
    // directory and a symlink to the host directory at a mount destination and the cwd.
    let b = {
        let mut b = Bundle::busybox();
        std::fs::create_dir(b.rootfs().join("mnt/swap")).unwrap();
        std::os::unix::fs::symlink(host.path(), b.rootfs().join("mnt/swaplink")).unwrap();
        std::fs::create_dir_all(b.rootfs().join(host.path().strip_prefix("/").unwrap())).unwrap();
        b.args(&["true"])
            .push(
                "/mounts",
                json!({"destination": "/mnt/swap/m", "type": "tmpfs", "source": "tmpfs"}),
            )
            .set("/process/cwd", json!("/mnt/swap/cwd"));
        b
    };
    let hits = race_symlink_exchange(&rt, &b, "cve30465race", 10, &[]);
    assert_eq!(
        host_dir_touched(host.path(), &before),
        None,
        "{hits} runs raced"
    );
    // The cwd is made before anything else; 400 creates that stop right after it (the
    // state root is a file) give the race many more chances.
    let bin_only = |env: &[(&str, &str)]| {
        let file_root = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = std::process::Command::new(rt.bin());
        cmd.arg("--root").arg(file_root.path());
        cmd.args(["create", "--bundle", &b.path().to_string_lossy(), "racer"]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        race_while(&b, 400, move || {
            let _ = cmd.status();
        })
    };
    bin_only(&[]);
    assert_eq!(host_dir_touched(host.path(), &before), None);
    // Negative control: the old resolve-then-create_dir_all way of making the cwd (debug
    // switch) loses this race, and the detector sees the directory made on the host.
    let switch = [("_RUNTIME_TEST_UNSAFE", "cwd-resolution")];
    let probe = {
        let file_root = tempfile::NamedTempFile::new().unwrap();
        let mut cmd = std::process::Command::new(rt.bin());
        cmd.arg("--root").arg(file_root.path());
        cmd.args(["create", "--bundle", &b.path().to_string_lossy(), "probe"]);
        cmd.envs(switch);
        capture(cmd)
    };
    if unsafe_switch_took_effect(&probe) {
        bin_only(&switch);
        assert!(
            host_dir_touched(host.path(), &before).is_some(),
            "negative control: the racy cwd creation should have escaped at least once in 400 tries"
        );
    }
    let _ = std::fs::remove_dir_all(host.path().join("cwd"));

    // Negative control: runc < 1.0.0-rc95 resolved the destination once and then used the
    // path; doing that here (join without confinement, then mkdir -p) follows the link to
    // the host, and the detector sees it.
    let naive = b.rootfs().join("mnt/swaplink/sub");
    std::fs::create_dir_all(&naive).unwrap();
    assert!(
        host_dir_touched(host.path(), &before).is_some(),
        "negative control: a mkdir through the symlink should be detected"
    );
    std::fs::remove_dir(host.path().join("sub")).unwrap();
}

/// Runs `run` of `b` `runs` times while `mnt/swap` and `mnt/swaplink` are exchanged.
/// Returns how many runs succeeded.
fn race_symlink_exchange(
    rt: &Runtime,
    b: &Bundle,
    name: &str,
    runs: usize,
    env: &[(&str, &str)],
) -> usize {
    let mut ok = 0;
    let mut i = 0;
    race_while(b, runs, || {
        let c = rt.guard(&format!("{name}{i}"));
        i += 1;
        let mut cmd = rt.command();
        cmd.args(["run", "--bundle", &b.path().to_string_lossy(), c.id()]);
        for (k, v) in env {
            cmd.env(k, v);
        }
        if capture(cmd).code == 0 {
            ok += 1;
        }
    });
    ok
}

/// Calls `attempt` `runs` times while a thread exchanges `mnt/swap` (a directory) and
/// `mnt/swaplink` (a symlink to the host) in `b`'s rootfs with renameat2(RENAME_EXCHANGE);
/// the directory is put back afterwards.
fn race_while(b: &Bundle, runs: usize, mut attempt: impl FnMut()) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let stop = Arc::new(AtomicBool::new(false));
    let a =
        std::ffi::CString::new(b.rootfs().join("mnt/swap").as_os_str().as_encoded_bytes()).unwrap();
    let l = std::ffi::CString::new(
        b.rootfs()
            .join("mnt/swaplink")
            .as_os_str()
            .as_encoded_bytes(),
    )
    .unwrap();
    let swapper = swap_until_stopped(a, l, stop.clone());
    for _ in 0..runs {
        attempt();
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// A bind mount whose source is a symlink.

#[test]
fn bind_mount_source_symlink_is_resolved_on_the_host_and_stays_in_the_rootfs() {
    let host = host_dir("HOST-MARKER");
    std::fs::write(host.path().join("file"), "host file\n").unwrap();
    let links = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(host.path(), links.path().join("dirlink")).unwrap();
    std::os::unix::fs::symlink(host.path().join("file"), links.path().join("filelink")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", links.path().join("dangling")).unwrap();
    let before = listing(host.path());

    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    // The destinations are themselves symlinks in the image pointing at the host
    // directory: the source is followed on the host (it is the bundle author's), the
    // destination never is.
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("mnt/dest")).unwrap();
    std::fs::create_dir_all(b.rootfs().join(host.path().strip_prefix("/").unwrap())).unwrap();
    b.sh("cat /mnt/dest/d/HOST-MARKER; cat /etc/hostfile; ls -l /etc/hostfile")
        .push(
            "/mounts",
            json!({"destination": "/mnt/dest/d", "type": "bind", "source": links.path().join("dirlink"), "options": ["rbind", "ro"]}),
        )
        .push(
            "/mounts",
            json!({"destination": "/etc/hostfile", "type": "bind", "source": links.path().join("filelink"), "options": ["bind", "ro"]}),
        );
    let c = rt.guard("bindsrclink");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 0, "{out:?}");
    // What the links point at, as regular content: the directory's marker and the file.
    assert!(out.stdout.starts_with("hosthost file\n"), "{out:?}");
    assert!(
        out.stdout.contains("-rw"),
        "/etc/hostfile is a file, not a link: {out:?}"
    );
    assert_eq!(host_dir_touched(host.path(), &before), None);
    drop(c);

    // A dangling source is one clear error naming it; nothing is left.
    let mut b = Bundle::busybox();
    b.push(
        "/mounts",
        json!({"destination": "/mnt/x", "type": "bind", "source": links.path().join("dangling"), "options": ["bind"]}),
    );
    let c = rt.guard("bindsrcdangling");
    let out = rt.create(b.path(), c.id());
    assert_ne!(out.code, 0, "{out:?}");
    assert!(
        out.stderr.contains("dangling") || out.stderr.contains("/nonexistent/target"),
        "{out:?}"
    );
    rt.nothing_left_of(c.id())
        .assert_nothing_left("runtime_escapes");

    // Negative control: a runtime that created the destination by joining it to the rootfs
    // path on the host (following /mnt/dest) would make `d` in the host directory.
    std::fs::create_dir_all(b.rootfs().join("mnt")).unwrap();
    std::os::unix::fs::symlink(host.path(), b.rootfs().join("mnt/dest")).unwrap();
    std::fs::create_dir_all(b.rootfs().join("mnt/dest/d")).unwrap();
    assert!(host_dir_touched(host.path(), &before).is_some());
    std::fs::remove_dir(host.path().join("d")).unwrap();
}

/// Swaps paths `a` and `l` with renameat2(RENAME_EXCHANGE) as fast as it can until `stop`,
/// then puts them back as they were: the other side of a mount-source race.
fn swap_until_stopped(
    a: std::ffi::CString,
    l: std::ffi::CString,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
) -> std::thread::JoinHandle<()> {
    let exchange = move || {
        // SAFETY: renameat2 with two NUL-terminated paths.
        unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                l.as_ptr(),
                libc::RENAME_EXCHANGE,
            ) == 0
        }
    };
    std::thread::spawn(move || {
        let mut swapped = false;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if exchange() {
                swapped = !swapped;
            }
        }
        if swapped {
            exchange();
        }
    })
}
