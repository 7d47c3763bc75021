// PATCH (runtime, see third_party/README.md): bpf(2) is called directly instead of
// through libbpf-sys, which builds libbpf from C sources and needs libelf and zlib: the five
// commands a device filter needs take a few fixed-layout attributes each. The feature
// `cgroupsv2_devices` is then cheap enough to be always on, so a cgroup v2 host restricts
// devices as a v1 host does.

#[derive(Clone)]
pub struct ProgramInfo {
    pub id: u32,
    pub fd: i32,
}

#[derive(thiserror::Error, Debug)]
pub enum BpfError {
    #[error("bpf({cmd}): {err}")]
    Syscall {
        cmd: &'static str,
        #[source]
        err: std::io::Error,
    },
    #[error("failed to increase rlimit")]
    FailedToIncreaseRLimit,
}

/// The bpf(2) commands, program type, attach type and flag a device filter uses
/// (include/uapi/linux/bpf.h).
mod sys {
    pub const BPF_PROG_LOAD: libc::c_int = 5;
    pub const BPF_PROG_ATTACH: libc::c_int = 8;
    pub const BPF_PROG_DETACH: libc::c_int = 9;
    pub const BPF_PROG_GET_FD_BY_ID: libc::c_int = 13;
    pub const BPF_PROG_QUERY: libc::c_int = 16;
    pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
    pub const BPF_CGROUP_DEVICE: u32 = 6;
    pub const BPF_F_ALLOW_MULTI: u32 = 2;

    /// `union bpf_attr` for BPF_PROG_LOAD, up to `expected_attach_type`.
    #[repr(C)]
    #[derive(Default)]
    pub struct ProgLoad {
        pub prog_type: u32,
        pub insn_cnt: u32,
        pub insns: u64,
        pub license: u64,
        pub log_level: u32,
        pub log_size: u32,
        pub log_buf: u64,
        pub kern_version: u32,
        pub prog_flags: u32,
        pub prog_name: [u8; 16],
        pub prog_ifindex: u32,
        pub expected_attach_type: u32,
    }

    /// `union bpf_attr` for BPF_PROG_ATTACH and BPF_PROG_DETACH.
    #[repr(C)]
    #[derive(Default)]
    pub struct ProgAttach {
        pub target_fd: u32,
        pub attach_bpf_fd: u32,
        pub attach_type: u32,
        pub attach_flags: u32,
        pub replace_bpf_fd: u32,
    }

    /// `union bpf_attr` for BPF_PROG_QUERY, up to `prog_cnt`.
    #[repr(C)]
    #[derive(Default)]
    pub struct ProgQuery {
        pub target_fd: u32,
        pub attach_type: u32,
        pub query_flags: u32,
        pub attach_flags: u32,
        pub prog_ids: u64,
        pub prog_cnt: u32,
        pub _pad: u32,
    }

    /// `union bpf_attr` for BPF_PROG_GET_FD_BY_ID.
    #[repr(C)]
    #[derive(Default)]
    pub struct GetFdById {
        pub prog_id: u32,
        pub next_id: u32,
        pub open_flags: u32,
    }

    /// bpf(cmd, attr, sizeof attr): the kernel's return value, or the errno as an error.
    pub fn bpf<T>(cmd: libc::c_int, attr: &mut T) -> std::io::Result<libc::c_long> {
        // SAFETY: attr points to a live, fully initialised repr(C) struct of the layout
        // the kernel expects for cmd, and its size is passed with it; the kernel keeps no
        // pointer to it after the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                cmd,
                attr as *mut T as *mut libc::c_void,
                std::mem::size_of::<T>() as libc::c_uint,
            )
        };
        if ret < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(ret)
        }
    }
}

#[cfg_attr(test, automock)]
pub mod prog {
    use std::os::unix::io::RawFd;

    use super::sys::{self, bpf};
    use super::{BpfError, ProgramInfo};

    fn failed(cmd: &'static str) -> impl FnOnce(std::io::Error) -> BpfError {
        move |err| BpfError::Syscall { cmd, err }
    }

    pub fn load(license: &str, insns: &[u8]) -> Result<RawFd, BpfError> {
        let license = std::ffi::CString::new(license).map_err(|_| BpfError::Syscall {
            cmd: "BPF_PROG_LOAD",
            err: std::io::ErrorKind::InvalidInput.into(),
        })?;
        let mut attr = sys::ProgLoad {
            prog_type: sys::BPF_PROG_TYPE_CGROUP_DEVICE,
            insn_cnt: (insns.len() / 8) as u32,
            insns: insns.as_ptr() as u64,
            license: license.as_ptr() as u64,
            ..Default::default()
        };
        let fd = bpf(sys::BPF_PROG_LOAD, &mut attr).map_err(failed("BPF_PROG_LOAD"))?;
        Ok(fd as RawFd)
    }

