//! Control groups provide a way of controlling groups of processes.
//! Examples: controlling resource limits, execution priority, measuring resource usage,
//! freezing, checkpointing and restarting groups of processes.
#[cfg(test)]
#[macro_use]
extern crate quickcheck;

#[cfg(test)]
#[allow(unused_imports)]
#[macro_use]
extern crate mockall;

mod test;

pub mod common;
// PATCH (runtime): waiting for a cgroup's processes to exit with pidfds.
pub mod exit_wait;
// PATCH (runtime): the device cgroup rules as runc computes them (v1 and v2).
#[cfg(any(feature = "cgroupsv2_devices", feature = "v1"))]
pub mod device_rules;
pub mod proc_self;
pub mod stats;
#[cfg(feature = "systemd")]
pub mod systemd;
#[cfg(not(feature = "systemd"))]
#[path = "stub/systemd/mod.rs"]
pub mod systemd;
pub mod test_manager;
#[cfg(feature = "v1")]
pub mod v1;
#[cfg(not(feature = "v1"))]
#[path = "stub/v1/mod.rs"]
pub mod v1;
#[cfg(feature = "v2")]
pub mod v2;
#[cfg(not(feature = "v2"))]
#[path = "stub/v2/mod.rs"]
pub mod v2;

/// PATCH (runtime, see third_party/README.md): the cgroup managers this build has, for a
/// caller that reports them (`features`): the stubs that stand in for a manager left out of
/// the build fail at run time, so only the build knows.
pub mod build {
    /// The cgroup v1 manager.
    pub const V1: bool = cfg!(feature = "v1");
    /// The cgroup v2 (cgroupfs) manager.
    pub const V2: bool = cfg!(feature = "v2");
    /// The systemd manager, system and user instance.
    pub const SYSTEMD: bool = cfg!(feature = "systemd");
    /// Device rules on cgroup v2 (an eBPF program).
    pub const V2_DEVICES: bool = cfg!(feature = "cgroupsv2_devices");
}
