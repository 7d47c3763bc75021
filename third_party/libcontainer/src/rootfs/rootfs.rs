use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use nix::mount::MsFlags;
use oci_spec::runtime::{Linux, Spec};

use super::device::Device;
use super::mount::{Mount, MountOptions};
use super::propagation::RootPropagation;
use super::symlink::Symlink;
use super::utils::{default_devices, parse_mount};
use super::{Result, RootfsError};
use crate::error::MissingSpecError;
use crate::syscall::Syscall;
use crate::syscall::syscall::create_syscall;

/// Holds information about rootfs
pub struct RootFS {
    syscall: Box<dyn Syscall>,
}

impl Default for RootFS {
    fn default() -> Self {
        Self::new()
    }
}

impl RootFS {
    pub fn new() -> RootFS {
        RootFS {
            syscall: create_syscall(),
        }
    }

    pub fn mount_to_rootfs(
        &self,
        linux: &Linux,
        spec: &Spec,
        rootfs: &Path,
        cgroup_ns: bool,
        // PATCH (runtime, see third_party/README.md): sources opened by the runtime, by
        // position in spec.mounts (process::bind_sources).
        bind_sources: &HashMap<usize, OwnedFd>,
    ) -> Result<()> {
        // PATCH (runtime, see third_party/README.md): runc's spellings and meaning.
        let value = linux.rootfs_propagation().as_deref();
        let flags = RootPropagation::parse(value)
            .ok_or_else(|| RootfsError::UnknownRootfsPropagation(value.unwrap_or("").into()))?
            .namespace;

        self.syscall
            .mount(None, Path::new("/"), None, flags, None)
            .map_err(|err| {
                tracing::error!(
                    ?err,
                    ?flags,
                    "failed to change the mount propagation type of the root"
                );

                err
            })?;

        let mounter = Mount::new();

        mounter.make_parent_mount_private(rootfs)?;

        tracing::debug!("mount root fs {:?}", rootfs);
        self.syscall
            .mount(
                Some(rootfs),
                rootfs,
                None,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None,
            )
            .map_err(|err| {
                tracing::error!(?rootfs, ?err, "failed to bind mount rootfs");
                err
            })?;

        if let Some(mounts) = spec.mounts() {
            for (index, mount) in mounts.iter().enumerate() {
                let options = MountOptions {
                    root: rootfs,
                    label: linux.mount_label().as_deref(),
                    cgroup_ns,
                    source_fd: bind_sources.get(&index).map(|fd| fd.as_fd()),
                };
                // PATCH (runtime): the error names the mount (crate::error::chain).
                mounter
                    .setup_mount(mount, &options)
                    .map_err(|source| RootfsError::MountEntry {
                        index,
                        what: describe_mount(mount),
                        source,
                    })?;
            }
            // PATCH (runtime, see third_party/README.md): the end state, once more.
            super::proc_guard::check_final(rootfs, mounts)
                .map_err(|e| RootfsError::Mount(super::mount::MountError::Custom(e)))?;
        }
        Ok(())
    }

    pub fn prepare_rootfs(
        &self,
        spec: &Spec,
        rootfs: &Path,
        bind_devices: bool,
        cgroup_ns: bool,
        // PATCH (runtime, see third_party/README.md): see mount_to_rootfs.
        bind_sources: &HashMap<usize, OwnedFd>,
    ) -> Result<()> {
        tracing::debug!(?rootfs, "prepare rootfs");
        let linux = spec.linux().as_ref().ok_or(MissingSpecError::Linux)?;

        self.mount_to_rootfs(linux, spec, rootfs, cgroup_ns, bind_sources)?;

        let symlinker = Symlink::new();
        symlinker.setup_kcore_symlink(rootfs)?;
        symlinker.setup_default_symlinks(rootfs)?;

        let devicer = Device::new();
        if let Some(added_devices) = linux.devices() {
            let mut path_set = HashSet::new();
            let devices = default_devices();
            added_devices.iter().for_each(|d| {
                path_set.insert(d.path());
            });
            let default = devices.iter().filter(|d| !path_set.contains(d.path()));
            devicer.create_devices(rootfs, added_devices.iter().chain(default), bind_devices)
        } else {
            devicer.create_devices(rootfs, &default_devices(), bind_devices)
        }?;

        symlinker.setup_ptmx(rootfs)?;
        Ok(())
    }

    /// PATCH (runtime, see third_party/README.md): honours `ro` on the /dev mount, as
    /// runc's finalizeRootfs does. /dev is mounted writable first (the device nodes, the
    /// /dev symlinks and /dev/console are made in it) and, when its mount asks for `ro`,
    /// remounted read-only once the console is set up. The remount keeps the mount's
    /// other flags and is a bind remount, which a user namespace may do too; EBUSY is
    /// retried as runc does.
    pub fn remount_dev_readonly(&self, spec: &Spec) -> Result<()> {
        let Some(dev) = spec.mounts().iter().flatten().find(|m| {
            m.destination()
                .components()
                .eq(std::path::Path::new("/dev").components())
        }) else {
            return Ok(());
        };
        let flags = parse_mount(dev)?.flags;
        if !flags.contains(MsFlags::MS_RDONLY) {
            return Ok(());
        }
        let flags = flags | MsFlags::MS_REMOUNT | MsFlags::MS_BIND | MsFlags::MS_RDONLY;
        let mut attempts = 0;
        loop {
            match self
                .syscall
                .mount(None, Path::new("/dev"), None, flags, None)
            {
                Err(crate::syscall::SyscallError::Nix(nix::errno::Errno::EBUSY))
                    if attempts < 5 =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Err(err) => {
                    tracing::error!(?err, ?flags, "failed to remount /dev read-only");
                    return Err(err.into());
                }
                Ok(()) => return Ok(()),
            }
        }
    }

    /// Change propagation type of rootfs as specified in spec.
    // PATCH (runtime, see third_party/README.md): every spelling, and called once the
    // container's mounts are all in place (an unbindable root would refuse the bind
    // mounts of masked and read-only paths).
    pub fn adjust_root_mount_propagation(&self, linux: &Linux) -> Result<()> {
        let value = linux.rootfs_propagation().as_deref();
        let flags = RootPropagation::parse(value)
            .ok_or_else(|| RootfsError::UnknownRootfsPropagation(value.unwrap_or("").into()))?
            .container_root;

        if let Some(flags) = flags {
            self.syscall
                .mount(None, Path::new("/"), None, flags, None)
                .map_err(|err| {
                    tracing::error!(
                        ?err,
                        ?flags,
                        "failed to adjust the mount propagation type of the root"
                    );
                    err
                })?;
        }

        Ok(())
    }
}

/// PATCH (runtime): `tmpfs on /dev`, `bind /src on /dst` for error lines.
fn describe_mount(m: &oci_spec::runtime::Mount) -> String {
    let typ = m.typ().as_deref().unwrap_or("none");
    match m.source() {
        Some(src) if src.is_absolute() => {
            format!("{typ} {} on {}", src.display(), m.destination().display())
        }
        _ => format!("{typ} on {}", m.destination().display()),
    }
}
