//! The command line as runc's callers use it: --version, spec, features, list formats,
//! Go-style single-dash long flags, --flag=value, and JSON logging.

use serde_json::Value;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

#[test]
fn version_names_the_runtime_spec() {
    let out = Runtime::new().exec(&["--version"]).ok();
    let mut lines = out.stdout.lines();
    assert!(lines.next().unwrap().contains(" version "), "{out:?}");
    assert!(
        out.stdout.lines().any(|l| l.starts_with("spec: 1.")),
        "{out:?}"
    );
}

#[test]
fn spec_writes_a_config_that_runs() {
    let rt = Runtime::new();
    let b = Bundle::busybox();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    rt.exec(&["spec", "--bundle", &b.path().to_string_lossy()])
        .ok();
    let mut config: Value =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["process"]["args"][0], "sh");
    assert_eq!(config["root"]["path"], "rootfs");
    // It refuses to overwrite.
    assert_ne!(
        rt.exec(&["spec", "--bundle", &b.path().to_string_lossy()])
            .code,
        0
    );
    config["process"]["terminal"] = Value::Bool(false);
    config["process"]["args"] = serde_json::json!(["echo", "from-spec"]);
    std::fs::write(b.path().join("config.json"), config.to_string()).unwrap();
    let c = rt.guard("fromspec");
    assert_eq!(rt.run(b.path(), c.id()).ok().stdout, "from-spec\n");
}

#[test]
fn spec_rootless_maps_the_caller() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    rt.exec(&[
        "spec",
        "--rootless",
        "--bundle",
        &dir.path().to_string_lossy(),
    ])
    .ok();
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    let ns: Vec<&str> = config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert!(ns.contains(&"user"), "{config}");
    assert_eq!(config["linux"]["uidMappings"][0]["hostID"], 0);
    assert_eq!(config["linux"]["uidMappings"][0]["size"], 1);
}

/// The seccomp filter flags the runtime spec names, with their kernel values and the
/// least libseccomp version that can set each (what `supportedFlags` must account for).
const SECCOMP_FLAGS: &[(&str, u64, (u32, u32, u32))] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", 1, (2, 2, 0)),
    ("SECCOMP_FILTER_FLAG_LOG", 2, (2, 4, 0)),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", 4, (2, 5, 0)),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", 32, (2, 6, 0)),
];

/// Whether this kernel accepts a seccomp filter flag (EFAULT for a NULL filter, not EINVAL).
fn kernel_accepts(flag: u64) -> bool {
    // SAFETY: a NULL filter installs nothing; the call only reports whether the flag is known.
    let rc = unsafe { libc::syscall(libc::SYS_seccomp, 1u64, flag, std::ptr::null::<u8>()) };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// The version of the libseccomp a binary loads, from the file name the dynamic linker
/// resolves libseccomp.so.2 to (libseccomp.so.2.5.4).
fn loaded_libseccomp(bin: &std::path::Path) -> (u32, u32, u32) {
    let ldd = std::process::Command::new("ldd").arg(bin).output().unwrap();
    let text = String::from_utf8_lossy(&ldd.stdout);
    let path = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("libseccomp.so.2 => "))
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("{} does not load libseccomp: {text}", bin.display()));
    let real = std::fs::canonicalize(path).unwrap();
    let name = real.file_name().unwrap().to_string_lossy().to_string();
    let v: Vec<u32> = name
        .trim_start_matches("libseccomp.so.")
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    (v[0], v[1], v[2])
}

