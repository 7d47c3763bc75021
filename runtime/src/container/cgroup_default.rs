//! A default cgroup like runc's. Without `linux.cgroupsPath`, libcontainer names the cgroup
//! `:youki:<id>` (a systemd slice spelling) even under cgroupfs. runc's default is `/<id>`
//! below each hierarchy's root. After libcontainer has created the container we rename its
//! cgroup directories (cgroup v1 allows renaming within the same parent, which this is) and
//! record the new path where libcontainer reads it back on kill, pause and delete.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::oci_spec::runtime::Spec;

/// libcontainer's name for a container without a cgroups path.
fn libcontainer_default_name(id: &str) -> String {
    format!(":youki:{id}")
}

/// True when this container's cgroup is ours to name: no cgroupsPath and not systemd.
pub fn applies(spec: &Spec, systemd: bool) -> bool {
    !systemd
        && spec
            .linux()
            .as_ref()
            .is_none_or(|l| l.cgroups_path().is_none())
}

/// Names the cgroup `/<id>` up front, in the spec handed to libcontainer, when no cgroup
/// hierarchy has a `<id>` cgroup yet: libcontainer then creates it under runc's name and
/// records that path itself, which saves renaming every hierarchy's directory and
/// rewriting the saved config afterwards (the renames were about 4% of a `run`'s CPU).
/// Returns false, leaving the spec alone, when `<id>` exists somewhere: the container then
/// gets libcontainer's name and `rename_to_runc_default` keeps it, as before.
///
/// On a pure cgroup v2 host the name is given relative, as runc's default is (the bare
/// id): libcontainer then places it below the parent of the caller's cgroup, as runc does
/// (`/system.slice/<id>` from a service, inside the user's delegated subtree for a
/// rootless caller in `systemd-run --user --scope -p Delegate=yes`). On cgroup v1 hosts,
/// where the runtime runs in each hierarchy's root, relative and `/<id>` are the same.
pub fn name_up_front(spec: &mut Spec, id: &str) -> bool {
    let name = if libcgroups::common::get_cgroup_setup()
        .is_ok_and(|s| matches!(s, libcgroups::common::CgroupSetup::Unified))
    {
        PathBuf::from(id)
    } else {
        PathBuf::from(format!("/{id}"))
    };
    let Ok(placed) = libcgroups::common::resolve_cgroupfs_path(&name) else {
        return false;
    };
    let rel = placed.strip_prefix("/").unwrap_or(&placed);
    if super::cgroup_mounts::all()
        .iter()
        .any(|m| m.path.join(rel).exists())
    {
        return false;
    }
    let Some(linux) = spec.linux_mut() else {
        return false;
    };
    linux.set_cgroups_path(Some(name));
    true
}

/// Renames `:youki:<id>` to `<id>` in every hierarchy where libcontainer made it, then
/// records `/<id>` in the container's saved config. A hierarchy where `<id>` already
/// exists keeps libcontainer's name, and the saved path is left alone in that case so
/// that every later operation still finds the cgroup.
pub fn rename_to_runc_default(container_dir: &Path, id: &str) -> Result<()> {
    let from = libcontainer_default_name(id);
    let mut renamed = Vec::new();
    for mount in super::cgroup_mounts::all() {
        let mount = mount.path;
        let src = mount.join(&from);
        if !src.is_dir() {
            continue;
        }
        let dst = mount.join(id);
        match std::fs::rename(&src, &dst) {
            Ok(()) => renamed.push((src, dst)),
            Err(err) => {
                // Undo what was renamed so all hierarchies agree on one name.
                for (src, dst) in renamed.into_iter().rev() {
                    let _ = std::fs::rename(&dst, &src);
                }
                tracing::warn!(?src, ?dst, %err, "keeping libcontainer's cgroup name");
                return Ok(());
            }
        }
    }
    if renamed.is_empty() {
        return Ok(());
    }
    let mut config = YoukiConfig::load(container_dir)
        .with_context(|| format!("cannot read the saved config of container {id}"))?;
    config.cgroup_path = PathBuf::from(format!("/{id}"));
    config
        .save(container_dir)
        .with_context(|| format!("cannot record the cgroup of container {id}"))?;
    Ok(())
}
