use std::fs;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use oci_spec::runtime::Spec;
use user_ns::UserNamespaceConfig;

use super::builder::ContainerBuilder;
use super::builder_impl::ContainerBuilderImpl;
use super::mount_validation::validate_idmapped_mounts;
use super::{Container, ContainerStatus};
use crate::config::YoukiConfig;
use crate::error::{ErrInvalidSpec, LibcontainerError, MissingSpecError};
use crate::notify_socket::NOTIFY_FILE;
use crate::process::args::ContainerType;
use crate::syscall::syscall::create_syscall;
use crate::validator::Validator;
// PATCH (runtime): apparmor is checked by crate::lsm now.
use crate::{tty, user_ns, utils};

// Builder that can be used to configure the properties of a new container
pub struct InitContainerBuilder {
    base: ContainerBuilder,
    bundle: PathBuf,
    use_systemd: bool,
    detached: bool,
    no_pivot: bool,
    as_sibling: bool,
    /// PATCH (runtime): the bundle's spec, already read by the caller.
    spec: Option<Spec>,
}

impl InitContainerBuilder {
    /// Generates the base configuration for a new container from which
    /// configuration methods can be chained
    pub(super) fn new(builder: ContainerBuilder, bundle: PathBuf) -> Self {
        Self {
            base: builder,
            bundle,
            use_systemd: true,
            detached: true,
            no_pivot: false,
            as_sibling: false,
            spec: None,
        }
    }

    /// Sets if systemd should be used for managing cgroups
    pub fn with_systemd(mut self, should_use: bool) -> Self {
        self.use_systemd = should_use;
        self
    }

    /// Sets if the init process should be run as a child or a sibling of
    /// the calling process
    pub fn as_sibling(mut self, as_sibling: bool) -> Self {
        self.as_sibling = as_sibling;
        self
    }

    pub fn with_detach(mut self, detached: bool) -> Self {
        self.detached = detached;
        self
    }

    pub fn with_no_pivot(mut self, no_pivot: bool) -> Self {
        self.no_pivot = no_pivot;
        self
    }

    /// Overrides the OCI bundle path for the container
    ///                                                                                                                                                                             
    /// Replaces the bundle set by [`ContainerBuilder::as_init`].  
    pub fn with_bundle<P: Into<PathBuf>>(mut self, bundle: P) -> Self {
        self.bundle = bundle.into();
        self
    }

    /// PATCH (runtime, see third_party/README.md): uses `spec` as the bundle's
    /// config.json instead of reading and parsing the file again, for a caller that has
    /// just loaded it from the same bundle. It is validated and its rootfs canonicalized
    /// exactly as a loaded one.
    pub fn with_spec(mut self, spec: Spec) -> Self {
        self.spec = Some(spec);
        self
    }

