//! A default cgroup like runc's. Without `linux.cgroupsPath`, libcontainer names the cgroup
//! `:youki:<id>` (a systemd slice spelling) even under cgroupfs. runc's default is `/<id>`
//! below each hierarchy's root. After libcontainer has created the container we rename its
//! cgroup directories (cgroup v1 allows renaming within the same parent, which this is) and
//! record the new path where libcontainer reads it back on kill, pause and delete.

use std::path::Path;

use anyhow::{Context, Result};
use libcontainer::config::YoukiConfig;
use libcontainer::oci_spec::runtime::Spec;

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
pub fn name_up_front(spec: &mut Spec, id: &str) -> bool {
    if super::cgroup_mounts::all()
        .iter()
        .any(|m| m.path.join(id).exists())
    {
        return false;
    }
    let Some(linux) = spec.linux_mut() else {
        return false;
    };
    linux.set_cgroups_path(Some(super::footprint::runc_default_cgroup(id)));
    true
}

/// Renames `:youki:<id>` to `<id>` in every hierarchy where libcontainer made it, then
/// records `/<id>` in the container's saved config. A hierarchy where `<id>` already
/// exists keeps libcontainer's name, and the saved path is left alone in that case so
/// that every later operation still finds the cgroup.
pub fn rename_to_runc_default(container_dir: &Path, id: &str) -> Result<()> {
    let from = super::footprint::libcontainer_default_cgroup(id);
    let from = from.strip_prefix("/").unwrap_or(&from);
    let mut renamed = Vec::new();
    for mount in super::cgroup_mounts::all() {
        let mount = mount.path;
        let src = mount.join(from);
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
    config.cgroup_path = super::footprint::runc_default_cgroup(id);
    config
        .save(container_dir)
        .with_context(|| format!("cannot record the cgroup of container {id}"))?;
    Ok(())
}
