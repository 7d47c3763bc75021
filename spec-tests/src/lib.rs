//! Shared harness for the integration tests in `tests/`: locating the built binaries,
//! making busybox bundles, driving the runtime with guards that clean up on drop.
//!
//! The conventions every test follows (`tests/harness_conventions.rs` checks the first
//! two on the sources):
//! - a test that cannot run says so through [`not_run`]: a missing tool fails under
//!   `CI=true` (`not_run::require_tool`), what this host cannot do is recorded and listed
//!   in hack/test.sh's summary, never counted as passed;
//! - a negative control that needs the debug-only `_RUNTIME_TEST_UNSAFE` switches asks
//!   `not_run::negative_control_has_test_switches` first (a release build has none);
//! - readiness is waited for ([`wait`]: a line a container writes to `Bundle::marks`, a
//!   state, a lock in /proc/locks), never a fixed sleep;
//! - "nothing left" is checked with [`leftovers::Probe`] (`Runtime::nothing_left_of`),
//!   the one checker, which knows no runtime's naming scheme;
//! - races and kill -9 windows are loops that print their iteration counts.

pub mod bins;
pub mod bundle;
pub mod busybox_bundles;
pub mod cgroups;
pub mod container;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod fake_registry;
pub mod faulty_proxy;
pub mod host;
pub mod images;
pub mod imgtool_store;
pub mod leftovers;
pub mod matrix;
pub mod network;
pub mod not_run;
pub mod podman;
pub mod registry;
pub mod registry_variants;
pub mod rss;
pub mod seccomp_agent;
pub mod sockets;
pub mod tree;
pub mod wait;
