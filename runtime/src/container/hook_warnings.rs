//! The hooks whose failure the runtime spec makes a warning (poststart, poststop): each
//! failure is reported on one stderr line and the lifecycle goes on (libcontainer runs the
//! rest of the list and hands the failures back).

use libcontainer::hooks::HookFailure;

/// Prints one warning line per failed hook of `kind`.
pub fn report(kind: &str, failures: &[HookFailure]) {
    for failure in failures {
        eprintln!("runtime: warning: {kind} {failure}");
    }
}
