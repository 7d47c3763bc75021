//! Turning a stored image into a runtime bundle: the runtime config converted from the
//! image config (image-spec conversion.md) and the user resolved inside the rootfs.

pub mod convert;
pub mod user;
