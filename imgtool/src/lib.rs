//! imgtool's library: the pieces the `imgtool` commands are built from.

pub mod layer;
