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
