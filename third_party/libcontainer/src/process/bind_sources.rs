//! PATCH (runtime, see third_party/README.md): bind-mount sources are opened by the
//! runtime, with its own credentials, before the container's user namespace applies to
//! them, as runc does.
//!
//! In a user namespace the container's root is an unprivileged host user: a source the
//! host's root keeps to itself (a 0700 directory) cannot be looked up by the init, and the
//! mount failed ("failed to prepare rootfs"). runc's parent process enters the container's
//! new mount namespace, opens each bind source O_PATH and passes the descriptors to the
//! init, which mounts from them (runc's userns.bats, "userns with 2 inaccessible mounts").
//!
//! Here the init asks the main process for each source in turn, once its mount namespace
//! exists; the main process opens the source inside that namespace through
//! `/proc/<init>/root` (openat2 RESOLVE_IN_ROOT, so symlinks resolve in the container's
//! view and the descriptor belongs to its mount namespace) and sends it back over the
//! existing mount-fd channel messages; the init bind-mounts from the descriptor.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use nix::unistd::Pid;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::channel::{self, ChannelError};
use super::message::MountMsg;
use crate::rootfs::utils::is_bind;

/// The positions in `mounts` of the bind mounts whose sources the runtime opens: every
/// bind mount when the container has a user and a mount namespace and the runtime is
/// not rootless (runc's rule), none otherwise.
pub(crate) fn to_open(spec: &Spec, enabled: bool) -> Vec<usize> {
    let has = |typ: LinuxNamespaceType| {
        spec.linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|ns| ns.iter().any(|n| n.typ() == typ))
    };
    if !enabled || !has(LinuxNamespaceType::User) || !has(LinuxNamespaceType::Mount) {
        return Vec::new();
    }
    spec.mounts()
        .iter()
        .flatten()
        .enumerate()
        .filter(|(_, m)| is_bind(m) && m.source().is_some())
        .map(|(i, _)| i)
        .collect()
}

/// Main process: answers the init's request for each source of `to_open`, in order.
pub(crate) fn serve(
    spec: &Spec,
    enabled: bool,
    init_pid: Pid,
    main_receiver: &mut channel::MainReceiver,
    init_sender: &mut channel::InitSender,
) -> Result<(), ChannelError> {
    let wanted = to_open(spec, enabled);
    if wanted.is_empty() {
        return Ok(());
    }
    // Opened once the first request arrives: the init asks only after it has made its
    // mount namespace, and its root must be looked at in that one.
    let mut root: Option<Result<OwnedFd, i32>> = None;
    for _ in wanted {
        let request = main_receiver.wait_for_mount_fd_request()?;
        let opened = root
            .get_or_insert_with(|| open_root(init_pid))
            .as_ref()
            .map_err(|e| *e)
            .and_then(|root| crate::rootfs::in_root::resolve(root.as_fd(), &request.source));
        match opened {
            Ok(fd) => init_sender.send_mount_fd_reply(fd.as_raw_fd())?,
            Err(errno) => init_sender.send_mount_fd_error(format!(
                "cannot open bind mount source {}: {}",
                request.source.display(),
                nix::errno::Errno::from_raw(errno).desc()
            ))?,
        }
    }
    Ok(())
}

/// The init's root directory, seen from here, in its own mount namespace.
fn open_root(init_pid: Pid) -> Result<OwnedFd, i32> {
    let path =
        std::ffi::CString::new(format!("/proc/{init_pid}/root")).map_err(|_| libc::EINVAL)?;
    // SAFETY: open takes a NUL-terminated path and flags and returns a new fd or -1.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EIO));
    }
    // SAFETY: fd was just returned by open and belongs to nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Init: asks the main process for each source of `to_open`; returns them by position.
pub(crate) fn receive(
    spec: &Spec,
    enabled: bool,
    main_sender: &mut channel::MainSender,
    init_receiver: &mut channel::InitReceiver,
) -> Result<HashMap<usize, OwnedFd>, ChannelError> {
    let mut fds = HashMap::new();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    for i in to_open(spec, enabled) {
        let source = mounts[i].source().as_deref().unwrap_or(Path::new(""));
        main_sender.request_mount_fd(MountMsg {
            source: source.to_path_buf(),
            idmap: None,
            clone_mount_tree_recursively: false,
        })?;
        fds.insert(i, init_receiver.wait_for_mount_fd_reply()?);
    }
    Ok(fds)
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::{LinuxBuilder, LinuxNamespaceBuilder, MountBuilder, SpecBuilder};

    use super::*;

    fn spec(userns: bool) -> Spec {
        let mut namespaces = vec![
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Mount)
                .build()
                .unwrap(),
        ];
        if userns {
            namespaces.push(
                LinuxNamespaceBuilder::default()
                    .typ(LinuxNamespaceType::User)
                    .build()
                    .unwrap(),
            );
        }
        let mount = |dest: &str, typ: &str, opts: &[&str]| {
            MountBuilder::default()
                .destination(dest)
                .typ(typ)
                .source("/src")
                .options(opts.iter().map(|o| o.to_string()).collect::<Vec<_>>())
                .build()
                .unwrap()
        };
        SpecBuilder::default()
            .mounts(vec![
                mount("/proc", "proc", &[]),
                mount("/a", "none", &["bind"]),
                mount("/tmp", "tmpfs", &[]),
                mount("/b", "none", &["rbind", "ro"]),
            ])
            .linux(
                LinuxBuilder::default()
                    .namespaces(namespaces)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    }

    #[test]
    fn every_bind_mount_with_a_user_namespace_none_without() {
        assert_eq!(to_open(&spec(true), true), [1, 3]);
        assert!(to_open(&spec(false), true).is_empty());
        assert!(
            to_open(&spec(true), false).is_empty(),
            "a rootless runtime opens none"
        );
    }
}
