//! Where the binaries under test live. `hack/test.sh` exports the paths; running
//! `cargo test` by hand falls back to the workspace's debug build.

use std::path::PathBuf;

fn workspace_bin(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("debug")
        .join(name)
}

/// The runtime under test: `$RUNTIME_BIN` (so the same tests can drive runc), else our build.
pub fn runtime() -> PathBuf {
    std::env::var_os("RUNTIME_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_bin("runtime"))
}

/// The imgtool under test: `$IMGTOOL_BIN`, else our build.
pub fn imgtool() -> PathBuf {
    std::env::var_os("IMGTOOL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_bin("imgtool"))
}

/// Whether the imgtool under test has the debug-only test switches (`_IMGTOOL_TEST_UNSAFE`,
/// imgtool/src/test_switches.rs): a debug build answers the `probe` switch; a release
/// build does not.
pub fn imgtool_has_test_switches() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| answers_probe(&imgtool(), "_IMGTOOL_TEST_UNSAFE"))
}

/// Whether the runtime under test has the debug-only test switches (`_RUNTIME_TEST_UNSAFE`,
/// runtime/src/container/test_switches.rs) that negative controls use: a debug build of
/// ours answers the `probe` switch; a release build, or another runtime, does not.
pub fn runtime_has_test_switches() -> bool {
    static ANSWER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ANSWER.get_or_init(|| answers_probe(&runtime(), "_RUNTIME_TEST_UNSAFE"))
}

/// Whether `bin --version`, run with `switch_var=probe`, says its test switches are
/// compiled in (both binaries answer the probe the same way).
fn answers_probe(bin: &std::path::Path, switch_var: &str) -> bool {
    std::process::Command::new(bin)
        .arg("--version")
        .env(switch_var, "probe")
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stderr).contains("TEST-ONLY: test switches compiled in")
        })
}
