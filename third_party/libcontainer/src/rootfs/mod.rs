//! During kernel initialization, a minimal replica of the ramfs filesystem is
//! loaded, called rootfs.  Most systems mount another filesystem over it

#[allow(clippy::module_inception)]
pub(crate) mod rootfs;
pub use rootfs::RootFS;

pub mod device;
pub use device::Device;

// PATCH (runtime): cheap in-rootfs lookups for mount destinations.
pub(crate) mod in_root;
pub(super) mod mount;
// PATCH (runtime): nothing but procfs on /proc, judged on the mount's descriptors.
pub(super) mod proc_guard;
pub use mount::Mount;

// PATCH (runtime, see third_party/README.md): runc's rootfsPropagation spellings.
pub mod propagation;

pub(super) mod symlink;

pub mod utils;

#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("failed syscall")]
    Syscall(#[from] crate::syscall::SyscallError),
    #[error(transparent)]
    MissingSpec(#[from] crate::error::MissingSpecError),
    // PATCH (runtime, see third_party/README.md): runc's text, naming the value.
    #[error("rootfsPropagation={0} is not supported")]
    UnknownRootfsPropagation(String),
    #[error(transparent)]
    Symlink(#[from] symlink::SymlinkError),
    #[error(transparent)]
    Mount(#[from] mount::MountError),
    // PATCH (runtime): which of the config's mounts failed.
    #[error("mounts[{index}] ({what})")]
    MountEntry {
        index: usize,
        what: String,
        #[source]
        source: mount::MountError,
    },
    #[error(transparent)]
    Device(#[from] device::DeviceError),
}

type Result<T> = std::result::Result<T, RootfsError>;
