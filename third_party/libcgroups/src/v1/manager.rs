use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;
use pathrs::flags::OpenFlags;
// PATCH (runtime): /proc/self files are opened through libcgroups::proc_self.
use procfs::{FromRead, ProcError, ProcessCGroups};

use super::blkio::{Blkio, V1BlkioStatsError};
use super::controller::Controller;
use super::controller_type::CONTROLLERS;
use super::cpu::{Cpu, V1CpuStatsError};
use super::cpuacct::{CpuAcct, V1CpuAcctStatsError};
use super::cpuset::{CpuSet, V1CpuSetControllerError};
use super::devices::{Devices, V1DevicesControllerError};
use super::freezer::{Freezer, V1FreezerControllerError};
use super::hugetlb::{HugeTlb, V1HugeTlbControllerError, V1HugeTlbStatsError};
use super::memory::{Memory, V1MemoryControllerError, V1MemoryStatsError};
use super::network_classifier::NetworkClassifier;
use super::network_priority::NetworkPriority;
use super::perf_event::PerfEvent;
use super::pids::Pids;
use super::util::V1MountPointError;
use super::{ControllerType as CtrlType, util};
use crate::common::{
    self, AnyCgroupManager, CGROUP_PROCS, CgroupManager, ControllerOpt, FreezerState,
    JoinSafelyError, PathBufExt, WrapIoResult, WrappedIoError,
};
use crate::stats::{PidStatsError, Stats, StatsProvider};

/// PATCH (runtime, see third_party/README.md): how long `remove` keeps killing the
/// cgroup's processes and waiting for them to leave.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Manager {
    subsystems: HashMap<CtrlType, PathBuf>,
    /// PATCH (runtime, see third_party/README.md): hierarchies the container's processes
    /// join without any controller being configured there, as runc's cgroupfs manager
    /// does on a v1 host: the `name=systemd` hierarchy (systemd and tools find a
    /// process's unit through it) and, on a hybrid host, the cgroup v2 hierarchy at
    /// /sys/fs/cgroup/unified (a process then shows `0::/<path>`, not `0::/`).
    joined_only: Vec<PathBuf>,
}

