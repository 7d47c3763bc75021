//! Test-only controls, as the runtime's (`runtime/src/container/test_switches.rs`).
//!
//! `_IMGTOOL_TEST_UNSAFE=<check>[,<check>...]` (debug builds only) turns off one of our
//! protections so a test can show that its detector fires on the unprotected behaviour
//! (a negative control); a debug build then says so on stderr. Release builds ignore it.
//! The checks: `stored-blob-check` (a pull reuses a stored blob without checking it,
//! [`crate::store::verified`]); `layer-completion` (a layer unpacked on its own is taken
//! as it is, not completed against the layers below, `crate::store::layer_build`).
//! `_IMGTOOL_TEST_UNSAFE=probe` makes a debug build say that it has the switches (`imgtool: TEST-ONLY: test switches compiled in`), so a test can
//! tell a release binary, whose negative controls cannot run, from a switch that failed.

/// Whether a test asked to turn the named protection off (debug builds only).
pub fn unsafe_enabled(check: &str) -> bool {
    let on = asked(check);
    if on {
        eprintln!("imgtool: TEST-ONLY: protection {check} is off");
    }
    on
}

/// Answers `_IMGTOOL_TEST_UNSAFE=probe` (debug builds only): one line on stderr saying
/// the switches are compiled in. Called first thing in `main`.
pub fn answer_probe() {
    if asked("probe") {
        eprintln!("imgtool: TEST-ONLY: test switches compiled in");
    }
}

fn asked(check: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var("_IMGTOOL_TEST_UNSAFE").is_ok_and(|v| v.split(',').any(|c| c == check))
}