    /// Creates a new container
    pub fn build(mut self) -> Result<Container, LibcontainerError> {
        let mut spec = self.load_spec()?;
        // PATCH (runtime, see third_party/README.md): the systemd cgroup manager needs a
        // systemd to talk to; runc refuses it up front with these words. Upstream ignored
        // the request on cgroup v1 and ran the container under cgroupfs.
        let systemd_running =
            std::fs::symlink_metadata("/run/systemd/system").is_ok_and(|m| m.is_dir());
        if self.use_systemd && !systemd_running {
            return Err(LibcontainerError::OtherCgroup(
                "systemd not running on this host, cannot use systemd cgroups manager".into(),
            ));
        }
        // PATCH (runtime, see third_party/README.md): runc refuses a private root
        // propagation without pivot_root.
        if self.no_pivot
            && crate::rootfs::propagation::RootPropagation::is_private(
                spec.linux()
                    .as_ref()
                    .and_then(|l| l.rootfs_propagation().as_deref()),
            )
        {
            Err(ErrInvalidSpec::PrivateRootfsPropagationWithoutPivot)?;
        }
        // PATCH (runtime, see third_party/README.md): with the cgroupfs driver a relative
        // cgroups path, the default name included, is resolved once, here, to where runc
        // puts it on cgroup v2 (below the parent of the caller's cgroup). The absolute
        // result is what the saved config records and every later command uses.
        if !self.use_systemd {
            if let Some(linux) = spec.linux_mut() {
                let path = crate::utils::get_cgroup_path(
                    linux.cgroups_path(),
                    &self.base.container_id,
                    false,
                );
                let resolved = libcgroups::common::resolve_cgroupfs_path(&path)
                    .map_err(|err| LibcontainerError::OtherCgroup(err.to_string()))?;
                if resolved != path {
                    linux.set_cgroups_path(Some(resolved));
                }
            }
        }
        // validate terminal field against console socket presence before any side effects
        // (mirrors runc's checkTerminal called at the top of runner.run())
        self.base.check_terminal(&spec, self.detached)?;
        self.check_cgroup(&spec)?;

        let container_dir = self.create_container_dir()?;

        let mut container = self.create_container_state(&container_dir)?;
        container
            .set_systemd(self.use_systemd)
            .set_annotations(spec.annotations().clone());

        let notify_path = container_dir.join(NOTIFY_FILE);
        // convert path of root file system of the container to absolute path
        let rootfs = fs::canonicalize(spec.root().as_ref().ok_or(MissingSpecError::Root)?.path())
            .map_err(LibcontainerError::OtherIO)?;

        // if socket file path is given in commandline options,
        // get file descriptors of console socket
        let csocketfd = if let Some(console_socket) = &self.base.console_socket {
            Some(tty::setup_console_socket(
                &container_dir,
                console_socket,
                "console-socket",
            )?)
        } else {
            None
        };

        let user_ns_config = UserNamespaceConfig::new(&spec)?;

        // PATCH (runtime): the default cgroup's name depends on the driver, which
        // ContainerBuilderImpl forces to systemd with a user namespace.
        let config =
            YoukiConfig::from_spec(&spec, container.id(), self.use_systemd || user_ns_config.is_some())?;
        config.save(&container_dir).map_err(|err| {
            tracing::error!(?container_dir, "failed to save config: {}", err);
            err
        })?;

        let mut builder_impl = ContainerBuilderImpl {
            container_type: ContainerType::InitContainer,
            syscall: self.base.syscall,
            container_id: self.base.container_id,
            pid_file: self.base.pid_file,
            console_socket: csocketfd,
            use_systemd: self.use_systemd,
            spec: Rc::new(spec),
            rootfs,
            user_ns_config,
            notify_path,
            container: Some(container.clone()),
            joined_container: None,
            preserve_fds: self.base.preserve_fds,
            detached: self.detached,
            executor: self.base.executor,
            no_pivot: self.no_pivot,
            stdin: self.base.stdin,
            stdout: self.base.stdout,
            stderr: self.base.stderr,
            as_sibling: self.as_sibling,
            sub_cgroup_path: None,
            process_label: None,
        };

        builder_impl.create()?;

        container.refresh_state()?;

        Ok(container)
    }

    /// PATCH (runtime, see third_party/README.md): what runc's factory checks before it
    /// creates anything. A frozen cgroup is refused ("container's cgroup unexpectedly
    /// frozen"): the init would stay frozen and create would wait for it forever. A
    /// cgroup that already holds processes is shared with them, which runc 1.1 allows
    /// with a warning ("container's cgroup is not empty: N process(es) found"), given
    /// here to the user under the `user_warning` tracing target. Nothing is made or
    /// removed: a cgroup that cannot be inspected is left to create to report.
    fn check_cgroup(&self, spec: &Spec) -> Result<(), LibcontainerError> {
        use libcgroups::common::CgroupManager;
        let Some(linux) = spec.linux() else {
            return Ok(());
        };
        let new_user_ns = linux.namespaces().as_ref().is_some_and(|nss| {
            nss.iter()
                .any(|ns| ns.typ() == oci_spec::runtime::LinuxNamespaceType::User && ns.path().is_none())
        });
        let systemd = self.use_systemd || new_user_ns;
        let cgroup_path =
            utils::get_cgroup_path(linux.cgroups_path(), &self.base.container_id, systemd);
        let Ok(manager) =
            libcgroups::common::create_cgroup_manager(libcgroups::common::CgroupConfig {
                cgroup_path,
                systemd_cgroup: systemd,
                container_name: self.base.container_id.clone(),
            })
        else {
            return Ok(());
        };
        if manager.is_frozen().unwrap_or(false) {
            return Err(LibcontainerError::Other(
                "container's cgroup unexpectedly frozen".into(),
            ));
        }
        if let Ok(pids) = manager.get_all_pids() {
            if !pids.is_empty() {
                tracing::warn!(
                    target: "user_warning",
                    "container's cgroup is not empty: {} process(es) found",
                    pids.len()
                );
            }
        }
        Ok(())
    }