#[derive(thiserror::Error, Debug)]
pub enum V1ManagerError {
    #[error("io error: {0}")]
    WrappedIo(#[from] WrappedIoError),
    #[error("mount point error: {0}")]
    MountPoint(#[from] V1MountPointError),
    #[error("proc error: {0}")]
    Proc(#[from] ProcError),
    #[error("while joining paths: {0}")]
    JoinSafely(#[from] JoinSafelyError),
    #[error("cgroup {0} is required to fulfill the request, but is not supported by this system")]
    CGroupRequired(CtrlType),
    #[error("subsystem does not exist")]
    SubsystemDoesNotExist,
    // PATCH (runtime): linux.resources.unified given on a cgroup v1 host.
    #[error("invalid configuration: cannot use unified on cgroup v1")]
    UnifiedOnV1,
    // PATCH (runtime): join_existing found no cgroup to join.
    #[error("cgroup {0} does not exist")]
    MissingCgroup(PathBuf),
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),

    #[error(transparent)]
    BlkioController(WrappedIoError),
    #[error(transparent)]
    CpuController(WrappedIoError),
    #[error(transparent)]
    CpuAcctController(WrappedIoError),
    #[error(transparent)]
    CpuSetController(#[from] V1CpuSetControllerError),
    #[error(transparent)]
    FreezerController(#[from] V1FreezerControllerError),
    // PATCH (runtime): the device rules' own errors (crate::device_rules).
    #[error(transparent)]
    DevicesController(#[from] V1DevicesControllerError),
    #[error(transparent)]
    HugeTlbController(#[from] V1HugeTlbControllerError),
    #[error(transparent)]
    MemoryController(#[from] V1MemoryControllerError),
    #[error(transparent)]
    PidsController(WrappedIoError),

    #[error(transparent)]
    BlkioStats(#[from] V1BlkioStatsError),
    #[error(transparent)]
    CpuStats(#[from] V1CpuStatsError),
    #[error(transparent)]
    CpuAcctStats(#[from] V1CpuAcctStatsError),
    #[error(transparent)]
    PidsStats(#[from] PidStatsError),
    #[error(transparent)]
    HugeTlbStats(#[from] V1HugeTlbStatsError),
    #[error(transparent)]
    MemoryStats(#[from] V1MemoryStatsError),
}

impl Manager {
    /// Constructs a new cgroup manager with cgroups_path being relative to the root of the subsystem
    pub fn new(cgroup_path: &Path) -> Result<Self, V1ManagerError> {
        // PATCH (runtime, see third_party/README.md): /proc/self/cgroup is read once per
        // manager instead of once per controller. A failed read skips every controller,
        // as each per-controller read failing did.
        let own_cgroups =
            crate::proc_self::open("cgroup", OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC)
                .map_err(V1ManagerError::from)
                .and_then(|f| Ok(ProcessCGroups::from_read(f)?.0));
        let mut subsystems = HashMap::new();
        for subsystem in CONTROLLERS {
            let path = match &own_cgroups {
                Ok(own) => Self::get_subsystem_path(cgroup_path, subsystem, own),
                Err(_) => Err(V1ManagerError::SubsystemDoesNotExist),
            };
            if let Ok(subsystem_path) = path {
                subsystems.insert(*subsystem, subsystem_path);
            } else {
                tracing::warn!("cgroup {} not supported on this system", subsystem);
            }
        }
        let joined_only = match &own_cgroups {
            Ok(own) => Self::joined_only_paths(cgroup_path, own),
            Err(_) => Vec::new(),
        };

        Ok(Manager {
            subsystems,
            joined_only,
        })
    }

    /// PATCH (runtime): the container's directories in the `name=systemd` hierarchy and,
    /// on a hybrid host, in the unified one (see `joined_only`); each relative to this
    /// process's own cgroup there when `cgroup_path` is empty, as for the controllers.
    fn joined_only_paths(cgroup_path: &Path, own: &[procfs::ProcessCGroup]) -> Vec<PathBuf> {
        let mut mounts = Vec::new();
        if let Some(systemd) = util::list_subsystem_mount_points()
            .unwrap_or_default()
            .into_iter()
            .find(|m| m.file_name().is_some_and(|n| n == "systemd"))
        {
            let mine = own
                .iter()
                .find(|c| c.controllers.iter().any(|n| n == "name=systemd"));
            mounts.push((systemd, mine));
        }
        // The host's layout, looked up once per process (two statfs calls each time).
        static HYBRID: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        let hybrid = *HYBRID.get_or_init(|| {
            matches!(
                common::get_cgroup_setup(),
                Ok(common::CgroupSetup::Hybrid)
            )
        });
        if hybrid {
            let mine = own.iter().find(|c| c.hierarchy == 0);
            mounts.push((Path::new(common::DEFAULT_CGROUP_ROOT).join("unified"), mine));
        }
        mounts
            .into_iter()
            .filter_map(|(mount, mine)| {
                if cgroup_path.as_os_str().is_empty() {
                    mount.join_safely(Path::new(&mine?.pathname)).ok()
                } else {
                    mount.join_safely(cgroup_path).ok()
                }
            })
            .collect()
    }

    fn get_subsystem_path(
        cgroup_path: &Path,
        subsystem: &CtrlType,
        own_cgroups: &[procfs::ProcessCGroup],
    ) -> Result<PathBuf, V1ManagerError> {
        tracing::debug!("Get path for subsystem: {}", subsystem);
        let mount_point = util::get_subsystem_mount_point(subsystem)?;

        let cgroup = own_cgroups
            .iter()
            .find(|c| c.controllers.contains(&subsystem.to_string()))
            .ok_or(V1ManagerError::SubsystemDoesNotExist)?;

        let p = if cgroup_path.as_os_str().is_empty() {
            mount_point.join_safely(Path::new(&cgroup.pathname))?
        } else {
            mount_point.join_safely(cgroup_path)?
        };

        Ok(p)
    }

    fn get_required_controllers(
        &self,
        controller_opt: &ControllerOpt,
    ) -> Result<HashMap<&CtrlType, &PathBuf>, V1ManagerError> {
        let mut required_controllers = HashMap::new();

        for controller in CONTROLLERS {
            let required = match controller {
                CtrlType::Cpu => Cpu::needs_to_handle(controller_opt).is_some(),
                CtrlType::CpuAcct => CpuAcct::needs_to_handle(controller_opt).is_some(),
                CtrlType::CpuSet => CpuSet::needs_to_handle(controller_opt).is_some(),
                CtrlType::Devices => Devices::needs_to_handle(controller_opt).is_some(),
                CtrlType::HugeTlb => HugeTlb::needs_to_handle(controller_opt).is_some(),
                CtrlType::Memory => Memory::needs_to_handle(controller_opt).is_some(),
                CtrlType::Pids => Pids::needs_to_handle(controller_opt).is_some(),
                CtrlType::PerfEvent => PerfEvent::needs_to_handle(controller_opt).is_some(),
                CtrlType::Blkio => Blkio::needs_to_handle(controller_opt).is_some(),
                CtrlType::NetworkPriority => {
                    NetworkPriority::needs_to_handle(controller_opt).is_some()
                }
                CtrlType::NetworkClassifier => {
                    NetworkClassifier::needs_to_handle(controller_opt).is_some()
                }
                CtrlType::Freezer => Freezer::needs_to_handle(controller_opt).is_some(),
            };

            if required {
                if let Some(subsystem_path) = self.subsystems.get(controller) {
                    required_controllers.insert(controller, subsystem_path);
                } else {
                    return Err(V1ManagerError::CGroupRequired(*controller));
                }
            }
        }

        Ok(required_controllers)
    }

    pub fn any(self) -> AnyCgroupManager {
        AnyCgroupManager::V1(self)
    }
}

impl CgroupManager for Manager {
    type Error = V1ManagerError;

    fn get_all_pids(&self) -> Result<Vec<Pid>, Self::Error> {
        let devices = self.subsystems.get(&CtrlType::Devices);
        if let Some(p) = devices {
            Ok(common::get_all_pids(p)?)
        } else {
            Err(V1ManagerError::SubsystemDoesNotExist)
        }
    }

    fn add_task(&self, pid: Pid) -> Result<(), Self::Error> {
        for (ctrl_type, cgroup_path) in &self.subsystems {
            match ctrl_type {
                CtrlType::Cpu => Cpu::add_task(pid, cgroup_path)?,
                CtrlType::CpuAcct => CpuAcct::add_task(pid, cgroup_path)?,
                CtrlType::CpuSet => CpuSet::add_task(pid, cgroup_path)?,
                CtrlType::Devices => Devices::add_task(pid, cgroup_path)?,
                CtrlType::HugeTlb => HugeTlb::add_task(pid, cgroup_path)?,
                CtrlType::Memory => Memory::add_task(pid, cgroup_path)?,
                CtrlType::Pids => Pids::add_task(pid, cgroup_path)?,
                CtrlType::PerfEvent => PerfEvent::add_task(pid, cgroup_path)?,
                CtrlType::Blkio => Blkio::add_task(pid, cgroup_path)?,
                CtrlType::NetworkPriority => NetworkPriority::add_task(pid, cgroup_path)?,
                CtrlType::NetworkClassifier => NetworkClassifier::add_task(pid, cgroup_path)?,
                CtrlType::Freezer => Freezer::add_task(pid, cgroup_path)?,
            }
        }
        // PATCH (runtime): and the hierarchies joined without controllers.
        for cgroup_path in &self.joined_only {
            fs::create_dir_all(cgroup_path).wrap_create_dir(cgroup_path)?;
            // PATCH (runtime): name=systemd is a v1 hierarchy: the caller joins it itself
            // through `tasks` (self_attach.rs); the unified one (v2) has no such file.
            if cgroup_path.join("tasks").exists() {
                super::self_attach::add_task(pid, cgroup_path)?;
            } else {
                common::write_cgroup_file(cgroup_path.join(CGROUP_PROCS), pid)?;
            }
        }

        Ok(())
    }

    /// PATCH (runtime): `freezer.state` FROZEN with `freezer.self_freezing` not 0 (a
    /// cgroup frozen only through an ancestor reads FROZEN too); FREEZING is waited out
    /// briefly, then counted as frozen. No freezer cgroup, no freezer: not frozen.
    fn is_frozen(&self) -> Result<bool, Self::Error> {
        let Some(dir) = self.subsystems.get(&CtrlType::Freezer) else {
            return Ok(false);
        };
        for _ in 0..100 {
            let state = match fs::read_to_string(dir.join("freezer.state")) {
                Ok(s) => s,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(WrappedIoError::Read { err: e, path: dir.join("freezer.state") }.into()),
            };
            match state.trim() {
                "FROZEN" => {
                    let own = fs::read_to_string(dir.join("freezer.self_freezing"))
                        .unwrap_or_else(|_| "1".into());
                    return Ok(own.trim() != "0");
                }
                "FREEZING" => std::thread::sleep(Duration::from_millis(1)),
                _ => return Ok(false),
            }
        }
        Ok(true)
    }

    /// PATCH (runtime): every hierarchy's cgroup must exist before the task joins any.
    fn join_existing(&self, pid: Pid) -> Result<(), Self::Error> {
        let all = || self.subsystems.values().chain(&self.joined_only);
        if let Some(missing) = all().find(|p| !p.is_dir()) {
            return Err(V1ManagerError::MissingCgroup(missing.clone()));
        }
        // PATCH (runtime, see third_party/README.md): a single-threaded caller joining
        // itself (an exec'd process) goes through `tasks`, without the attach grace period
        // (self_attach.rs); a v2 hierarchy joined on a hybrid host has no `tasks` and takes
        // the `cgroup.procs` write.
        for cgroup_path in all() {
            super::self_attach::add_task(pid, cgroup_path)?;
        }
        Ok(())
    }

    /// PATCH (runtime, see third_party/README.md): on a hybrid host, the container's
    /// directory in the unified hierarchy (joined since 0304).
    fn v2_join_dir(&self) -> Option<PathBuf> {
        let unified = Path::new(common::DEFAULT_CGROUP_ROOT).join("unified");
        self.joined_only
            .iter()
            .find(|p| p.starts_with(&unified))
            .cloned()
    }

    /// PATCH (runtime, see third_party/README.md): as join_existing, without writing the
    /// unified hierarchy's `cgroup.procs` (the process was cloned into it).
    fn join_existing_but_v2(&self, pid: Pid) -> Result<(), Self::Error> {
        let all = || self.subsystems.values().chain(&self.joined_only);
        if let Some(missing) = all().find(|p| !p.is_dir()) {
            return Err(V1ManagerError::MissingCgroup(missing.clone()));
        }
        let v2 = self.v2_join_dir();
        for cgroup_path in all().filter(|p| Some(*p) != v2.as_ref()) {
            super::self_attach::add_task(pid, cgroup_path)?;
        }
        Ok(())
    }

    fn apply(&self, controller_opt: &ControllerOpt) -> Result<(), Self::Error> {
        // PATCH (runtime): `unified` holds cgroup v2 files, which a v1 host does not have;
        // runc refuses it (an empty map is fine) instead of ignoring it.
        if controller_opt
            .resources
            .unified()
            .as_ref()
            .is_some_and(|u| !u.is_empty())
        {
            return Err(V1ManagerError::UnifiedOnV1);
        }
        for (ctrl_type, cgroup_path) in self.get_required_controllers(controller_opt)? {
            match ctrl_type {
                CtrlType::Cpu => Cpu::apply(controller_opt, cgroup_path)?,
                CtrlType::CpuAcct => CpuAcct::apply(controller_opt, cgroup_path)?,
                CtrlType::CpuSet => CpuSet::apply(controller_opt, cgroup_path)?,
                CtrlType::Devices => Devices::apply(controller_opt, cgroup_path)?,
                CtrlType::HugeTlb => HugeTlb::apply(controller_opt, cgroup_path)?,
                CtrlType::Memory => Memory::apply(controller_opt, cgroup_path)?,
                CtrlType::Pids => Pids::apply(controller_opt, cgroup_path)?,
                CtrlType::PerfEvent => PerfEvent::apply(controller_opt, cgroup_path)?,
                CtrlType::Blkio => Blkio::apply(controller_opt, cgroup_path)?,
                CtrlType::NetworkPriority => NetworkPriority::apply(controller_opt, cgroup_path)?,
                CtrlType::NetworkClassifier => {
                    NetworkClassifier::apply(controller_opt, cgroup_path)?
                }
                CtrlType::Freezer => Freezer::apply(controller_opt, cgroup_path)?,
            }
        }

        Ok(())
    }

    fn remove(&self) -> Result<(), Self::Error> {
        for cgroup_path in self.subsystems.values() {
            if cgroup_path.exists() {
                tracing::debug!("remove cgroup {:?}", cgroup_path);
                // PATCH (runtime, see third_party/README.md): processes forked meanwhile
                // and slow exits no longer leave the cgroup (and the container) behind.
                common::kill_and_remove_tree(cgroup_path, REMOVE_TIMEOUT)?;
            }
        }

        // PATCH (runtime): the hierarchies joined without controllers; their processes
        // are the same ones, killed above.
        for cgroup_path in &self.joined_only {
            if cgroup_path.exists() {
                common::delete_with_retry(cgroup_path, 4, Duration::from_millis(100))?;
            }
        }

        Ok(())
    }

    fn freeze(&self, state: FreezerState) -> Result<(), Self::Error> {
        let controller_opt = ControllerOpt {
            resources: &Default::default(),
            freezer_state: Some(state),
            oom_score_adj: None,
            disable_oom_killer: false,
        };
        Ok(Freezer::apply(
            &controller_opt,
            self.subsystems
                .get(&CtrlType::Freezer)
                .ok_or(V1ManagerError::SubsystemDoesNotExist)?,
        )?)
    }

    fn stats(&self) -> Result<Stats, Self::Error> {
        let mut stats = Stats::default();

        for (ctrl_type, cgroup_path) in &self.subsystems {
            match ctrl_type {
                CtrlType::Cpu => stats.cpu.throttling = Cpu::stats(cgroup_path)?,
                CtrlType::CpuAcct => stats.cpu.usage = CpuAcct::stats(cgroup_path)?,
                CtrlType::Pids => stats.pids = Pids::stats(cgroup_path)?,
                CtrlType::HugeTlb => stats.hugetlb = HugeTlb::stats(cgroup_path)?,
                CtrlType::Blkio => stats.blkio = Blkio::stats(cgroup_path)?,
                CtrlType::Memory => stats.memory = Memory::stats(cgroup_path)?,
                _ => continue,
            }
        }

        Ok(stats)
    }
}