    /// Given a fd for a cgroup, collect the programs associated with it
    pub fn query(cgroup_fd: RawFd) -> Result<Vec<ProgramInfo>, BpfError> {
        let mut prog_ids: Vec<u32> = vec![0_u32; 64];
        loop {
            let mut attr = sys::ProgQuery {
                target_fd: cgroup_fd as u32,
                attach_type: sys::BPF_CGROUP_DEVICE,
                prog_ids: prog_ids.as_mut_ptr() as u64,
                prog_cnt: prog_ids.len() as u32,
                ..Default::default()
            };
            match bpf(sys::BPF_PROG_QUERY, &mut attr) {
                Ok(_) => {
                    prog_ids.truncate(attr.prog_cnt as usize);
                    break;
                }
                Err(err)
                    if err.raw_os_error() == Some(libc::ENOSPC)
                        && attr.prog_cnt as usize > prog_ids.len() =>
                {
                    prog_ids.resize(attr.prog_cnt as usize, 0);
                }
                Err(err) => return Err(failed("BPF_PROG_QUERY")(err)),
            }
        }

        let mut prog_fds = Vec::with_capacity(prog_ids.len());
        for prog_id in &prog_ids {
            let mut attr = sys::GetFdById {
                prog_id: *prog_id,
                ..Default::default()
            };
            match bpf(sys::BPF_PROG_GET_FD_BY_ID, &mut attr) {
                Ok(fd) => prog_fds.push(ProgramInfo {
                    id: *prog_id,
                    fd: fd as i32,
                }),
                Err(err) => tracing::debug!("BPF_PROG_GET_FD_BY_ID {prog_id} failed: {err}"),
            }
        }
        Ok(prog_fds)
    }

    pub fn detach2(prog_fd: RawFd, cgroup_fd: RawFd) -> Result<(), BpfError> {
        let mut attr = sys::ProgAttach {
            target_fd: cgroup_fd as u32,
            attach_bpf_fd: prog_fd as u32,
            attach_type: sys::BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(sys::BPF_PROG_DETACH, &mut attr).map_err(failed("BPF_PROG_DETACH"))?;
        Ok(())
    }

    pub fn attach(prog_fd: RawFd, cgroup_fd: RawFd) -> Result<(), BpfError> {
        let mut attr = sys::ProgAttach {
            target_fd: cgroup_fd as u32,
            attach_bpf_fd: prog_fd as u32,
            attach_type: sys::BPF_CGROUP_DEVICE,
            attach_flags: sys::BPF_F_ALLOW_MULTI,
            ..Default::default()
        };
        bpf(sys::BPF_PROG_ATTACH, &mut attr).map_err(failed("BPF_PROG_ATTACH"))?;
        Ok(())
    }

    /// Raises RLIMIT_MEMLOCK to 128 MiB; returns the previous (soft, hard) limits.
    pub fn bump_memlock_rlimit() -> Result<(u64, u64), BpfError> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes the struct it is given.
        if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut old) } != 0 {
            return Err(BpfError::FailedToIncreaseRLimit);
        }
        let rlimit = libc::rlimit {
            rlim_cur: 128 << 20,
            rlim_max: 128 << 20,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlimit) } != 0 {
            return Err(BpfError::FailedToIncreaseRLimit);
        }
        Ok((old.rlim_cur, old.rlim_max))
    }

    /// Puts back the limits `bump_memlock_rlimit` returned (best effort).
    pub fn restore_memlock_rlimit(cur: u64, max: u64) {
        let rlimit = libc::rlimit {
            rlim_cur: cur,
            rlim_max: max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlimit) };
    }
}

#[cfg(test)]
mod tests {
    use super::sys;

    /// The attribute layouts match the kernel's (include/uapi/linux/bpf.h offsets).
    #[test]
    fn attr_layouts() {
        assert_eq!(std::mem::offset_of!(sys::ProgLoad, insns), 8);
        assert_eq!(std::mem::offset_of!(sys::ProgLoad, license), 16);
        assert_eq!(std::mem::offset_of!(sys::ProgLoad, prog_name), 48);
        assert_eq!(
            std::mem::offset_of!(sys::ProgLoad, expected_attach_type),
            68
        );
        assert_eq!(std::mem::offset_of!(sys::ProgQuery, prog_ids), 16);
        assert_eq!(std::mem::offset_of!(sys::ProgQuery, prog_cnt), 24);
        assert_eq!(std::mem::size_of::<sys::ProgAttach>(), 20);
    }
}
