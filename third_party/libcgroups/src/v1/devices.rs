use std::path::Path;

use super::controller::Controller;
use crate::common::{self, ControllerOpt, WrappedIoError};
// PATCH (runtime, see third_party/README.md): the rules come from crate::device_rules
// (runc's semantics: deny-all, the config's rules, runc's defaults) and only the
// difference to what the cgroup holds is written, then checked.
use crate::device_rules::{DeviceRuleError, Emulator};

pub struct Devices {}

#[derive(thiserror::Error, Debug)]
pub enum V1DevicesControllerError {
    #[error(transparent)]
    Io(#[from] WrappedIoError),
    #[error("linux.resources.devices: {0}")]
    Rule(#[from] DeviceRuleError),
    #[error("the device cgroup {path} does not hold the rules written to it: it lists {found:?}")]
    Mismatch { path: String, found: String },
}

impl Controller for Devices {
    type Error = V1DevicesControllerError;
    type Resource = ();

    /// `resources.devices` `None` leaves the cgroup's rules alone (an `update` that does
    /// not name devices); `Some` (at create, even empty) sets exactly runc's rule set.
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error> {
        tracing::debug!("Apply Devices cgroup config");
        let Some(config) = controller_opt.resources.devices().as_ref() else {
            return Ok(());
        };
        // As runc: inside a user namespace the device cgroup cannot be written (and a
        // rootless runtime's cgroups are not real ones).
        if running_in_user_namespace() {
            return Ok(());
        }
        let target = Emulator::for_container(config)?;
        Self::set(cgroup_root, &target)
    }

    // always needs to be called due to default devices
    fn needs_to_handle<'a>(_controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource> {
        Some(&())
    }
}

/// Whether this process's user namespace is not the initial one (its uid_map is not the
/// identity over all ids).
fn running_in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

impl Devices {
    /// Takes the cgroup from what its devices.list shows to `target`, then reads it back.
    fn set(cgroup_root: &Path, target: &Emulator) -> Result<(), V1DevicesControllerError> {
        let list_path = cgroup_root.join("devices.list");
        let read_list = || -> Result<Emulator, V1DevicesControllerError> {
            let text = std::fs::read_to_string(&list_path).map_err(|err| WrappedIoError::Read {
                err,
                path: list_path.clone(),
            })?;
            Ok(Emulator::from_list(&text)?)
        };
        let current = read_list()?;
        for write in current.transition(target) {
            let file = if write.allow {
                "devices.allow"
            } else {
                "devices.deny"
            };
            common::write_cgroup_file_str(cgroup_root.join(file), &write.line())?;
        }
        let after = read_list()?;
        let holds = if target.default_allow() {
            // devices.list does not show deny exceptions: only the mode can be checked.
            after.default_allow()
        } else {
            after == *target
        };
        if !holds {
            return Err(V1DevicesControllerError::Mismatch {
                path: cgroup_root.display().to_string(),
                found: std::fs::read_to_string(&list_path).unwrap_or_default(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::read_to_string;

    use oci_spec::runtime::LinuxResourcesBuilder;

    use super::*;
    use crate::test::set_fixture;

    fn opt(resources: &oci_spec::runtime::LinuxResources) -> ControllerOpt<'_> {
        ControllerOpt {
            resources,
            freezer_state: None,
            oom_score_adj: None,
            disable_oom_killer: false,
        }
    }

    const RUNC_DEFAULT_LIST: &str = "b *:* m\nc *:* m\nc 1:3 rwm\nc 1:5 rwm\nc 1:7 rwm\nc 1:8 rwm\nc 1:9 rwm\nc 5:0 rwm\nc 5:2 rwm\nc 10:200 rwm\nc 136:* rwm\n";

    #[test]
    fn no_devices_field_leaves_the_cgroup_alone() {
        let tmp = tempfile::tempdir().unwrap();
        let resources = LinuxResourcesBuilder::default().build().unwrap();
        Devices::apply(&opt(&resources), tmp.path()).unwrap();
        assert!(!tmp.path().join("devices.allow").exists());
        assert!(!tmp.path().join("devices.deny").exists());
    }

    #[test]
    fn a_cgroup_that_already_holds_the_rules_gets_no_write() {
        if running_in_user_namespace() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        set_fixture(tmp.path(), "devices.list", RUNC_DEFAULT_LIST).unwrap();
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![])
            .build()
            .unwrap();
        Devices::apply(&opt(&resources), tmp.path()).unwrap();
        assert!(!tmp.path().join("devices.allow").exists());
        assert!(!tmp.path().join("devices.deny").exists());
    }

    #[test]
    fn an_allow_all_cgroup_is_reset_to_deny_all_first_and_checked_after() {
        if running_in_user_namespace() {
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        set_fixture(tmp.path(), "devices.list", "a *:* rwm\n").unwrap();
        set_fixture(tmp.path(), "devices.allow", "").unwrap();
        set_fixture(tmp.path(), "devices.deny", "").unwrap();
        let resources = LinuxResourcesBuilder::default()
            .devices(vec![])
            .build()
            .unwrap();
        // A fixture is no kernel: devices.list does not change, and the check says so.
        let err = Devices::apply(&opt(&resources), tmp.path()).unwrap_err();
        assert!(
            matches!(err, V1DevicesControllerError::Mismatch { .. }),
            "{err}"
        );
        assert_eq!(
            read_to_string(tmp.path().join("devices.deny")).unwrap(),
            "a *:* rwm"
        );
        // (a fixture file is overwritten, not truncated: the last write is at its start)
        assert!(
            read_to_string(tmp.path().join("devices.allow"))
                .unwrap()
                .starts_with("c 136:* rwm")
        );
    }
}
