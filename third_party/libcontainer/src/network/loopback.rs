//! PATCH (runtime, see third_party/README.md): the loopback device of a new network
//! namespace is brought up, as runc does.
//!
//! A new network namespace has only `lo`, and it is down: nothing in the container can
//! reach 127.0.0.1 (podman's `--network none`, every bundle without a network setup of
//! its own). runc's spec conversion gives each container that creates its network
//! namespace a "loopback" network, which its init sets up (netlink `LinkSetUp("lo")`);
//! a namespace joined by path is left as it is.

use super::Result;
use super::link::LinkClient;
use super::wrapper::create_network_client;

/// The kernel gives the loopback device of every network namespace this index
/// (`LOOPBACK_IFINDEX`), so no lookup by name is needed.
const LOOPBACK_IFINDEX: u32 = 1;

/// Sets `lo` of the current network namespace up.
pub fn bring_up() -> Result<()> {
    LinkClient::new(create_network_client())?.set_up(LOOPBACK_IFINDEX)
}
