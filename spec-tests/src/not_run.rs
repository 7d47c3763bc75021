//! Tests that cannot run here say so and are counted: a test never passes by skipping.
//!
//! Two cases, and this module is the only way a test may take either:
//!
//! - **A tool or a setup the test needs is missing** (containerd, dockerd, podman, criu):
//!   [`require_tool`]. Under `CI=true` that is a failure (the test panics: CI installs
//!   everything with hack/install-deps.sh, so a missing tool there is a broken setup);
//!   elsewhere the test is recorded as not run and returns.
//! - **This host cannot run it** (criu 3.17 cannot dump on this kernel; a release build
//!   of the runtime has no `_RUNTIME_TEST_UNSAFE` switches for a negative control):
//!   [`not_run`] or [`part_not_run`], also under CI.
//!
//! Either way the test's name and the reason are appended to one file (see [`record_file`]),
//! one line each, and `hack/test.sh` prints them after `cargo test` as a summary: how
//! many tests (or parts of tests) were not run and why, so none is counted as passed.

use std::io::Write;
use std::path::PathBuf;

/// The environment variable naming the record file (`hack/test.sh` sets it).
pub const RECORD_ENV: &str = "SPEC_TESTS_NOT_RUN";

/// Whether this is a CI run (`CI=true`, as CI services set it, or `CI=1`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Where the records go: `$SPEC_TESTS_NOT_RUN`, else `target/spec-tests-not-run.txt` of
/// this workspace.
pub fn record_file() -> PathBuf {
    std::env::var_os(RECORD_ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("spec-tests-not-run.txt")
        })
}

/// The running test as `file::name` (libtest names each test's thread after the test; the
/// test binary is named after its file, plus a hash).
pub fn current_test() -> String {
    let name = std::thread::current()
        .name()
        .unwrap_or("unknown-test")
        .to_string();
    let file = std::env::current_exe()
        .ok()
        .and_then(|p| p.file_stem().map(|s| s.to_string_lossy().into_owned()))
        .map(|stem| match stem.rsplit_once('-') {
            Some((base, hash)) if hash.chars().all(|c| c.is_ascii_hexdigit()) => base.into(),
            _ => stem,
        })
        .unwrap_or_default();
    if file.is_empty() {
        name
    } else {
        format!("{file}::{name}")
    }
}

/// Records that the running test did not run, and why. The caller then returns.
pub fn not_run(reason: &str) {
    record(&current_test(), reason);
}

/// Records that a part of the running test (`what`, e.g. "negative control") did not run,
/// and why; the rest of the test ran and its assertions hold.
pub fn part_not_run(what: &str, reason: &str) {
    record(&format!("{} ({what})", current_test()), reason);
}

/// True when `tool` runs (`tool --version`). When it does not: under CI a failure (this
/// panics), otherwise the test is recorded as not run and false is returned.
/// `package` names what hack/install-deps.sh installs for it.
pub fn require_tool(tool: &str, package: &str) -> bool {
    let found = std::process::Command::new(tool)
        .arg("--version")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return true;
    }
    let why = format!("{tool} is not installed (hack/install-deps.sh installs {package})");
    assert!(
        !in_ci(),
        "{why}: under CI=true every tool the tests use must be there"
    );
    not_run(&why);
    false
}

/// Appends one record (`test<TAB>reason`) and says it on stderr. A record is one short
/// `write` on an O_APPEND file, so parallel tests and test binaries do not interleave.
fn record(test: &str, reason: &str) {
    let reason = reason.replace(['\n', '\t'], " ");
    eprintln!("NOT RUN: {test}: {reason}");
    let path = record_file();
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let line = format!("{test}\t{reason}\n");
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(line.as_bytes()));
    // A test that cannot say it did not run must not pass quietly either.
    if let Err(e) = written {
        panic!("cannot record a test not run in {}: {e}", path.display());
    }
}

/// For a negative control that needs `_IMGTOOL_TEST_UNSAFE`: true when the imgtool under
/// test has the switches; otherwise the control is recorded as not run (a release build)
/// and false returned.
pub fn imgtool_negative_control_has_test_switches() -> bool {
    if crate::bins::imgtool_has_test_switches() {
        return true;
    }
    part_not_run(
        "negative control",
        &format!(
            "needs the debug-only _IMGTOOL_TEST_UNSAFE switches; {} has none (a release build)",
            crate::bins::imgtool().display()
        ),
    );
    false
}

/// For a negative control that needs `_RUNTIME_TEST_UNSAFE`: true when the runtime under
/// test has the switches; otherwise the control is recorded as not run (a release build or
/// another runtime: the switches are compiled into debug builds only) and false returned.
pub fn negative_control_has_test_switches() -> bool {
    if crate::bins::runtime_has_test_switches() {
        return true;
    }
    part_not_run(
        "negative control",
        &format!(
            "needs the debug-only _RUNTIME_TEST_UNSAFE switches; {} has none (a release build \
             or another runtime)",
            crate::bins::runtime().display()
        ),
    );
    false
}
