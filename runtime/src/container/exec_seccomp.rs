//! libcontainer 0.7's `exec` builds the joining process's spec without the container's
//! seccomp profile, so exec'd processes ran unconfined (seen with Docker's default
//! profile: `Seccomp: 0` in /proc/self/status under exec, 2 under runc). This executor
//! loads the container's profile in the exec'd process right before it execs the program.
//!
//! It runs after libcontainer has dropped capabilities. Without CAP_SYS_ADMIN the kernel
//! only accepts a filter from a process with no_new_privs, so in that case the exec'd
//! process also gets no_new_privs (runc loads the filter earlier and can leave it unset):
//! a stricter process, never an unconfined one.

use libcontainer::oci_spec::runtime::{LinuxSeccomp, Spec};
use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

#[derive(Clone)]
pub struct SeccompExecutor {
    pub profile: LinuxSeccomp,
}

/// Whether CAP_SYS_ADMIN is in this process's effective set.
fn has_sys_admin() -> bool {
    caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_SYS_ADMIN,
    )
    .unwrap_or(false)
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if !has_sys_admin() {
            // SAFETY: prctl with integer arguments; it only changes this process's flags.
            if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } != 0 {
                return Err(ExecutorError::Other(format!(
                    "cannot set no_new_privs for seccomp: {}",
                    std::io::Error::last_os_error()
                )));
            }
        }
        match libcontainer::seccomp::initialize_seccomp(&self.profile) {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Err(ExecutorError::Other(
                    "seccomp notify (SCMP_ACT_NOTIFY) is not supported for exec".into(),
                ))
            }
            Err(e) => {
                return Err(ExecutorError::Other(format!(
                    "cannot load the container's seccomp profile: {e}"
                )))
            }
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        super::path_lookup::validate_program(spec)
    }
}
