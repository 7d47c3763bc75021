//! Making images from filesystems (import, commit): storing layers, building configs and
//! manifests, and the `--change` instructions that edit a config.

pub mod build;
pub mod change;
pub mod validate;
