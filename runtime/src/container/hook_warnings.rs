//! The hooks whose failure the runtime spec makes a warning (poststart, poststop): each
//! failure is reported on one stderr line and the lifecycle goes on (libcontainer runs the
//! rest of the list and hands the failures back).

use libcontainer::hooks::HookFailure;

/// Reports one warning record per failed hook of `kind`, shaped as runc's (logging.rs).
pub fn report(kind: &str, failures: &[HookFailure]) {
    for failure in failures {
        crate::logging::warn(&format!("{kind} {failure}"));
    }
}