/// `features` run with a seccomp filter that makes the kernel refuse filter flag `refused`
/// (seccomp(SECCOMP_SET_MODE_FILTER, refused, ...) fails with EINVAL), as a kernel without
/// that flag would: what a runtime that probes the host must then leave out.
fn features_where_the_kernel_refuses(rt: &Runtime, refused: u64) -> Value {
    use std::os::unix::process::CommandExt;
    // struct seccomp_data: nr at 0, arch at 4, args[i] at 16 + 8i (low half first).
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const RET_K: u16 = 0x06;
    let f = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let prog = [
        f(LD_W_ABS, 0, 0, 4),
        f(JEQ_K, 0, 6, 0xc000_003e), // AUDIT_ARCH_X86_64, else allow
        f(LD_W_ABS, 0, 0, 0),
        f(JEQ_K, 0, 4, libc::SYS_seccomp as u32),
        f(LD_W_ABS, 0, 0, 16),
        f(JEQ_K, 0, 2, 1), // SECCOMP_SET_MODE_FILTER
        f(LD_W_ABS, 0, 0, 24),
        f(JEQ_K, 1, 0, refused as u32),
        f(RET_K, 0, 0, 0x7fff_0000), // SECCOMP_RET_ALLOW
        f(RET_K, 0, 0, 0x0005_0000 | libc::EINVAL as u32), // SECCOMP_RET_ERRNO
    ];
    let mut cmd = rt.command();
    cmd.arg("features");
    // SAFETY: between fork and exec only async-signal-safe prctl calls, on memory (the
    // program) that the parent keeps alive until spawn returns.
    unsafe {
        cmd.pre_exec(move || {
            let fprog = libc::sock_fprog {
                len: prog.len() as u16,
                filter: prog.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0
                || libc::prctl(libc::PR_SET_SECCOMP, 2, &fprog as *const _ as usize, 0, 0) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = spec_tests::container::capture(cmd).ok();
    serde_json::from_str(&out.stdout).unwrap()
}

fn supported_flags(v: &Value) -> Vec<String> {
    v["linux"]["seccomp"]["supportedFlags"]
        .as_array()
        .unwrap_or_else(|| panic!("no supportedFlags: {v}"))
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect()
}

/// The JSON pointers of every null in `v`.
fn null_fields(v: &Value) -> Vec<String> {
    match v {
        Value::Null => vec![String::new()],
        Value::Object(m) => m
            .iter()
            .flat_map(|(k, x)| null_fields(x).into_iter().map(move |p| format!("/{k}{p}")))
            .collect(),
        Value::Array(a) => a
            .iter()
            .enumerate()
            .flat_map(|(i, x)| null_fields(x).into_iter().map(move |p| format!("/{i}{p}")))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn features_describe_the_build_and_the_host() {
    let rt = Runtime::new();
    let out = rt.exec(&["features"]).ok();
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(v["ociVersionMin"].as_str().unwrap().starts_with("1."));
    assert!(v["ociVersionMax"].as_str().unwrap().starts_with("1."));
    let hooks: Vec<&str> = v["hooks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h.as_str().unwrap())
        .collect();
    for h in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
        "poststart",
        "poststop",
    ] {
        assert!(hooks.contains(&h), "{h} missing");
    }
    // No field is null (runc leaves out what it does not report; the schema has no null).
    // Control: the finder sees a null at depth.
    assert_eq!(
        null_fields(&serde_json::json!({"linux": {"netDevices": null}})),
        ["/linux/netDevices"]
    );
    assert_eq!(null_fields(&v), Vec::<String>::new(), "{v}");
    assert!(v["linux"]["namespaces"].as_array().unwrap().len() >= 7);
    assert_eq!(v["linux"]["seccomp"]["enabled"], true);
    assert!(v["linux"]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "CAP_SYS_ADMIN"));
    for manager in ["v1", "v2", "systemd", "systemdUser"] {
        assert_eq!(v["linux"]["cgroup"][manager], true, "{manager}: {v}");
    }

    // What the host decides. The libseccomp the binary loads:
    let library = loaded_libseccomp(rt.bin());
    assert_eq!(
        v["annotations"]["io.github.seccomp.libseccomp.version"],
        format!("{}.{}.{}", library.0, library.1, library.2),
        "{v}"
    );
    // The filter flags this kernel and that library both accept:
    let known: Vec<&str> = v["linux"]["seccomp"]["knownFlags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    let expected: Vec<String> = SECCOMP_FLAGS
        .iter()
        .filter(|(name, bit, least)| {
            known.contains(name) && library >= *least && kernel_accepts(*bit)
        })
        .map(|(name, _, _)| name.to_string())
        .collect();
    assert_eq!(supported_flags(&v), expected, "{v}");
    assert!(
        expected.iter().any(|f| f == "SECCOMP_FILTER_FLAG_LOG"),
        "this kernel accepts SECCOMP_FILTER_FLAG_LOG (Linux 4.14)"
    );
    // ...probed, not stated: where the kernel refuses a flag, the runtime leaves it out
    // (a constant list would still claim it) and keeps the others.
    let refusing = features_where_the_kernel_refuses(&rt, 2);
    let without_log: Vec<String> = expected
        .iter()
        .filter(|f| *f != "SECCOMP_FILTER_FLAG_LOG")
        .cloned()
        .collect();
    assert_eq!(supported_flags(&refusing), without_log, "{refusing}");
}

#[test]
fn list_formats() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "30"]);
    let c = rt.guard("listme");
    rt.create(b.path(), c.id()).ok();
    let table = rt.exec(&["list"]).ok().stdout;
    let header = table.lines().next().unwrap();
    for col in ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"] {
        assert!(header.contains(col), "{table}");
    }
    assert!(
        table
            .lines()
            .any(|l| l.starts_with(c.id()) && l.contains("created")),
        "{table}"
    );
    assert_eq!(
        rt.exec(&["list", "-q"]).ok().stdout,
        format!("{}\n", c.id())
    );
    let json: Value =
        serde_json::from_str(&rt.exec(&["list", "--format", "json"]).ok().stdout).unwrap();
    assert_eq!(json[0]["id"], c.id());
    assert_eq!(json[0]["status"], "created");
    let json: Value = serde_json::from_str(&rt.exec(&["list", "-f", "json"]).ok().stdout).unwrap();
    assert_eq!(json.as_array().unwrap().len(), 1);
}

#[test]
fn go_style_single_dash_long_flags_and_equals() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["echo", "go-style"]);
    let c = rt.guard("goflags");
    let bundle = format!("-bundle={}", b.path().display());
    let out = rt.exec(&["run", "-no-subreaper", &bundle, c.id()]).ok();
    assert_eq!(out.stdout, "go-style\n");
    let c2 = rt.guard("eqflags");
    let bundle = format!("--bundle={}", b.path().display());
    assert_eq!(
        rt.exec(&["run", &bundle, c2.id()]).ok().stdout,
        "go-style\n"
    );
}

