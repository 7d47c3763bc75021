//! Provides a thin wrapper around fork syscall,
//! with enums and functions specific to youki implemented

pub mod args;
// PATCH (runtime, see third_party/README.md): bind sources opened before the userns.
mod bind_sources;
pub mod channel;
// PATCH (runtime, see third_party/README.md)
pub mod clone_lock;
pub mod container_intermediate_process;
pub mod container_main_process;
pub mod cpu_affinity;
mod fork;
pub mod init;
pub mod intel_rdt;
pub mod memory_policy;
mod message;
#[cfg(feature = "libseccomp")]
mod seccomp_listener;
