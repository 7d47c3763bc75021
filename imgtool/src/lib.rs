//! imgtool's library: the pieces the `imgtool` commands are built from.

pub mod archive;
pub mod bundle;
pub mod commit;
pub mod image;
pub mod layer;
pub mod mount;
pub mod network;
pub mod reference;
pub mod registry;
pub mod store;
pub mod test_switches;