#[test]
fn json_log_records_the_error() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let out = rt
        .command()
        .args([
            "--log",
            &log.to_string_lossy(),
            "--log-format",
            "json",
            "state",
            "st-missing",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = std::fs::read_to_string(&log).unwrap();
    let last: Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["level"], "error");
    assert!(
        last["msg"].as_str().unwrap().contains("st-missing"),
        "{last}"
    );
    assert!(last["time"].as_str().unwrap().contains('T'), "{last}");
}

/// The runtime under test's program name (`runtime`, or `runc` when RUNTIME_BIN is runc).
fn program(rt: &Runtime) -> String {
    rt.bin().file_name().unwrap().to_string_lossy().into_owned()
}

const COMMANDS: [&str; 17] = [
    "checkpoint",
    "create",
    "delete",
    "events",
    "exec",
    "kill",
    "list",
    "pause",
    "ps",
    "restore",
    "resume",
    "run",
    "spec",
    "start",
    "state",
    "update",
    "features",
];

#[test]
fn help_is_laid_out_as_runcs() {
    // runc's help.bats: line 0 is `NAME:`, line 1 `<program> - ...`, and for a command
    // `<program> <command> - ...`, for -h, --help and `help COMMAND`.
    let rt = Runtime::new();
    let name = program(&rt);
    for flag in ["-h", "--help"] {
        let out = rt.exec(&[flag]).ok();
        let lines: Vec<&str> = out.stdout.lines().collect();
        assert_eq!(lines[0], "NAME:", "{out:?}");
        assert!(lines[1].starts_with(&format!("   {name} - ")), "{out:?}");
    }
    for cmd in COMMANDS {
        for args in [vec![cmd, "-h"], vec![cmd, "--help"], vec!["help", cmd]] {
            let out = rt.exec(&args).ok();
            let lines: Vec<&str> = out.stdout.lines().collect();
            assert_eq!(lines.first(), Some(&"NAME:"), "{args:?}: {out:?}");
            assert!(
                lines[1].starts_with(&format!("   {name} {cmd} - ")),
                "{args:?}: {out:?}"
            );
        }
    }
    // runc prints its help and succeeds when given no command.
    let out = rt.exec(&[]).ok();
    assert!(out.stdout.starts_with("NAME:\n"), "{out:?}");
}

#[test]
fn an_unknown_command_has_no_help_topic() {
    let rt = Runtime::new();
    for args in [vec!["foo", "-h"], vec!["help", "foo"], vec!["foo"]] {
        let out = rt.exec(&args);
        assert_eq!(out.code, 3, "{args:?}: {out:?}");
        assert!(
            out.stderr.contains("No help topic for 'foo'"),
            "{args:?}: {out:?}"
        );
    }
    // The negative control: a known topic is helped, with status 0.
    let out = rt.exec(&["help", "kill"]).ok();
    assert!(!out.stderr.contains("No help topic"), "{out:?}");
}

#[test]
fn usage_errors_exit_1_with_one_error_record() {
    let rt = Runtime::new();
    for args in [
        vec!["kill"],
        vec!["state", "a", "b"],
        vec!["--no-such-flag", "state", "x"],
    ] {
        let out = rt.exec(&args);
        assert_eq!(out.code, 1, "{args:?}: {out:?}");
        let line = out.stderr.lines().last().unwrap_or_default();
        assert!(line.contains("level=error"), "{args:?}: {out:?}");
    }
}

