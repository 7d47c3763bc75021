//! imgtool's library: the pieces the `imgtool` commands are built from.

pub mod bundle;
pub mod layer;
pub mod reference;
pub mod registry;
pub mod store;
