use std::collections::HashMap;
use std::fs;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::PathBuf;

use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;
use oci_spec::runtime::{Linux, LinuxNamespaceType};
#[cfg(feature = "libseccomp")]
use oci_spec::runtime::{SECCOMP_FD_NAME, VERSION as OCI_VERSION};

use crate::hooks;
use crate::network::network_device::dev_change_net_namespace;
use crate::process::args::{ContainerArgs, ContainerType};
use crate::process::fork::{self, CloneCb};
use crate::process::{channel, container_intermediate_process};
use crate::syscall::SyscallError;
use crate::user_ns::UserNamespaceConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error(transparent)]
    Channel(#[from] channel::ChannelError),
    #[error("failed to write deny to setgroups")]
    SetGroupsDeny(#[source] std::io::Error),
    #[error(transparent)]
    UserNamespace(#[from] crate::user_ns::UserNamespaceError),
    #[error("container state is required")]
    ContainerStateRequired,
    #[error("failed to wait for intermediate process")]
    WaitIntermediateProcess(#[source] nix::Error),
    #[error(transparent)]
    IntelRdt(#[from] crate::process::intel_rdt::IntelRdtError),
    #[error("failed to create intermediate process")]
    IntermediateProcessFailed(#[source] fork::CloneError),
    // PATCH (runtime, see third_party/README.md): the listener's own (runc's) text.
    #[error(transparent)]
    #[cfg(feature = "libseccomp")]
    SeccompListener(#[from] crate::process::seccomp_listener::SeccompListenerError),
    #[error("failed setup network device")]
    Network(#[from] crate::network::NetworkError),
    #[error("failed syscall")]
    SyscallOther(#[source] SyscallError),
    #[error("failed hooks {0}")]
    Hooks(#[from] crate::hooks::HookError),
    #[error("failed to build OCI state: {0}")]
    OciStateBuild(String),
    // PATCH (runtime): an exec'd process could not join the container's cgroup.
    #[error("unable to start container process: cannot join the container's cgroup: {0}")]
    TenantCgroup(String),
    // PATCH (runtime): the pid namespace an exec'd process is cloned into.
    #[error("unable to start container process: {what} {path}: {source}")]
    TenantPidNamespace {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    // PATCH (runtime): the pid file could not be written.
    #[error("cannot write the pid file {path}: {source}")]
    PidFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

type Result<T> = std::result::Result<T, ProcessError>;

pub fn container_main_process(container_args: &ContainerArgs) -> Result<Pid> {
    // We use a set of channels to communicate between parent and child process.
    // Each channel is uni-directional. Because we will pass these channel to
    // cloned process, we have to be deligent about closing any unused channel.
    // At minimum, we have to close down any unused senders. The corresponding
    // receivers will be cleaned up once the senders are closed down.
    let (mut intermediate_main_sender, mut intermediate_main_receiver) = channel::main_channel()?;
    let (mut init_main_sender, mut init_main_receiver) = channel::main_channel()?;
    let mut inter_chan = channel::intermediate_channel()?;
    let mut init_chan = channel::init_channel()?;

    // PATCH (runtime, see third_party/README.md): the child cloned below dies with this
    // process until it is inside the container's cgroup, where a `delete --force` after a
    // kill -9 of the runtime finds it (see `die_with_parent`). Its check that this process
    // is still alive uses a pidfd taken now.
    let parent_pidfd = own_pidfd();
    let parent_fd = parent_pidfd.as_ref().map(|fd| fd.as_raw_fd());
    // PATCH (runtime, see third_party/README.md): without a user namespace (and the other
    // cases the intermediate process exists for) the init is cloned directly, into its
    // new pid namespace, as crun does: one fork and one process exit fewer per container.
    let direct = can_skip_intermediate(container_args);
    // PATCH (runtime, see third_party/README.md): likewise an exec'd process, cloned
    // directly into the container's pid namespace; it joins the container's cgroup itself.
    let direct_tenant = can_exec_without_intermediate(container_args);
    let child_pid = if direct {
        let mut prebuilt = container_intermediate_process::init_cgroup_manager(container_args).ok();
        let cb: CloneCb = Box::new(|| {
            die_with_parent(parent_fd);
            direct_init(
                container_args,
                prebuilt.take(),
                &mut inter_chan,
                &mut init_chan,
                &mut intermediate_main_sender,
                &mut init_main_sender,
            )
        });
        let flags = if new_pid_namespace(container_args) {
            libc::CLONE_NEWPID as u64
        } else {
            0
        };
        fork::container_clone_with_flags(cb, flags).map_err(|err| {
            tracing::error!("failed to fork init process: {}", err);
            ProcessError::IntermediateProcessFailed(err)
        })?
    } else if direct_tenant {
        // The cgroup manager is made here once (it only computes paths) and handed to
        // the clone; `born_in_v2` tells the clone whether clone3 already put it into the
        // v2 cgroup (each clone attempt sees the value it had at that attempt).
        let mut prebuilt =
            container_intermediate_process::init_cgroup_manager(container_args).ok();
        let v2_dir = prebuilt
            .as_ref()
            .filter(|_| !container_intermediate_process::skip_exec_cgroup_join_for_test())
            .and_then(|m| {
                use libcgroups::common::CgroupManager;
                m.v2_join_dir()
            });
        let born_in_v2 = std::cell::Cell::new(false);
        let cb: CloneCb = Box::new(|| {
            die_with_parent(parent_fd);
            direct_tenant_process(
                container_args,
                prebuilt.take(),
                born_in_v2.get(),
                &mut inter_chan,
                &mut init_chan,
                &mut intermediate_main_sender,
                &mut init_main_sender,
            )
        });
        clone_into_joined_pid_namespace(container_args, cb, v2_dir.as_deref(), &born_in_v2)?
    } else {
        let cb: CloneCb = {
            Box::new(|| {
                // PATCH (runtime): the process name without youki's (runc: runc:[2:INIT]).
                // PATCH (runtime): a sibling's parent is not this process.
                if !container_args.as_sibling {
                    die_with_parent(parent_fd);
                } else if let Some(fd) = parent_fd {
                    // SAFETY: our copy of the pidfd, not used again in this process.
                    unsafe { libc::close(fd) };
                }
                if let Err(ret) = prctl::set_name("runtime[1:CHLD]") {
                    tracing::error!(?ret, "failed to set name for child process");
                    return ret;
                }

                match container_intermediate_process::container_intermediate_process(
                    container_args,
                    &mut inter_chan,
                    &mut init_chan,
                    &mut intermediate_main_sender,
                    &mut init_main_sender,
                ) {
                    Ok(_) => 0,
                    Err(err) => {
                        tracing::error!("failed to run intermediate process {}", err);
                        // PATCH (runtime): the whole cause (crate::error::chain).
                        match intermediate_main_sender.send_error(crate::error::chain(&err)) {
                            Ok(_) => {}
                            Err(e) => {
                                tracing::error!(
                                    "error in sending intermediate error message {} to main: {}",
                                    err,
                                    e
                                )
                            }
                        }
                        -1
                    }
                }
            })
        };

        let container_clone_fn = if container_args.as_sibling {
            fork::container_clone_sibling
        } else {
            fork::container_clone
        };

        container_clone_fn(cb).map_err(|err| {
            tracing::error!("failed to fork intermediate process: {}", err);
            ProcessError::IntermediateProcessFailed(err)
        })?
    };
    let intermediate_pid = child_pid;
    drop(parent_pidfd);

    // Close down unused fds. The corresponding fds are duplicated to the
    // child process during clone.
    intermediate_main_sender.close().map_err(|err| {
        tracing::error!("failed to close unused sender: {}", err);
        err
    })?;
    init_main_sender.close().map_err(|err| {
        tracing::error!("failed to close unused sender: {}", err);
        err
    })?;

    let (mut inter_sender, inter_receiver) = inter_chan;
    let (mut init_sender, init_receiver) = init_chan;

    // If creating a container with new user namespace, the intermediate process will ask
    // the main process to set up uid and gid mapping, once the intermediate
    // process enters into a new user namespace.
    if let Some(config) = &container_args.user_ns_config {
        intermediate_main_receiver.wait_for_mapping_request()?;
        setup_mapping(config, intermediate_pid)?;
        inter_sender.mapping_written()?;
    }

    // If creating a container with time namespace and offsets are specified,
    // the intermediate process will ask the main process to write the time offsets.
    container_args
        .spec
        .linux()
        .as_ref()
        .and_then(build_timens_offsets)
        .map(|time_offsets| -> Result<()> {
            // This must be done from the parent process since CAP_SYS_TIME is required.
            intermediate_main_receiver.wait_for_time_offset_request()?;
            tracing::debug!("write time offsets for pid {intermediate_pid:?}: '{time_offsets}'");
            std::fs::write(
                format!("/proc/{intermediate_pid}/timens_offsets"),
                &time_offsets,
            )
            .map_err(|err| {
                tracing::error!(
                    "failed to write timens_offsets for pid {intermediate_pid:?}: {err}"
                );
                ProcessError::SyscallOther(SyscallError::IO(err))
            })?;
            inter_sender.time_offsets_written()?;
            Ok(())
        })
        .transpose()?;

    // At this point, we don't need to send any message to intermediate process anymore,
    // so we want to close this sender at the earliest point.
    inter_sender.close().map_err(|err| {
        tracing::error!("failed to close unused intermediate sender: {}", err);
        err
    })?;

    // The intermediate process will send the init pid once it forks the init
    // process.  The intermediate process should exit after this point.
    let init_pid = if direct || direct_tenant {
        child_pid
    } else {
        intermediate_main_receiver.wait_for_intermediate_ready()?
    };

    // PATCH (runtime, see third_party/README.md): an exec'd process joins the container's
    // cgroup now, forked but not yet running its program (it waits for the caller's
    // start notification).
    // (PATCH (runtime): one cloned directly has joined it itself, prepare_tenant_without_
    // intermediate.)
    if matches!(container_args.container_type, ContainerType::TenantContainer { .. })
        && !direct_tenant
    {
        if let Err(err) = join_tenant_cgroup(container_args, init_pid) {
            kill_and_wait(init_pid);
            return Err(err);
        }
    }

    // if file to write the pid to is specified, write pid of the child
    //
    // PATCH (runtime, see third_party/README.md): a pid file that cannot be written is
    // an error, as with runc (the caller asked to learn the pid and would otherwise
    // wait for a file that never comes); the process is killed, and for an init the
    // caller's cleanup removes the container. The file is written whole or not at all,
    // through a temporary file beside it renamed over it, as runc writes it.
    if let Some(pid_file) = &container_args.pid_file {
        if let Err(source) = write_pid_file(pid_file, init_pid) {
            kill_and_wait(init_pid);
            return Err(ProcessError::PidFile {
                path: pid_file.clone(),
                source,
            });
        }
    }

    // PATCH (runtime, see third_party/README.md): the init asks for its bind-mount
    // sources first (process::bind_sources).
    if matches!(container_args.container_type, ContainerType::InitContainer) {
        super::bind_sources::serve(
            &container_args.spec,
            container_args.open_bind_sources,
            init_pid,
            &mut init_main_receiver,
            &mut init_sender,
        )?;
    }

    if matches!(container_args.container_type, ContainerType::InitContainer) {
        if let Some(hooks) = container_args.spec.hooks() {
            init_main_receiver.wait_for_hook_request()?;
            if let Some(container_for_hooks) = &container_args.container {
                // PATCH (runtime, see third_party/README.md): prestart and createRuntime
                // hooks run in the bundle, as runc's (`runc create` changes into the
                // bundle first), not in whatever directory the caller was in.
                let bundle = Some(container_for_hooks.bundle().as_path());
                hooks::run_hooks(
                    hooks.prestart().as_ref(),
                    Some(&container_for_hooks.state),
                    bundle,
                    Some(init_pid),
                    None,
                )
                .map_err(|err| {
                    tracing::error!("failed to run prestart hooks: {}", err);
                    err
                })?;

                hooks::run_hooks(
                    hooks.create_runtime().as_ref(),
                    Some(&container_for_hooks.state),
                    bundle,
                    Some(init_pid),
                    None,
                )
                .map_err(|err| {
                    tracing::error!("failed to run create runtime hooks: {}", err);
                    err
                })?;
            }
            init_sender.hook_done()?;
        }
    }

    if let Some(linux) = container_args.spec.linux() {
        move_network_devices_to_container(
            linux,
            init_pid,
            &mut init_main_receiver,
            &mut init_sender,
        )?;

        // PATCH (runtime, see third_party/README.md): an exec'd process loads the
        // container's profile too (container/tenant_builder.rs); its listener gets the
        // joined container's state, with the container's init as the state's pid and the
        // exec'd process as the process's, as runc sends it. The state is only needed
        // for notify rules.
        #[cfg(feature = "libseccomp")]
        if let Some(seccomp) = linux
            .seccomp()
            .as_ref()
            .filter(|s| crate::seccomp::is_notify(s))
        {
            let container = container_args
                .container
                .as_ref()
                .or(container_args.joined_container.as_ref())
                .ok_or(ProcessError::ContainerStateRequired)?;
            let state_pid = match container_args.container_type {
                ContainerType::InitContainer => init_pid.as_raw(),
                ContainerType::TenantContainer { .. } => container
                    .pid()
                    .map(|p| p.as_raw())
                    .unwrap_or(init_pid.as_raw()),
            };

            // Determine OCI status based on container type (matching runc behavior)
            let oci_status = match container_args.container_type {
                ContainerType::InitContainer => oci_spec::runtime::ContainerState::Creating,
                ContainerType::TenantContainer { .. } => oci_spec::runtime::ContainerState::Running,
            };

            // Build OCI-compliant ContainerProcessState using builder pattern
            let oci_state = oci_spec::runtime::StateBuilder::default()
                .version(OCI_VERSION)
                .id(container.state.id.clone())
                .status(oci_status)
                .pid(state_pid)
                .bundle(container.state.bundle.clone());
            // PATCH (runtime): "annotations" only when there are some, as runc's Go struct
            // (omitempty) sends the agent; an agent decoding strictly sees the same state.
            let oci_state = match container.state.annotations.clone() {
                Some(annotations) if !annotations.is_empty() => oci_state.annotations(annotations),
                _ => oci_state,
            }
            .build()
            .map_err(|e| ProcessError::OciStateBuild(e.to_string()))?;

            let state = oci_spec::runtime::ContainerProcessStateBuilder::default()
                .version(OCI_VERSION)
                .fds(vec![SECCOMP_FD_NAME.to_string()])
                .pid(init_pid.as_raw())
                .metadata(seccomp.listener_metadata().clone().unwrap_or_default())
                .state(oci_state)
                .build()
                .map_err(|e| ProcessError::OciStateBuild(e.to_string()))?;
            crate::process::seccomp_listener::sync_seccomp(
                seccomp,
                &state,
                &mut init_sender,
                &mut init_main_receiver,
            )?;
        }
    }

    // We don't need to send anything to the init process after this point, so
    // close the sender.
    init_sender.close().map_err(|err| {
        tracing::error!("failed to close unused init sender: {}", err);
        err
    })?;

    init_main_receiver.wait_for_init_ready().map_err(|err| {
        tracing::error!("failed to wait for init ready: {}", err);
        err
    })?;

    tracing::debug!("init pid is {:?}", init_pid);

    // Close the receiver ends to avoid leaking file descriptors.

    inter_receiver.close().map_err(|err| {
        tracing::error!("failed to close intermediate process receiver: {}", err);
        err
    })?;

    init_receiver.close().map_err(|err| {
        tracing::error!("failed to close init process receiver: {}", err);
        err
    })?;

    intermediate_main_receiver.close().map_err(|err| {
        tracing::error!("failed to close intermediate main receiver: {}", err);
        err
    })?;

    init_main_receiver.close().map_err(|err| {
        tracing::error!("failed to close init main receiver: {}", err);
        err
    })?;

    // Before the main process returns, we want to make sure the intermediate
    // process is exit and reaped. By this point, the intermediate process
    // should already exited successfully. If intermediate process errors out,
    // the `init_ready` will not be sent.
    if direct || direct_tenant {
        return Ok(init_pid);
    }
    match waitpid(intermediate_pid, None) {
        Ok(WaitStatus::Exited(_, 0)) => (),
        Ok(WaitStatus::Exited(_, s)) => {
            tracing::warn!("intermediate process failed with exit status: {s}");
        }
        Ok(WaitStatus::Signaled(_, sig, _)) => {
            tracing::warn!("intermediate process killed with signal: {sig}")
        }
        Ok(_) => (),
        Err(nix::errno::Errno::ECHILD) => {
            // This is safe because intermediate_process and main_process check if the process is
            // finished by piping instead of exit code.
            tracing::warn!("intermediate process already reaped");
        }
        Err(err) => return Err(ProcessError::WaitIntermediateProcess(err)),
    };

    Ok(init_pid)
}

/// PATCH (runtime): moves an exec'd process (`pid`, forked by the intermediate process
/// outside any container cgroup) into the container's cgroup, which must exist (and the
/// sub-cgroup `exec --cgroup` names), then gives it its final CPU affinity (joining a
/// cpuset cgroup resets it), as runc's exec does.
fn join_tenant_cgroup(args: &ContainerArgs, pid: Pid) -> Result<()> {
    use libcgroups::common::CgroupManager;
    let manager = container_intermediate_process::init_cgroup_manager(args)
        .map_err(|e| ProcessError::TenantCgroup(e.to_string()))?;
    manager
        .join_existing(pid)
        .map_err(|e| ProcessError::TenantCgroup(e.to_string()))?;
    if let Some(cpus) = args
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.exec_cpu_affinity().as_ref())
        .and_then(|a| a.cpu_affinity_final().as_ref())
    {
        crate::process::cpu_affinity::set_cpuset_affinity_from_string(pid, cpus)
            .map_err(|e| ProcessError::TenantCgroup(e.to_string()))?;
    }
    Ok(())
}

/// PATCH (runtime): writes `pid` to `path` through `.<name>` in the same directory,
/// renamed over it, so a reader never sees a partial file.
/// PATCH (runtime, see third_party/README.md): kills a process this command made that
/// must not outlive the command's failure, and returns only once it is gone, as runc's
/// terminate() (SIGKILL, then Wait): a client listing the container's processes right
/// after the error saw the killed process still there (3 of 30 execs with an unwritable
/// pid file, under load). A process the main process cloned is reaped; one the
/// intermediate process cloned (not our child) is waited for through a pidfd, for up to
/// 10 s.
fn kill_and_wait(pid: Pid) {
    use std::os::fd::{FromRawFd, OwnedFd};
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    if waitpid(pid, None) != Err(nix::errno::Errno::ECHILD) {
        return;
    }
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1 (ESRCH when the
    // process is already gone).
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    if fd < 0 {
        return;
    }
    // SAFETY: fd was just returned by the kernel and belongs to nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let mut ready = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        // SAFETY: one valid pollfd; a pidfd polls readable once its process has exited.
        let n = unsafe { libc::poll(&mut ready, 1, left.as_millis() as libc::c_int) };
        if n >= 0 || nix::errno::Errno::last() != nix::errno::Errno::EINTR || left.is_zero() {
            return;
        }
    }
}

fn write_pid_file(path: &std::path::Path, pid: Pid) -> std::io::Result<()> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = path.with_file_name(format!(".{name}"));
    fs::write(&tmp, format!("{pid}"))?;
    fs::rename(&tmp, path).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// PATCH (runtime): whether the init can be cloned directly by the main process. The
/// intermediate process is needed to write uid/gid maps and time offsets from the parent,
/// to join an existing pid namespace (setns only moves children), for exec (a tenant joins
/// the init's namespaces the same way), for a sibling init, and with systemd's cgroup
/// manager (it is handed the pid as the host sees it, which the init cannot name).
fn can_skip_intermediate(args: &ContainerArgs) -> bool {
    let Some(linux) = args.spec.linux() else {
        return false;
    };
    let namespaces = linux.namespaces().as_deref().unwrap_or_default();
    let joins_pid_ns = namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Pid && ns.path().is_some());
    let time_ns = namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::Time);
    let user_ns = namespaces
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User);
    matches!(args.container_type, ContainerType::InitContainer)
        && args.user_ns_config.is_none()
        && !user_ns
        && !time_ns
        && linux.time_offsets().as_ref().is_none_or(|o| o.is_empty())
        && !joins_pid_ns
        && !args.as_sibling
        && !args.cgroup_config.systemd_cgroup
}

/// PATCH (runtime, see third_party/README.md): whether an exec'd process can be cloned
/// directly by the main process, as crun does, instead of by an intermediate process: the
/// main process joins the container's pid namespace for the clone (setns of a pid
/// namespace only decides where this thread's next children go, and is allowed in a
/// multi-threaded process), and the clone joins the cgroup and the other namespaces
/// itself. Not with a user namespace (a rootless container's, or a joined one): an
/// unprivileged runtime can join the container's pid namespace only from inside its user
/// namespace, which a multi-threaded process cannot enter (setns(CLONE_NEWUSER) wants one
/// thread), and inside it the process could no longer write the host's cgroup files, so
/// the intermediate process (which joins the user namespace first) and the main
/// process's move of the forked process stay for that case. Nor for a sibling clone or
/// systemd's cgroup manager (it is handed the pid as the host sees it).
fn can_exec_without_intermediate(args: &ContainerArgs) -> bool {
    let Some(linux) = args.spec.linux() else {
        return false;
    };
    let user_ns = linux
        .namespaces()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .any(|ns| ns.typ() == LinuxNamespaceType::User);
    matches!(args.container_type, ContainerType::TenantContainer { .. })
        && args.user_ns_config.is_none()
        && !user_ns
        && !args.as_sibling
        && !args.cgroup_config.systemd_cgroup
}

/// PATCH (runtime, see third_party/README.md): clones `cb` as a child of this thread, in
/// the pid namespace the process joins (the container's), if any. setns(CLONE_NEWPID)
/// changes only where this thread's later children go, not this process; the thread
/// goes back to its own pid namespace for children right after the clone (if it cannot,
/// the clone is killed and the error returned: nothing else this process starts may land
/// in the container).
///
/// With `v2_dir` (the v2 cgroup the process joins), the clone is made into it with
/// clone3(CLONE_INTO_CGROUP), as crun does, and `born_in_v2` set for the clone to see;
/// where that fails (a kernel before 5.7, a cgroup that refuses it) it is made without,
/// and the process joins by writing `cgroup.procs`.
fn clone_into_joined_pid_namespace(
    args: &ContainerArgs,
    cb: CloneCb,
    v2_dir: Option<&std::path::Path>,
    born_in_v2: &std::cell::Cell<bool>,
) -> Result<Pid> {
    use nix::sched::{CloneFlags, setns};
    let clone = |mut cb: CloneCb| {
        if let Some(dir) = v2_dir.and_then(|d| open_cgroup_dir(d).ok()) {
            born_in_v2.set(true);
            match fork::container_clone_into_cgroup(&mut cb, dir.as_raw_fd()) {
                Ok(pid) => return Ok(pid),
                Err(err) => {
                    tracing::debug!(%err, "clone3 into the v2 cgroup failed, cloning without")
                }
            }
            born_in_v2.set(false);
        }
        fork::container_clone(cb).map_err(|err| {
            tracing::error!("failed to fork the exec'd process: {}", err);
            ProcessError::IntermediateProcessFailed(err)
        })
    };
    let joined = args.spec.linux().as_ref().and_then(|l| {
        l.namespaces()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .find(|ns| ns.typ() == LinuxNamespaceType::Pid)
            .and_then(|ns| ns.path().clone())
    });
    let Some(path) = joined else {
        return clone(cb);
    };
    let ns_error = |what, path: &std::path::Path| {
        let path = path.to_path_buf();
        move |source: std::io::Error| ProcessError::TenantPidNamespace { what, path, source }
    };
    let own_path = std::path::Path::new("/proc/thread-self/ns/pid_for_children");
    let own = File::open(own_path).map_err(ns_error("cannot open", own_path))?;
    let target = File::open(&path).map_err(ns_error("cannot open", &path))?;
    setns(&target, CloneFlags::CLONE_NEWPID)
        .map_err(|e| ns_error("cannot join the pid namespace", &path)(e.into()))?;
    let cloned = clone(cb);
    let back = setns(&own, CloneFlags::CLONE_NEWPID).map_err(|e| {
        ns_error("cannot return to the runtime's own pid namespace", own_path)(e.into())
    });
    match (cloned, back) {
        (Ok(pid), Ok(())) => Ok(pid),
        (Ok(pid), Err(err)) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(pid, None);
            Err(err)
        }
        (Err(err), _) => Err(err),
    }
}

/// PATCH (runtime): a cgroup v2 directory, opened for clone3's CLONE_INTO_CGROUP.
fn open_cgroup_dir(dir: &std::path::Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
}

/// PATCH (runtime, see third_party/README.md): the body of an exec'd process cloned
/// directly by the main process (see `can_exec_without_intermediate`): it joins the
/// container's cgroup and does the rest of the intermediate process's part itself
/// (container_intermediate_process::prepare_tenant_without_intermediate), then goes on as
/// the intermediate process's clone did (joins the other namespaces, sets up the process,
/// waits for the go-ahead, runs the program). A failure before the go-ahead reaches the
/// main process on the channel, a later one (the program cannot be run) the caller on the
/// exec notify pipe, as from the intermediate process's clone.
fn direct_tenant_process(
    args: &ContainerArgs,
    prebuilt: Option<libcgroups::common::AnyCgroupManager>,
    born_in_v2: bool,
    inter_chan: &mut (channel::IntermediateSender, channel::IntermediateReceiver),
    init_chan: &mut (channel::InitSender, channel::InitReceiver),
    intermediate_main_sender: &mut channel::MainSender,
    init_main_sender: &mut channel::MainSender,
) -> i32 {
    // PATCH (runtime): the process name without youki's (runc: runc:[2:INIT]).
    if let Err(ret) = prctl::set_name("runtime[2:INIT]") {
        tracing::error!(?ret, "failed to set name for child process");
        return ret;
    }
    let (inter_sender, _) = inter_chan;
    let (init_sender, init_receiver) = init_chan;
    if let Err(err) = init_sender.close() {
        tracing::error!(?err, "failed to close receiver in the exec'd process");
        return -1;
    }
    if let Err(err) = inter_sender.close() {
        tracing::error!(?err, "failed to close sender in the exec'd process");
        return -1;
    }
    if let Err(err) = intermediate_main_sender.close() {
        tracing::error!(?err, "failed to close intermediate main sender in the exec'd process");
        return -1;
    }
    let result = container_intermediate_process::prepare_tenant_without_intermediate(
        args, prebuilt, born_in_v2,
    )
        .map_err(|e| crate::error::chain(&e))
        .map(|()| {
            // In the container's cgroup now: found there by a delete if the runtime dies,
            // and a detached exec's process must outlive the runtime (process/clone_lock.rs).
            // SAFETY: prctl with PR_SET_PDEATHSIG and 0 only changes this process's setting.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
            crate::process::clone_lock::release_in_child();
        })
        .and_then(|()| {
            crate::process::init::process::container_init_process(
                args,
                init_main_sender,
                init_receiver,
            )
            .map_err(|e| crate::error::chain(&e))
        });
    match result {
        Ok(_) => 0,
        Err(e) => {
            tracing::error!("failed to initialize the exec'd process: {e}");
            if let Err(err) = init_main_sender.exec_failed(e.clone()) {
                tracing::error!(?err, "failed sending error to main sender");
            }
            if let ContainerType::TenantContainer { exec_notify_fd } = args.container_type {
                use std::os::fd::FromRawFd;
                // SAFETY: this process's copy of the pipe's write end, used only here.
                let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(exec_notify_fd) };
                if let Err(err) = nix::unistd::write(&fd, e.as_bytes()) {
                    tracing::error!(?err, "failed to write to exec notify fd");
                }
            }
            -1
        }
    }
}

/// PATCH (runtime, see third_party/README.md): a pidfd of this process, taken before the
/// clone so that the child can tell whether its parent already died. None on kernels
/// without pidfd_open (< 5.3): the child then relies on PR_SET_PDEATHSIG alone.
fn own_pidfd() -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, libc::getpid(), 0) };
    // SAFETY: a new fd that nothing else owns.
    (fd >= 0).then(|| unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// PATCH (runtime, see third_party/README.md): first thing in the child the main process
/// clones (the init, or the intermediate process). Before, a runtime killed with SIGKILL
/// between the clone and the child's joining the container's cgroup left the child
/// running on its own: it then joined (creating the cgroup after a `delete --force` had
/// already looked) and went on with the container's setup, found by nothing. Now it is
/// sent SIGKILL when the thread that cloned it exits (PR_SET_PDEATHSIG, as runc's init
/// has until its parent is done with it); a parent that died before the prctl is seen
/// through `parent_pidfd` (readable once that process has exited) and the child exits.
/// The init clears the setting once it is in its cgroup (see `direct_init`); the
/// intermediate process keeps it until it exits (a credential change in a user namespace
/// clears it there, after the cgroup has been joined). Closes `parent_pidfd`.
fn die_with_parent(parent_pidfd: Option<std::os::fd::RawFd>) {
    // SAFETY: prctl with PR_SET_PDEATHSIG only changes this process's setting.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    let Some(fd) = parent_pidfd else {
        return;
    };
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: poll reads one pollfd we own, with no timeout.
    let exited = unsafe { libc::poll(&mut pfd, 1, 0) } > 0;
    // SAFETY: our copy of the pidfd, not used again.
    unsafe { libc::close(fd) };
    if exited {
        // SAFETY: _exit ends this process at once, running nothing of the parent's.
        unsafe { libc::_exit(1) };
    }
}

/// Whether the spec asks for a new pid namespace (a joined one excludes the direct path).
fn new_pid_namespace(args: &ContainerArgs) -> bool {
    args.spec.linux().as_ref().is_some_and(|l| {
        l.namespaces()
            .as_deref()
            .unwrap_or_default()
            .iter()
            .any(|ns| ns.typ() == LinuxNamespaceType::Pid && ns.path().is_none())
    })
}

/// PATCH (runtime): the body of an init cloned directly by the main process: it does the
/// intermediate process's part itself (cgroup, resources, rlimits), then runs as the init.
fn direct_init(
    args: &ContainerArgs,
    prebuilt: Option<libcgroups::common::AnyCgroupManager>,
    inter_chan: &mut (channel::IntermediateSender, channel::IntermediateReceiver),
    init_chan: &mut (channel::InitSender, channel::InitReceiver),
    intermediate_main_sender: &mut channel::MainSender,
    init_main_sender: &mut channel::MainSender,
) -> i32 {
    // PATCH (runtime): the process name without youki's (runc: runc:[2:INIT]).
    if let Err(ret) = prctl::set_name("runtime[2:INIT]") {
        tracing::error!(?ret, "failed to set name for child process");
        return ret;
    }
    let (inter_sender, _) = inter_chan;
    let (init_sender, init_receiver) = init_chan;
    // As in the init cloned by the intermediate process: close the senders it must not
    // hold, so that the main process sees EOF when the init dies.
    if let Err(err) = init_sender.close() {
        tracing::error!(?err, "failed to close receiver in init process");
        return -1;
    }
    if let Err(err) = inter_sender.close() {
        tracing::error!(?err, "failed to close sender in the init process");
        return -1;
    }
    if let Err(err) = intermediate_main_sender.close() {
        tracing::error!(
            ?err,
            "failed to close intermediate main sender in init process"
        );
        return -1;
    }
    // PATCH (runtime): the whole cause of a failure goes to the parent (crate::error::chain).
    let result = container_intermediate_process::prepare_init_without_intermediate(args, prebuilt)
        .map_err(|e| crate::error::chain(&e))
        .map(|()| {
            // PATCH (runtime): in the container's cgroup now, found there if the runtime
            // dies; from here on the init must outlive `create`, and a delete need not wait
            // for it (process/clone_lock.rs).
            // SAFETY: prctl with PR_SET_PDEATHSIG and 0 only changes this process's setting.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
            crate::process::clone_lock::release_in_child();
        })
        .and_then(|()| {
            crate::process::init::process::container_init_process(
                args,
                init_main_sender,
                init_receiver,
            )
            .map_err(|e| crate::error::chain(&e))
        });
    match result {
        Ok(_) => 0,
        Err(e) => {
            tracing::error!("failed to initialize container process: {e}");
            if let Err(err) = init_main_sender.exec_failed(e) {
                tracing::error!(?err, "failed sending error to main sender");
            }
            -1
        }
    }
}

fn setup_mapping(config: &UserNamespaceConfig, pid: Pid) -> Result<()> {
    tracing::debug!("write mapping for pid {:?}", pid);
    if !config.privileged {
        // The main process is running as an unprivileged user and cannot write the mapping
        // until "deny" has been written to setgroups. See CVE-2014-8989.
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .map_err(ProcessError::SetGroupsDeny)?;
    }

    config.write_uid_mapping(pid).map_err(|err| {
        tracing::error!("failed to write uid mapping for pid {:?}: {}", pid, err);
        err
    })?;
    config.write_gid_mapping(pid).map_err(|err| {
        tracing::error!("failed to write gid mapping for pid {:?}: {}", pid, err);
        err
    })?;
    Ok(())
}

/// Builds the payload to write to the kernel's `/proc/<pid>/timens_offsets`
/// from the spec's `timeOffsets`.
fn build_timens_offsets(linux: &Linux) -> Option<String> {
    let offsets = linux.time_offsets().as_ref()?;
    if offsets.is_empty() {
        return None;
    }
    let time_ns = linux
        .namespaces()
        .as_ref()?
        .iter()
        .find(|ns| ns.typ() == LinuxNamespaceType::Time)?;
    // Only set offsets when creating a new time namespace (no path to join).
    if time_ns.path().is_some() {
        return None;
    }
    Some(
        offsets
            .iter()
            .map(|(clock_type, offset)| {
                format!(
                    "{clock_type} {} {}",
                    offset.secs().unwrap_or(0),
                    offset.nanosecs().unwrap_or(0)
                )
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// Moves configured network devices from the host to the container's network namespace.
/// This function waits for the init process to join its namespace, then transfers each
/// configured device while preserving network addresses. Returns early if the container
/// runs in the host network namespace.
fn move_network_devices_to_container(
    linux: &Linux,
    init_pid: Pid,
    main_receiver: &mut channel::MainReceiver,
    init_sender: &mut channel::InitSender,
) -> Result<()> {
    // Early return if there are no network devices to move
    let devices = match linux.net_devices() {
        Some(devs) if !devs.is_empty() => devs,
        _ => return Ok(()),
    };

    if let Some(namespaces) = linux.namespaces() {
        // network devices are not moved for containers running in the host network.
        let net_ns = match namespaces
            .iter()
            .find(|ns| ns.typ() == LinuxNamespaceType::Network)
        {
            Some(ns) => ns,
            None => return Ok(()),
        };

        // Wait for the init process to signal that it has joined the network namespace
        // and is ready for network device setup
        main_receiver.wait_for_network_setup_ready()?;

        // the container init process has already joined the provided net namespace,
        // so we can use the process's net ns path directly.
        let default_ns_path = PathBuf::from(format!("/proc/{}/ns/net", init_pid.as_raw()));
        let ns_path = net_ns.path().as_deref().unwrap_or(&default_ns_path);

        // Open the network namespace file and validate it exists before moving devices
        let netns_file = File::open(ns_path).map_err(|err| {
            tracing::error!(
                "failed to open network namespace at {}: {}",
                ns_path.display(),
                err
            );
            ProcessError::Network(err.into())
        })?;
        let netns_fd = netns_file.as_raw_fd();

        // If moving any of the network devices fails, we return an error immediately.
        // The runtime spec requires that the kernel handles moving back any devices
        // that were successfully moved before the failure occurred.
        // See: https://github.com/opencontainers/runtime-spec/blob/27cb0027fd92ef81eda1ea3a8153b8337f56d94a/config-linux.md#namespace-lifecycle-and-container-termination
        let addrs_map = devices
            .iter()
            .map(|(name, net_dev)| {
                let addrs = dev_change_net_namespace(name, netns_fd, net_dev).map_err(|err| {
                    tracing::error!("failed to dev_change_net_namespace: {}", err);
                    err
                })?;
                Ok((name.clone(), addrs))
            })
            .collect::<Result<HashMap<String, Vec<crate::network::cidr::CidrAddress>>>>()?;
        init_sender.move_network_device(addrs_map)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;

    use anyhow::Result;
    use nix::sched::{CloneFlags, unshare};
    use nix::unistd::{self, getgid, getuid};
    use oci_spec::runtime::LinuxIdMappingBuilder;
    use serial_test::serial;

    use super::*;
    use crate::process::channel::{intermediate_channel, main_channel};
    use crate::user_ns::UserNamespaceIDMapper;

    #[test]
    #[serial]
    fn setup_uid_mapping_should_succeed() -> Result<()> {
        let uid_mapping = LinuxIdMappingBuilder::default()
            .host_id(getuid())
            .container_id(0u32)
            .size(1u32)
            .build()?;
        let uid_mappings = vec![uid_mapping];
        let tmp = tempfile::tempdir()?;
        let id_mapper = UserNamespaceIDMapper::new_test(tmp.path().to_path_buf());
        let ns_config = UserNamespaceConfig {
            uid_mappings: Some(uid_mappings),
            privileged: true,
            id_mapper: id_mapper.clone(),
            ..Default::default()
        };
        let (mut parent_sender, mut parent_receiver) = main_channel()?;
        let (mut child_sender, mut child_receiver) = intermediate_channel()?;
        match unsafe { unistd::fork()? } {
            unistd::ForkResult::Parent { child } => {
                parent_receiver.wait_for_mapping_request()?;
                parent_receiver.close()?;

                // In test, we fake the uid path in /proc/{pid}/uid_map, so we
                // need to ensure the path exists before we write the mapping.
                // The path requires the pid we use, so we can only do do after
                // obtaining the child pid here.
                id_mapper.ensure_uid_path(&child)?;
                setup_mapping(&ns_config, child)?;
                let line = fs::read_to_string(id_mapper.get_uid_path(&child))?;
                let split_lines = line.split_whitespace();
                for (act, expect) in split_lines.zip([
                    uid_mapping.container_id().to_string(),
                    uid_mapping.host_id().to_string(),
                    uid_mapping.size().to_string(),
                ]) {
                    assert_eq!(act, expect);
                }
                child_sender.mapping_written()?;
                child_sender.close()?;
            }
            unistd::ForkResult::Child => {
                prctl::set_dumpable(true).unwrap();
                unshare(CloneFlags::CLONE_NEWUSER)?;
                parent_sender.identifier_mapping_request()?;
                parent_sender.close()?;
                child_receiver.wait_for_mapping_ack()?;
                child_receiver.close()?;
                std::process::exit(0);
            }
        }
        Ok(())
    }

    #[test]
    #[serial]
    fn setup_gid_mapping_should_succeed() -> Result<()> {
        let gid_mapping = LinuxIdMappingBuilder::default()
            .host_id(getgid())
            .container_id(0u32)
            .size(1u32)
            .build()?;
        let gid_mappings = vec![gid_mapping];
        let tmp = tempfile::tempdir()?;
        let id_mapper = UserNamespaceIDMapper::new_test(tmp.path().to_path_buf());
        let ns_config = UserNamespaceConfig {
            gid_mappings: Some(gid_mappings),
            id_mapper: id_mapper.clone(),
            ..Default::default()
        };
        let (mut parent_sender, mut parent_receiver) = main_channel()?;
        let (mut child_sender, mut child_receiver) = intermediate_channel()?;
        match unsafe { unistd::fork()? } {
            unistd::ForkResult::Parent { child } => {
                parent_receiver.wait_for_mapping_request()?;
                parent_receiver.close()?;

                // In test, we fake the gid path in /proc/{pid}/gid_map, so we
                // need to ensure the path exists before we write the mapping.
                // The path requires the pid we use, so we can only do do after
                // obtaining the child pid here.
                id_mapper.ensure_gid_path(&child)?;
                setup_mapping(&ns_config, child)?;
                let line = fs::read_to_string(id_mapper.get_gid_path(&child))?;
                let split_lines = line.split_whitespace();
                for (act, expect) in split_lines.zip([
                    gid_mapping.container_id().to_string(),
                    gid_mapping.host_id().to_string(),
                    gid_mapping.size().to_string(),
                ]) {
                    assert_eq!(act, expect);
                }
                assert_eq!(
                    fs::read_to_string(format!("/proc/{}/setgroups", child.as_raw()))?,
                    "deny\n",
                );
                child_sender.mapping_written()?;
                child_sender.close()?;
            }
            unistd::ForkResult::Child => {
                prctl::set_dumpable(true).unwrap();
                unshare(CloneFlags::CLONE_NEWUSER)?;
                parent_sender.identifier_mapping_request()?;
                parent_sender.close()?;
                child_receiver.wait_for_mapping_ack()?;
                child_receiver.close()?;
                std::process::exit(0);
            }
        }
        Ok(())
    }
}