    fn create_container_dir(&self) -> Result<PathBuf, LibcontainerError> {
        let container_dir = self.base.root_path.join(&self.base.container_id);
        tracing::debug!("container directory will be {:?}", container_dir);

        if container_dir.exists() {
            tracing::error!(id = self.base.container_id, dir = ?container_dir, "container already exists");
            return Err(LibcontainerError::Exist);
        }

        // PATCH (runtime, see third_party/README.md): mode 0711 as runc, whatever the
        // umask: others may pass through (a user-namespaced init reaches files handed to
        // it), not list it or read the state (pid, bundle, annotations).
        {
            use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o711)
                .create(&container_dir)
                .and_then(|()| {
                    fs::set_permissions(&container_dir, fs::Permissions::from_mode(0o711))
                })
                .map_err(|err| {
                    tracing::error!(
                        ?container_dir,
                        "failed to create container directory: {}",
                        err
                    );
                    LibcontainerError::OtherIO(err)
                })?;
        }

        Ok(container_dir)
    }

    fn load_spec(&mut self) -> Result<Spec, LibcontainerError> {
        let mut spec = match self.spec.take() {
            Some(spec) => spec,
            // PATCH (runtime): unknown capability names are ignored, as runc does.
            None => crate::capabilities::load_spec(&self.bundle.join("config.json"))?,
        };
        Self::validate_spec(&spec)?;

        spec.canonicalize_rootfs(&self.bundle).map_err(|err| {
            tracing::error!(bundle = ?self.bundle, "failed to canonicalize rootfs: {}", err);
            err
        })?;
        // PATCH (runtime, see third_party/README.md): a relative bind-mount source is
        // relative to the bundle, as in runc (which works in the bundle directory); it
        // used to be looked up from wherever the caller happened to be.
        if let Some(mounts) = spec.mounts_mut() {
            for m in mounts.iter_mut() {
                let relative = m.source().as_ref().filter(|s| s.is_relative()).cloned();
                if let (Some(source), true) = (relative, crate::rootfs::utils::is_bind(m)) {
                    m.set_source(Some(self.bundle.join(source)));
                }
            }
        }

        Ok(spec)
    }

    fn validate_spec(spec: &Spec) -> Result<(), LibcontainerError> {
        let version = spec.version();
        if !version.starts_with("1.") {
            tracing::error!(
                "runtime spec has incompatible version '{}'. Only 1.X.Y is supported",
                spec.version()
            );
            Err(ErrInvalidSpec::UnsupportedVersion)?;
        }

        Validator::validate_spec(spec)?;

        // PATCH (runtime): the AppArmor check is crate::lsm's, in Validator::validate_spec
        // (this one failed with "io error: No such file or directory" without AppArmor).

        let syscall = create_syscall();

        if let Some(mounts) = spec.mounts() {
            utils::validate_mount_options(mounts)?;
            validate_idmapped_mounts(mounts, spec.linux().as_ref(), &*syscall)?;
        }

        utils::validate_spec_for_new_user_ns(spec, &*syscall)?;
        utils::validate_spec_for_net_devices(spec, &*syscall)
            .map_err(LibcontainerError::NetDevicesError)?;

        Ok(())
    }

    fn create_container_state(&self, container_dir: &Path) -> Result<Container, LibcontainerError> {
        let container = Container::new(
            &self.base.container_id,
            ContainerStatus::Creating,
            None,
            &self.bundle,
            container_dir,
        )?;
        container.save()?;
        Ok(container)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::container::builder::ContainerBuilder;
    use crate::syscall::syscall::SyscallType;

    #[test]
    fn test_with_bundle() {
        let builder = ContainerBuilder::new("test-id".to_owned(), SyscallType::default())
            .as_init("/original/bundle")
            .with_bundle("/new/bundle");

        assert_eq!(builder.bundle, PathBuf::from("/new/bundle"));
    }
}
