//! Turning a stored image into a runtime bundle: the rootfs (an overlay of cached layers
//! or a copy), the runtime config converted from the image config (image-spec
//! conversion.md) on docker-like defaults, and the marker that later commands read.

pub mod convert;
pub mod create;
pub mod marker;
pub mod network;
pub mod options;
pub mod resources;
pub mod seccomp;
pub mod security;
pub mod spec;
pub mod user;
pub mod volumes;

pub use create::{create_bundle, remove_bundle, BundleError};
pub use marker::{BundleMarker, RootfsMode};
pub use options::{BindMount, BundleOptions};