#[test]
fn kill_signal_0_checks_that_the_container_is_alive() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let c = rt.guard("kill0");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    rt.wait_status(c.id(), "running", std::time::Duration::from_secs(10));
    rt.exec(&["kill", c.id(), "0"]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    rt.exec(&["kill", "--all", c.id(), "0"]).ok();
    assert_eq!(rt.state(c.id()).unwrap()["status"], "running");
    // The negative control: once the container is gone, signal 0 says so (kill.bats).
    rt.exec(&["kill", c.id(), "KILL"]).ok();
    rt.wait_status(c.id(), "stopped", std::time::Duration::from_secs(10));
    let out = rt.exec(&["kill", c.id(), "0"]);
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("container not running"), "{out:?}");
    // `--all` on a stopped container is not an error (kill.bats).
    rt.exec(&["kill", "--all", c.id(), "0"]).ok();
}

/// The namespace types a `spec` writes, in order.
fn spec_namespaces(bin: &std::path::Path, rootless: bool) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut args = vec!["spec".to_string()];
    if rootless {
        args.push("--rootless".into());
    }
    let status = std::process::Command::new(bin)
        .args(&args)
        .current_dir(dir.path())
        .status()
        .unwrap();
    assert!(status.success());
    let config: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).unwrap()).unwrap();
    config["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn spec_namespaces_are_runcs() {
    let ours = Runtime::new();
    let runc = spec_tests::host::runc();
    for rootless in [false, true] {
        assert_eq!(
            spec_namespaces(ours.bin(), rootless),
            spec_namespaces(&runc, rootless),
            "rootless {rootless}"
        );
    }
    // A config that adds its own cgroup namespace to what `spec` wrote runs; one that
    // lists a namespace twice is refused, as runc refuses it ("duplicated ns").
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    std::fs::remove_file(b.path().join("config.json")).unwrap();
    rt.exec(&["spec", "--bundle", &b.path().to_string_lossy()])
        .ok();
    b.config =
        serde_json::from_slice(&std::fs::read(b.path().join("config.json")).unwrap()).unwrap();
    b.set("/process/terminal", Value::Bool(false))
        .args(&["echo", "cgroupns"])
        .push("/linux/namespaces", serde_json::json!({"type": "cgroup"}));
    let c = rt.guard("specns");
    assert_eq!(rt.run(b.path(), c.id()).ok().stdout, "cgroupns\n");
    b.push("/linux/namespaces", serde_json::json!({"type": "cgroup"}));
    let c = rt.guard("specnstwice");
    let out = rt.run(b.path(), c.id());
    assert_eq!(out.code, 1, "{out:?}");
}

#[test]
fn events_envelope_keys_are_in_runcs_order() {
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let c = rt.guard("evorder");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let out = rt.exec(&["events", "--stats", c.id()]).ok();
    let prefix = format!("{{\"type\":\"stats\",\"id\":\"{}\",\"data\":{{", c.id());
    assert!(out.stdout.starts_with(&prefix), "{out:?}");
    let event: Value = serde_json::from_str(&out.stdout).unwrap();
    assert!(event["data"]["memory"].is_object(), "{event}");
}

/// Runs `args` with stdout a pipe whose reader is already gone: the first write fails
/// with EPIPE. Returns how the process ended and its stderr.
fn with_closed_stdout(rt: &Runtime, args: &[&str]) -> (std::process::ExitStatus, String) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two descriptors we then own.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both were just returned by pipe2.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    let out = rt
        .command()
        .args(args)
        .stdout(std::process::Stdio::from(write))
        .stderr(std::process::Stdio::piped())
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_reader_that_goes_away_ends_the_runtime_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let rt = Runtime::new();
    let mut b = Bundle::busybox();
    b.args(&["sleep", "600"]);
    let c = rt.guard("sigpipe");
    rt.exec(&["run", "-d", "--bundle", &b.path().to_string_lossy(), c.id()])
        .ok();
    let id = c.id();
    let commands: Vec<Vec<&str>> = vec![
        vec!["state", id],
        vec!["list"],
        vec!["list", "--format", "json"],
        vec!["ps", id],
        vec!["ps", "--format", "json", id],
        vec!["events", "--stats", id],
        vec!["events", "--interval", "100ms", id],
        vec!["features"],
        vec!["--help"],
    ];
    for args in &commands {
        // The negative control: with a reader, the command writes.
        assert!(!first_line(&rt, args).is_empty(), "{args:?} writes nothing");
        // Without one it ends by SIGPIPE, as a Go program (runc) does: no panic.
        let (status, stderr) = with_closed_stdout(&rt, args);
        assert_eq!(
            status.signal(),
            Some(libc::SIGPIPE),
            "{args:?}: {status:?} {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
    println!("commands checked on a closed stdout: {}", commands.len());
}

/// The first line `args` writes to stdout, read through a pipe; the process is then ended.
fn first_line(rt: &Runtime, args: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = rt
        .command()
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let _ = std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line);
    let _ = child.kill();
    let _ = child.wait();
    line
}
