use std::os::unix::io::AsRawFd;
use std::path::Path;

#[cfg(test)]
use bpf::mock_prog as bpf_prog;
#[cfg(not(test))]
use bpf::prog as bpf_prog;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use oci_spec::runtime::LinuxDeviceCgroup;

use super::bpf::BpfError;
use super::program::ProgramError;
use super::*;
use crate::common::ControllerOpt;
// PATCH (runtime, see third_party/README.md): the rules are runc's (deny-all, the
// config's rules, runc's defaults), computed by crate::device_rules as for cgroup v1.
use crate::device_rules::{DeviceRuleError, Emulator};
use crate::v2::controller::Controller;

// runc loads its device filter with this license string too.
const LICENSE: &str = "Apache";

pub struct Devices {}

#[derive(thiserror::Error, Debug)]
pub enum DevicesControllerError {
    #[error("bpf error: {0}")]
    Bpf(#[from] BpfError),
    #[error("nix error: {0}")]
    Nix(#[from] nix::Error),
    #[error("program error: {0}")]
    Program(#[from] ProgramError),
    #[error("linux.resources.devices: {0}")]
    Rule(#[from] DeviceRuleError),
}

impl Controller for Devices {
    type Error = DevicesControllerError;

    fn apply(
        controller_opt: &ControllerOpt,
        cgroup_root: &Path,
    ) -> Result<(), DevicesControllerError> {
        #[cfg(not(feature = "cgroupsv2_devices"))]
        return Ok(());

        #[cfg(feature = "cgroupsv2_devices")]
        return Self::apply_devices(cgroup_root, controller_opt.resources.devices());
    }
}

/// Whether this process's user namespace is not the initial one.
fn running_in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

impl Devices {
    /// `linux_devices` `None` leaves the cgroup's program alone (an `update` that does
    /// not name devices); `Some` (at create, even empty) installs runc's rule set.
    pub fn apply_devices(
        cgroup_root: &Path,
        linux_devices: &Option<Vec<LinuxDeviceCgroup>>,
    ) -> Result<(), DevicesControllerError> {
        tracing::debug!("Apply Devices cgroup config");
        let Some(config) = linux_devices else {
            return Ok(());
        };
        let emulator = Emulator::for_container(config)?;
        match Self::install(cgroup_root, &emulator) {
            // As runc: in a user namespace bpf(2) is not allowed, and a rootless
            // container cannot mknod device nodes anyway.
            Err(DevicesControllerError::Bpf(err)) if running_in_user_namespace() => {
                tracing::debug!("device filter not installed in a user namespace: {err}");
                Ok(())
            }
            other => other,
        }
    }

    fn install(cgroup_root: &Path, emulator: &Emulator) -> Result<(), DevicesControllerError> {
        let prog = program::Program::from_rules(&emulator.rules(), emulator.default_allow())?;

        let prog_fd = match bpf_prog::load(LICENSE, prog.bytecodes()) {
            // Kernels before 5.11 charge programs to RLIMIT_MEMLOCK: raise it for the
            // load only, so the container (this may be its init) keeps its own limit.
            Err(BpfError::Syscall { err, .. }) if err.raw_os_error() == Some(libc::EPERM) => {
                let (cur, max) = bpf_prog::bump_memlock_rlimit()?;
                let loaded = bpf_prog::load(LICENSE, prog.bytecodes());
                bpf_prog::restore_memlock_rlimit(cur, max);
                loaded?
            }
            other => other?,
        };

        // get the fd of the cgroup root
        let fd = nix::dir::Dir::open(
            cgroup_root.as_os_str(),
            OFlag::O_RDONLY | OFlag::O_DIRECTORY,
            Mode::from_bits(0o600).unwrap(),
        )?;

        // Attach the new program next to the old ones (BPF_F_ALLOW_MULTI), then detach the
        // old ones: the cgroup is never without a filter in between.
        let old_progs = bpf_prog::query(fd.as_raw_fd())?;
        bpf_prog::attach(prog_fd, fd.as_raw_fd())?;
        for old_prog in old_progs {
            bpf_prog::detach2(old_prog.fd, fd.as_raw_fd())?;
        }

        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::io::RawFd;

    use bpf::mock_prog;
    use oci_spec::runtime::{LinuxDeviceCgroupBuilder, LinuxDeviceType};
    use serial_test::serial;

    use super::*;
    use crate::test::setup;

    #[test]
    #[serial(bpf)] // mock contexts are shared
    fn test_apply_devices() {
        // arrange
        let (tmp, _) = setup("some.value");
        let a_type = LinuxDeviceCgroupBuilder::default()
            .typ(LinuxDeviceType::A)
            .build()
            .unwrap();
        let file_descriptor: RawFd = 6;

        // expect
        let bump_memlock_rlimit = mock_prog::bump_memlock_rlimit_context();
        let load = mock_prog::load_context();
        let query = mock_prog::query_context();
        let attach = mock_prog::attach_context();
        let detach2 = mock_prog::detach2_context();
        bump_memlock_rlimit.expect().never();
        load.expect()
            .once()
            .returning(move |_, _| Ok(file_descriptor));
        query.expect().once().returning(|_| Ok(vec![]));
        attach.expect().once().returning(|_, _| Ok(()));
        detach2.expect().never();

        // act
        Devices::apply_devices(tmp.path(), &Some(vec![a_type])).expect("Could not apply devices");
    }

    #[test]
    #[serial(bpf)] // mock contexts are shared
    fn no_devices_field_installs_nothing() {
        let (tmp, _) = setup("some.value");
        let load = mock_prog::load_context();
        load.expect().never();
        Devices::apply_devices(tmp.path(), &None).expect("nothing to apply");
    }

    #[test]
    #[serial(bpf)] // mock contexts are shared
    fn test_existing_programs() {
        // arrange
        let (tmp, _) = setup("some.value");
        let a_type = LinuxDeviceCgroupBuilder::default()
            .typ(LinuxDeviceType::A)
            .build()
            .unwrap();
        let file_descriptor: RawFd = 6;
        let existing_program_1 = bpf::ProgramInfo {
            id: u32::default(),
            fd: i32::default(),
        };

        // expect
        let bump_memlock_rlimit = mock_prog::bump_memlock_rlimit_context();
        let load = mock_prog::load_context();
        let query = mock_prog::query_context();
        let attach = mock_prog::attach_context();
        let detach2 = mock_prog::detach2_context();
        bump_memlock_rlimit.expect().never();
        load.expect()
            .once()
            .returning(move |_, _| Ok(file_descriptor));
        query
            .expect()
            .once()
            .returning(move |_| Ok(vec![existing_program_1.clone()]));
        attach.expect().once().returning(|_, _| Ok(()));
        detach2.expect().once().returning(|_, _| Ok(()));

        // act
        Devices::apply_devices(tmp.path(), &Some(vec![a_type])).expect("Could not apply devices");
    }
}
