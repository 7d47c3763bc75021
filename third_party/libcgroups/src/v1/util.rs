use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use pathrs::flags::OpenFlags;
// PATCH (runtime): /proc/self files are opened through libcgroups::proc_self.
use procfs::ProcError;
use procfs::process::MountInfo;

use super::ControllerType;
use super::controller_type::CONTROLLERS;

#[derive(thiserror::Error, Debug)]
pub enum V1MountPointError {
    #[error("io error: {0}")]
    Io(#[from] std::io::Error),
    #[error("failed to get mountinfo: {0}")]
    MountInfo(ProcError),
    #[error("could not find mountpoint for {subsystem}")]
    NotFound { subsystem: ControllerType },
    #[error(transparent)]
    Pathrs(#[from] pathrs::error::Error),
}

/// List all cgroup v1 subsystem mount points on the system. This can include unsupported
/// subsystems, comounted controllers and named hierarchies.
pub fn list_subsystem_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    cgroup_mount_points().map(|m| m.to_vec())
}

/// PATCH (runtime, see third_party/README.md): the cgroup v1 mount points of this
/// process, read from /proc/self/mountinfo once per mount namespace instead of once per
/// controller (building a v1 manager makes 8+ lookups, each of which re-read and
/// re-parsed the whole mount table). The cache is keyed by the mount namespace, so a
/// process that enters or creates another one (the container init) reads its own.
fn cgroup_mount_points() -> Result<Arc<Vec<PathBuf>>, V1MountPointError> {
    static CACHE: Mutex<Option<((u64, u64), Arc<Vec<PathBuf>>)>> = Mutex::new(None);
    let ns = mount_namespace_key();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if let (Some(ns), Some((cached_ns, points))) = (ns, cache.as_ref()) {
        if ns == *cached_ns {
            return Ok(Arc::clone(points));
        }
    }
    let points = Arc::new(read_cgroup_mount_points()?);
    *cache = ns.map(|ns| (ns, Arc::clone(&points)));
    Ok(points)
}

/// PATCH (runtime): identifies this process's mount namespace (and root) cheaply: the
/// unique id of the mount at `/` (STATX_MNT_ID_UNIQUE, Linux 6.8+, never reused). A new
/// or another mount namespace has its own copy of the root mount, and pivot_root or a
/// chroot onto another mount changes it too, so the cache is re-read exactly when the
/// mount table this process sees can have been replaced. A `statx` of `/proc/self/ns/mnt`
/// answered the same question at ten times the cost (procfs and nsfs lookups on every
/// call, 30 calls per `run`); it remains the fallback on older kernels.
fn mount_namespace_key() -> Option<(u64, u64)> {
    const STATX_MNT_ID_UNIQUE: u32 = 0x4000;
    // SAFETY: statx fills in a zeroed struct for a NUL-terminated path; it keeps no
    // pointer.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    let rc = unsafe {
        libc::statx(
            libc::AT_FDCWD,
            c"/".as_ptr(),
            libc::AT_NO_AUTOMOUNT,
            STATX_MNT_ID_UNIQUE,
            &mut stx,
        )
    };
    if rc == 0 && stx.stx_mask & STATX_MNT_ID_UNIQUE != 0 {
        // Tagged with u64::MAX, which no nsfs device number is.
        return Some((u64::MAX, stx.stx_mnt_id));
    }
    std::fs::metadata("/proc/self/ns/mnt")
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

fn read_cgroup_mount_points() -> Result<Vec<PathBuf>, V1MountPointError> {
    let reader = BufReader::new(crate::proc_self::open(
        "mountinfo",
        OpenFlags::O_RDONLY | OpenFlags::O_CLOEXEC,
    )?);

    reader
        .lines()
        .map(|lr| {
            lr.map_err(V1MountPointError::Io)
                .and_then(|line| MountInfo::from_line(&line).map_err(V1MountPointError::MountInfo))
        })
        .try_fold(Vec::new(), |mut mount_points, r| {
            r.map(|m| {
                if m.fs_type == "cgroup" {
                    mount_points.push(m.mount_point);
                }
                mount_points
            })
        })
}

/// List the mount points of all currently supported cgroup subsystems.
pub fn list_supported_mount_points() -> Result<HashMap<ControllerType, PathBuf>, V1MountPointError>
{
    let mut mount_paths = HashMap::with_capacity(CONTROLLERS.len());

    for controller in CONTROLLERS {
        if let Ok(mount_point) = get_subsystem_mount_point(controller) {
            mount_paths.insert(controller.to_owned(), mount_point);
        }
    }

    Ok(mount_paths)
}

pub fn get_subsystem_mount_point(subsystem: &ControllerType) -> Result<PathBuf, V1MountPointError> {
    let subsystem_name = subsystem.to_string();
    // PATCH (runtime): the same first-match search over the mount table, on the cached
    // cgroup mount points (see cgroup_mount_points).
    cgroup_mount_points()?
        .iter()
        .find(|mount_point| {
            // Some systems mount net_prio and net_cls in the same directory
            // other systems mount them in their own directories. This
            // should handle both cases.
            match subsystem_name.as_str() {
                "net_cls" => ["net_cls,net_prio", "net_prio,net_cls", "net_cls"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "net_prio" => ["net_cls,net_prio", "net_prio,net_cls", "net_prio"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpu" => ["cpu,cpuacct", "cpu"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                "cpuacct" => ["cpu,cpuacct", "cpuacct"]
                    .iter()
                    .any(|s| mount_point.ends_with(s)),
                _ => mount_point.ends_with(&subsystem_name),
            }
        })
        .cloned()
        .ok_or(V1MountPointError::NotFound {
            subsystem: *subsystem,
        })
}
