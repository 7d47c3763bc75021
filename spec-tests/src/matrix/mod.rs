//! The differential matrix against runc (issue 13's "method that keeps parity"): one
//! table of scenarios, each run on runc and on the runtime under test, comparing what a
//! client observes after normalisation — exit codes, the class of stdout and stderr, the
//! container's fds, device rules, lo, mount table, cgroup files, state JSON and what hooks
//! saw. The table is `tests/runtime_vs_runc.rs`; this module is its harness:
//!
//! - `row`: a row as data (bundle edits, CLI steps, observations, expectation) and its builder;
//! - `run`: running a row on one runtime (private root, bundle, cleanup on drop);
//! - `observe`: collectors reading the live container through /proc from the host;
//! - `normalise` and `json`: placeholders for ids, paths, pids, timestamps; output classes;
//! - `report`: both runtimes side by side in parallel, verdicts and the printed summary;
//! - `seccomp_listener`: a `listenerPath` receiver for SCMP_ACT_NOTIFY rows.

pub mod json;
pub mod normalise;
pub mod observe;
pub mod report;
pub mod row;
pub mod run;
pub mod seccomp_listener;

pub use normalise::Class;
pub use row::{cli, row, Expect, Obs, Requires, Row, Stdout};
