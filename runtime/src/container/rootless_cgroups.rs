//! Rootless containers on a cgroup v1 host. libcontainer's v1 cgroup manager always creates
//! and joins a cgroup, which an unprivileged user cannot do without delegation; runc
//! skips cgroups in that case. We get the same effect without touching libcontainer: the
//! runtime moves itself into a user namespace mapping only its own ids and a private mount
//! namespace where /sys/fs/cgroup is a tmpfs holding an inert mirror of the v1 hierarchy
//! (the same directory and file names, as plain files). libcontainer's manager then
//! "creates" and "joins" a cgroup that limits nothing, as runc's would have been skipped;
//! the container's own user namespace is created beneath ours with the same mapping to the
//! caller's ids. Later commands (state, kill, delete) run outside it and find no cgroup.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC};
use nix::unistd::{access, getegid, geteuid, AccessFlags};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// True when the caller is unprivileged on a v1 (or hybrid) host and cannot create
/// cgroups where libcontainer would.
pub fn needs_hiding() -> bool {
    if geteuid().is_root() {
        return false;
    }
    match statfs(CGROUP_ROOT) {
        Ok(fs) if fs.filesystem_type() == CGROUP2_SUPER_MAGIC => false,
        Ok(_) => ["memory", "cpu", "pids"]
            .iter()
            .map(|c| Path::new(CGROUP_ROOT).join(c))
            .filter(|p| p.exists())
            .any(|p| access(&p, AccessFlags::W_OK).is_err()),
        Err(_) => false,
    }
}

/// One v1 hierarchy to mirror: its mount point, this process's own cgroup directory in it
/// (the container's cgroup mounts bind it when there is no cgroup namespace), and the
/// names (and cpuset values) of the files in its root.
struct Mirror {
    mount: PathBuf,
    own: Option<PathBuf>,
    files: Vec<(String, Vec<u8>)>,
}

/// Each v1 controller mount under /sys/fs/cgroup with the names of the files in its root.
fn v1_mounts_and_files() -> Vec<Mirror> {
    let own = super::cgroup_mounts::own_cgroups();
    super::cgroup_mounts::all()
        .into_iter()
        .filter(|m| m.v1)
        .filter_map(|m| {
            let own_dir = own.iter().find_map(|c| super::cgroup_mounts::dir_of(&m, c));
            // Names, and the values of the cpuset files libcontainer copies from the parent.
            // Nothing else is copied: a mirrored cgroup.procs listing host pids would have
            // libcontainer signal them when it removes the cgroup.
            let files = std::fs::read_dir(&m.path)
                .ok()?
                .flatten()
                .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
                .map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    let value = if name == "cpuset.cpus" || name == "cpuset.mems" {
                        std::fs::read(e.path()).unwrap_or_default()
                    } else {
                        Vec::new()
                    };
                    (name, value)
                })
                .collect();
            Some(Mirror {
                mount: m.path,
                own: own_dir,
                files,
            })
        })
        .collect()
}

/// Enters the private user and mount namespaces described above, with the inert mirror
/// laid out for the cgroup `cgroup_path` (relative to each hierarchy's root). Must run
/// while the process is single-threaded (unshare(CLONE_NEWUSER) requires it).
pub fn hide_cgroup_v1(cgroup_path: &Path) -> Result<()> {
    let mirror = v1_mounts_and_files();
    let uid = geteuid();
    let gid = getegid();
    unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS)
        .context("cannot create a user namespace for a rootless container")?;
    std::fs::write("/proc/self/setgroups", "deny").context("write /proc/self/setgroups")?;
    std::fs::write("/proc/self/uid_map", format!("{uid} {uid} 1\n")).context("write uid_map")?;
    std::fs::write("/proc/self/gid_map", format!("{gid} {gid} 1\n")).context("write gid_map")?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("cannot make the private mount namespace a slave")?;
    mount(
        Some("tmpfs"),
        CGROUP_ROOT,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=755"),
    )
    .context("cannot hide the cgroup v1 hierarchy")?;
    let rel = cgroup_path.strip_prefix("/").unwrap_or(cgroup_path);
    let mut dirs = Vec::new();
    for Mirror { mount, own, files } in mirror {
        for dir in [mount.clone(), mount.join(rel)].into_iter().chain(own) {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot mirror {}", dir.display()))?;
            for (name, value) in &files {
                std::fs::write(dir.join(name), value)
                    .with_context(|| format!("cannot mirror {}", dir.join(name).display()))?;
            }
        }
        dirs.push(mount.join(rel));
    }
    let _ = MIRRORED.set(dirs);
    Ok(())
}

/// The container's mirrored cgroup directories, once `hide_cgroup_v1` has run.
static MIRRORED: std::sync::OnceLock<Vec<PathBuf>> = std::sync::OnceLock::new();

/// Removes the container's mirror so libcontainer's cgroup removal, which would rmdir a
/// directory that on tmpfs still holds files, finds nothing to remove in this process.
pub fn clear_mirror() {
    for dir in MIRRORED.get().into_iter().flatten() {
        let _ = std::fs::remove_dir_all(dir);
    }
}
