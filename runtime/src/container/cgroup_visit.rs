//! `restore` runs CRIU from inside the container's cgroup, as runc does: CRIU forks the
//! restored tasks, so they start there, and the cgroup exists with its limits before any
//! of them runs. rust-criu spawns CRIU itself (there is no pid to move beforehand), so the
//! runtime visits the cgroup: it moves itself in, CRIU inherits the placement, and it
//! moves itself back to where it came from afterwards (also when dropped, so no error
//! path leaves the runtime inside a cgroup that is about to be removed).

use std::path::PathBuf;

use anyhow::{Context, Result};
use libcgroups::common::{AnyCgroupManager, CgroupManager, ControllerOpt};
use libcontainer::oci_spec::runtime::LinuxResources;
use nix::unistd::Pid;

use super::cgroup_mounts;

/// The runtime's stay in a container's cgroup.
pub struct CgroupVisit {
    /// Where the runtime was in every hierarchy before the visit (the directory, for
    /// going back).
    home: Vec<(cgroup_mounts::OwnCgroup, PathBuf)>,
    left: bool,
}

impl CgroupVisit {
    /// Creates the cgroup (joining it is how libcgroups creates one), moves the runtime in
    /// and applies the resource limits.
    pub fn enter(manager: &AnyCgroupManager, resources: Option<&LinuxResources>) -> Result<Self> {
        let mounts = cgroup_mounts::all();
        let home = cgroup_mounts::own_cgroups()
            .into_iter()
            .filter_map(|own| {
                let dir = mounts.iter().find_map(|m| cgroup_mounts::dir_of(m, &own))?;
                Some((own, dir))
            })
            .collect();
        let mut visit = Self { home, left: false };
        manager
            .add_task(Pid::this())
            .map_err(|e| anyhow::anyhow!("{e}"))
            .context("cannot create the container's cgroup")?;
        {
            // As create (third_party patch 0100): the device cgroup always gets runc's rule
            // set, also when the config lists no devices or no resources.
            let mut resources = resources.cloned().unwrap_or_default();
            if resources.devices().is_none() {
                resources.set_devices(Some(Vec::new()));
            }
            let opts = ControllerOpt {
                resources: &resources,
                freezer_state: None,
                oom_score_adj: None,
                // As create sets it (runc applies the whole config on restore).
                disable_oom_killer: resources
                    .memory()
                    .as_ref()
                    .and_then(|m| m.disable_oom_killer())
                    .unwrap_or(false),
            };
            if let Err(e) = manager.apply(&opts) {
                visit.leave();
                return Err(anyhow::anyhow!("{e}"))
                    .context("cannot apply the container's cgroup limits");
            }
        }
        Ok(visit)
    }

    /// CRIU's `cgroup-root` for each controller the visit moved the runtime into: the
    /// restored tasks' cgroups are re-rooted there (runc passes the same).
    pub fn criu_roots(&self) -> Vec<(String, PathBuf)> {
        cgroup_mounts::own_cgroups()
            .into_iter()
            .filter(|own| !own.controllers.is_empty() && self.moved(own))
            .flat_map(|own| {
                let path = own.path;
                own.controllers.into_iter().map(move |c| (c, path.clone()))
            })
            .collect()
    }

    /// Whether this hierarchy's cgroup differs from the one the runtime came from.
    fn moved(&self, now: &cgroup_mounts::OwnCgroup) -> bool {
        !self
            .home
            .iter()
            .any(|(was, _)| was.controllers == now.controllers && was.path == now.path)
    }

    /// Moves the runtime back to its own cgroups (best effort: a hierarchy that refuses
    /// keeps it, and removing the container's cgroup then reports that).
    pub fn leave(&mut self) {
        if self.left {
            return;
        }
        self.left = true;
        let pid = std::process::id().to_string();
        let now = cgroup_mounts::own_cgroups();
        let moved_home = self.home.iter().filter(|(was, _)| {
            now.iter()
                .any(|n| n.controllers == was.controllers && n.path != was.path)
        });
        for (_, dir) in moved_home {
            if let Err(err) = std::fs::write(dir.join("cgroup.procs"), &pid) {
                tracing::warn!(?dir, %err, "cannot move the runtime back to its cgroup");
            }
        }
    }
}

impl Drop for CgroupVisit {
    fn drop(&mut self) {
        self.leave();
    }
}
