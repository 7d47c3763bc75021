//! Shared harness for the integration tests in `tests/`: locating the built binaries,
//! making busybox bundles, driving the runtime with guards that clean up on drop.

pub mod bins;
pub mod bundle;
pub mod busybox_bundles;
pub mod container;
pub mod containerd;
pub mod cri;
pub mod docker;
pub mod faulty_proxy;
pub mod host;
pub mod images;
pub mod imgtool_store;
pub mod network;
pub mod podman;
pub mod registry;
pub mod registry_variants;
pub mod sockets;
pub mod tree;
