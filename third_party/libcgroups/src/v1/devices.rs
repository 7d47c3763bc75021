use std::path::Path;

use oci_spec::runtime::LinuxDeviceCgroup;

use super::controller::Controller;
use super::devices_emulator::Emulator;
use crate::common::{self, ControllerOpt, WrappedIoError, default_allow_devices, default_devices};

pub struct Devices {}

impl Controller for Devices {
    type Error = WrappedIoError;
    type Resource = ();

    /// PATCH (runtime, see third_party/README.md): the cgroup gets the effective rule set
    /// of the requested rules followed by the default ones, starting from "deny
    /// everything", and only the writes that take its current devices.list there (see
    /// devices_emulator), as runc's devices controller does; afterwards devices.list must
    /// show exactly that set. Upstream wrote every rule as given, each time.
    fn apply(controller_opt: &ControllerOpt, cgroup_root: &Path) -> Result<(), Self::Error> {
        tracing::debug!("Apply Devices cgroup config");
        let Some(devices) = controller_opt.resources.devices().as_ref() else {
            return Ok(());
        };
        // PATCH (runtime): not in a user namespace, where the devices cgroup cannot be
        // written (runc skips it there too: RunningInUserNS); the runtime's rootless
        // mode runs in one, over an inert mirror of the hierarchy.
        if in_user_namespace() {
            tracing::debug!("devices cgroup left alone in a user namespace");
            return Ok(());
        }
        let invalid = |msg: String| WrappedIoError::Other {
            err: std::io::Error::new(std::io::ErrorKind::InvalidInput, msg),
            path: cgroup_root.to_path_buf(),
        };
        let mut target = Emulator::deny_all();
        let defaults: Vec<LinuxDeviceCgroup> = default_devices().iter().map(|d| d.into()).collect();
        for d in devices.iter().chain(&defaults).chain(&default_allow_devices()) {
            target.apply(d).map_err(invalid)?;
        }
        let list = cgroup_root.join("devices.list");
        // An unreadable list (no devices hierarchy, or a mirror of one) is taken as
        // allow-all: the rules are then written from a reset, and not checked after.
        let current = std::fs::read_to_string(&list)
            .ok()
            .and_then(|t| Emulator::from_list(&t).ok());
        let writes = current
            .clone()
            .unwrap_or_else(Emulator::allow_all)
            .transition(&target);
        for w in writes {
            let file = if w.allow { "devices.allow" } else { "devices.deny" };
            common::write_cgroup_file_str(cgroup_root.join(file), &w.rule)?;
        }
        if current.is_some() {
            let after = std::fs::read_to_string(&list)
                .map_err(|err| WrappedIoError::Read {
                    err,
                    path: list.clone(),
                })
                .and_then(|t| Emulator::from_list(&t).map_err(invalid))?;
            if after != target {
                return Err(invalid(format!(
                    "the devices cgroup does not match the rules requested: {after:?} is not {target:?}"
                )));
            }
        }
        Ok(())
    }

    // PATCH (runtime): only when the resources name devices. Create always does (it
    // passes an empty list for none, and the default rules apply); an update that does
    // not mention devices leaves them alone, as runc's does.
    fn needs_to_handle<'a>(controller_opt: &'a ControllerOpt) -> Option<&'a Self::Resource> {
        controller_opt.resources.devices().as_ref().map(|_| &())
    }
}

/// PATCH (runtime): whether this process is in a user namespace other than the initial
/// one, whose uid_map maps the whole range (`0 0 4294967295`).
fn in_user_namespace() -> bool {
    std::fs::read_to_string("/proc/self/uid_map")
        .map(|m| !m.contains("4294967295"))
        .unwrap_or(false)
}

impl Devices {
    // PATCH (runtime): apply writes through the emulator; this stays for the tests.
    #[cfg(test)]
    fn apply_device(device: &LinuxDeviceCgroup, cgroup_root: &Path) -> Result<(), WrappedIoError> {
        let path = if device.allow() {
            cgroup_root.join("devices.allow")
        } else {
            cgroup_root.join("devices.deny")
        };

        common::write_cgroup_file_str(path, &device.to_string())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::fs::read_to_string;

    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};

    use super::*;
    use crate::test::set_fixture;

    #[test]
    fn test_set_default_devices() {
        let tmp = tempfile::tempdir().unwrap();

        default_allow_devices().iter().for_each(|d| {
            // NOTE: We reset the fixtures every iteration because files aren't appended
            // so what happens in the tests is you get strange overwrites which can contain
            // remaining bytes from the last iteration. Resetting the files more appropriately
            // mocks the behavior of cgroup files.
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");

            Devices::apply_device(d, tmp.path()).expect("Apply default device");
            println!("Device: {}", d);
            if d.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                assert_eq!(allowed_content, d.to_string());
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                assert_eq!(denied_content, d.to_string());
            }
        });
    }

    #[test]
    fn test_set_mock_devices() {
        let tmp = tempfile::tempdir().unwrap();
        [
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::C)
                .major(10)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(true)
                .typ(LinuxDeviceType::A)
                .minor(200)
                .access("rwm")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::P)
                .major(10)
                .minor(200)
                .access("m")
                .build()
                .unwrap(),
            LinuxDeviceCgroupBuilder::default()
                .allow(false)
                .typ(LinuxDeviceType::U)
                .access("rw")
                .build()
                .unwrap(),
        ]
        .iter()
        .for_each(|d| {
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");

            Devices::apply_device(d, tmp.path()).expect("Apply default device");
            println!("Device: {}", d);
            if d.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                assert_eq!(allowed_content, d.to_string());
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                assert_eq!(denied_content, d.to_string());
            }
        });
    }

    quickcheck! {
        fn property_test_apply_device(device: LinuxDeviceCgroup) -> bool {
            let tmp = tempfile::tempdir().unwrap();
            set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
            set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");
            Devices::apply_device(&device, tmp.path()).expect("Apply default device");
            if device.allow() {
                let allowed_content =
                    read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                allowed_content == device.to_string()
            } else {
                let denied_content =
                    read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                denied_content == device.to_string()
            }
        }

        fn property_test_apply_multiple_devices(devices: Vec<LinuxDeviceCgroup>) -> bool {
            let tmp = tempfile::tempdir().unwrap();
            devices.iter()
                .all(|device| {
                    set_fixture(tmp.path(), "devices.allow", "").expect("create allowed devices list");
                    set_fixture(tmp.path(), "devices.deny", "").expect("create denied devices list");
                    Devices::apply_device(device, tmp.path()).expect("Apply default device");
                    if device.allow() {
                        let allowed_content =
                            read_to_string(tmp.path().join("devices.allow")).expect("read to string");
                        allowed_content == device.to_string()
                    } else {
                        let denied_content =
                            read_to_string(tmp.path().join("devices.deny")).expect("read to string");
                        denied_content == device.to_string()
                    }
                })
        }
    }
}
