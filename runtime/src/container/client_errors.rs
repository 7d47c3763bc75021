//! The texts of the errors a client acts on, worded as runc words them, because clients
//! match them as substrings of the runtime's stderr or `--log` record:
//!
//! - containerd's runc shim (`checkKillError`) treats a failed `kill` as "already exited"
//!   only when the text contains `container not running` (or `no such process`), and as
//!   "no such container" when it contains `does not exist`; its `delete` ignores a
//!   failure containing `does not exist`;
//! - podman (`UpdateContainerStatus`) takes `does not exist` from `state` to mean the
//!   container is gone;
//! - runc's own integration tests, which scripts copy, look for the exec texts below.
//!
//! One place spells them, so a reworded message cannot silently break a client.

/// kill, pause, update of a container whose processes are gone (or not running).
pub const NOT_RUNNING: &str = "container not running";

/// resume of a container that is not paused.
pub const NOT_PAUSED: &str = "container not paused";

/// exec into a paused container without `--ignore-paused`.
pub const EXEC_PAUSED: &str = "cannot exec in a paused container (use --ignore-paused to override)";

/// exec into a stopped container.
pub const EXEC_STOPPED: &str = "cannot exec in a stopped container";

/// Any command naming an id that has no state: runc's `container does not exist`, with
/// the id after it (a user sees which id was meant; clients match the phrase).
pub fn does_not_exist(id: &str) -> String {
    format!("container does not exist: {id}")
}

/// create, run or restore of an id already in use: runc's `container with given ID
/// already exists`, with the id after it.
pub fn already_exists(id: &str) -> String {
    format!("container with given ID already exists: {id}")
}
