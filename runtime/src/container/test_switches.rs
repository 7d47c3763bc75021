//! Test-only controls, read from the environment.
//!
//! - `_RUNTIME_TEST_STOP_AT=<phase>`: the runtime stops itself (SIGSTOP) when it reaches
//!   the named phase (`create:claimed`, `start:loaded`, ... see the calls of `phase`), so a
//!   test can `kill -9` it at a known point and check that `delete --force` cleans up. A
//!   stopped runtime changes nothing by itself, so this is compiled into every build.
//! - `_RUNTIME_TEST_TRACE_PHASES=1`: prints `runtime: phase <name>` to stderr at every
//!   phase, so a test can find the phases of each command instead of hard-coding them.
//! - `_RUNTIME_TEST_UNSAFE=<check>[,<check>...]` (debug builds only): turns off one of our
//!   protections so a test can show that its detector fires on the vulnerable behaviour
//!   (a negative control). Release builds ignore it; debug builds print a warning when a
//!   check is off. The forked libcontainer reads the same variable for
//!   `proc-handle-check` (third_party patch 0101, `rootfs/proc_guard.rs`).
//!   check is off. `_RUNTIME_TEST_UNSAFE=probe` makes a debug build say that it has the
//!   switches (`runtime: TEST-ONLY: test switches compiled in`), so a test can tell a
//!   release binary, whose negative controls cannot run, from a switch that failed.

/// Marks a phase of a command; stops the runtime there if a test asked for it.
pub fn phase(name: &str) {
    if std::env::var_os("_RUNTIME_TEST_TRACE_PHASES").is_some() {
        eprintln!("runtime: phase {name}");
    }
    if std::env::var("_RUNTIME_TEST_STOP_AT").is_ok_and(|v| v == name) {
        eprintln!("runtime: test stop at {name}");
        // SAFETY: raise only sends a signal to the calling thread.
        unsafe { libc::raise(libc::SIGSTOP) };
    }
}

/// Whether a test asked to turn the named protection off (debug builds only).
pub fn unsafe_enabled(check: &str) -> bool {
    #[cfg(debug_assertions)]
    {
        let on =
            std::env::var("_RUNTIME_TEST_UNSAFE").is_ok_and(|v| v.split(',').any(|c| c == check));
        if on {
            eprintln!("runtime: TEST-ONLY: protection {check} is off");
        }
        on
    }
    #[cfg(not(debug_assertions))]
    {
        let _ = check;
        false
    }
}

/// Answers `_RUNTIME_TEST_UNSAFE=probe` (debug builds only): one line on stderr saying
/// the switches are compiled in. Called first thing in `main`.
pub fn answer_probe() {
    if unsafe_enabled_quietly("probe") {
        eprintln!("runtime: TEST-ONLY: test switches compiled in");
    }
}

/// `unsafe_enabled` without the warning line.
fn unsafe_enabled_quietly(check: &str) -> bool {
    cfg!(debug_assertions)
        && std::env::var("_RUNTIME_TEST_UNSAFE").is_ok_and(|v| v.split(',').any(|c| c == check))
}
