//! PATCH (runtime, see third_party/README.md): the -ENOSYS stub runc puts in front of a
//! seccomp filter.
//!
//! A filter whose default action denies (errno, kill, trap) also denies the system calls
//! added to the kernel after the profile was written. Programs probe for those (glibc
//! tries clone3 before clone, statx before stat, ...) and fall back only on ENOSYS, the
//! kernel's answer for a call it does not know; EPERM makes them fail. runc therefore
//! prepends a few instructions that answer ENOSYS for every syscall number above the
//! largest one the profile names on each of its architectures (`syscall(1000)` gets -38),
//! and loads the result itself. This module does the same: it builds that stub, appends
//! the program libseccomp generated for the profile, and loads it with seccomp(2).
//!
//! Only numbers above the profile's largest are stubbed, so a call the profile does not
//! list but that is older than its newest entry still gets the default action, as in
//! runc. Profiles whose default action allows (allow, log, trace) need no stub.

use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

use libseccomp::{ScmpArch, ScmpFilterContext, ScmpSyscall};
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag};

use super::{SeccompError, translate_arch};

/// `struct sock_filter` as the kernel reads it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20;
const BPF_JMP_JA: u16 = 0x05;
const BPF_JMP_JEQ_K: u16 = 0x15;
const BPF_JMP_JGT_K: u16 = 0x25;
const BPF_JMP_JSET_K: u16 = 0x45;
const BPF_RET_K: u16 = 0x06;

/// Offsets in `struct seccomp_data`.
const DATA_NR: u32 = 0;
const DATA_ARCH: u32 = 4;

const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const RET_ENOSYS: u32 = SECCOMP_RET_ERRNO | libc::ENOSYS as u32;

/// The x32 ABI marks its system call numbers with this bit (on AUDIT_ARCH_X86_64).
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// AUDIT_ARCH_* (linux/audit.h) of the architectures seccomp_data.arch carries.
const AUDIT_ARCH_X86_64: u32 = 0xC000_003E;
const AUDIT_ARCH_S390: u32 = 0x0000_0016;
const AUDIT_ARCH_S390X: u32 = 0x8000_0016;

/// The kernel's architecture value for a libseccomp architecture (x32 shares x86_64's,
/// told apart by X32_SYSCALL_BIT).
fn audit_arch(arch: ScmpArch) -> Option<u32> {
    Some(match arch {
        ScmpArch::Native => return audit_arch(ScmpArch::native()),
        ScmpArch::X86 => 0x4000_0003,
        ScmpArch::X8664 | ScmpArch::X32 => AUDIT_ARCH_X86_64,
        ScmpArch::Arm => 0x4000_0028,
        ScmpArch::Aarch64 => 0xC000_00B7,
        ScmpArch::Loongarch64 => 0xC000_0102,
        ScmpArch::M68k => 0x0000_0004,
        ScmpArch::Mips => 0x0000_0008,
        ScmpArch::Mipsel => 0x4000_0008,
        ScmpArch::Mips64 => 0x8000_0008,
        ScmpArch::Mipsel64 => 0xC000_0008,
        ScmpArch::Mips64N32 => 0xA000_0008,
        ScmpArch::Mipsel64N32 => 0xE000_0008,
        ScmpArch::Ppc => 0x0000_0014,
        ScmpArch::Ppc64 => 0x8000_0015,
        ScmpArch::Ppc64Le => 0xC000_0015,
        ScmpArch::S390 => AUDIT_ARCH_S390,
        ScmpArch::S390X => AUDIT_ARCH_S390X,
        ScmpArch::Parisc => 0x0000_000F,
        ScmpArch::Parisc64 => 0x8000_000F,
        ScmpArch::Riscv64 => 0xC000_00F3,
        ScmpArch::Sh => 0x4000_002A,
        ScmpArch::Sheb => 0x0000_002A,
        _ => return None,
    })
}

/// The largest system call number the profile names, per architecture of the profile.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct LastSyscalls {
    /// (AUDIT_ARCH, largest number) for every architecture but x86_64 and x32.
    pub single: Vec<(u32, u32)>,
    /// x86_64's and x32's (x32 numbers carry X32_SYSCALL_BIT).
    pub amd64: Option<u32>,
    pub x32: Option<u32>,
}

impl LastSyscalls {
    /// Resolves every name of the profile on each of its architectures; names a kernel
    /// or architecture does not have are skipped, as runc does.
    pub fn of(seccomp: &LinuxSeccomp) -> Self {
        let mut last = Self::default();
        let names: Vec<&String> = seccomp
            .syscalls()
            .iter()
            .flatten()
            .flat_map(|s| s.names())
            .collect();
        let mut arches: Vec<ScmpArch> = seccomp
            .architectures()
            .iter()
            .flatten()
            .map(|a| match translate_arch(*a) {
                ScmpArch::Native => ScmpArch::native(),
                other => other,
            })
            .collect();
        if arches.is_empty() {
            arches.push(ScmpArch::native());
        }
        arches.dedup();
        for arch in arches {
            let Some(audit) = audit_arch(arch) else {
                continue;
            };
            let largest = names
                .iter()
                .filter_map(|n| ScmpSyscall::from_name_by_arch(n, arch).ok())
                .map(i32::from)
                .filter(|nr| *nr >= 0)
                .max()
                .map(|nr| nr as u32);
            let Some(largest) = largest else {
                continue;
            };
            match arch {
                ScmpArch::X8664 => last.amd64 = Some(largest),
                ScmpArch::X32 => last.x32 = Some(largest),
                _ if !last.single.iter().any(|(a, _)| *a == audit) => {
                    last.single.push((audit, largest))
                }
                _ => {}
            }
        }
        last
    }
}

/// A jump target while the stub is assembled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum To {
    Next,
    Enosys,
    Filter,
    /// The instruction after the current architecture's section.
    NextArch,
    /// An instruction a fixed number of places further on.
    Skip(u8),
}

#[derive(Debug, Clone, Copy)]
enum Insn {
    Load(u32),
    Jeq(u32, To, To),
    Jgt(u32, To, To),
    Jset(u32, To, To),
    Jump(To),
    Ret(u32),
}

/// The stub for these architectures: for each, "if the number is above the profile's
/// largest, return -ENOSYS"; everything else falls through to the filter.
pub(crate) fn stub(last: &LastSyscalls) -> Vec<SockFilter> {
    // Each section: jeq ARCH (else next section); ld nr; checks; ja filter; ret ENOSYS.
    let mut sections: Vec<Vec<Insn>> = Vec::new();
    for &(audit, largest) in &last.single {
        let mut s = vec![
            Insn::Jeq(audit, To::Next, To::NextArch),
            Insn::Load(DATA_NR),
        ];
        if audit == AUDIT_ARCH_S390 || audit == AUDIT_ARCH_S390X {
            // Numbers the kernel does not know arrive as setup(2) (0) on s390: runc
            // answers ENOSYS for it too.
            s.push(Insn::Jeq(0, To::Enosys, To::Next));
        }
        s.push(Insn::Jgt(largest, To::Enosys, To::Next));
        s.push(Insn::Jump(To::Filter));
        s.push(Insn::Ret(RET_ENOSYS));
        sections.push(s);
    }
    if last.amd64.is_some() || last.x32.is_some() {
        let mut s = vec![
            Insn::Jeq(AUDIT_ARCH_X86_64, To::Next, To::NextArch),
            Insn::Load(DATA_NR),
        ];
        match (last.amd64, last.x32) {
            (Some(amd64), Some(x32)) => {
                s.push(Insn::Jset(X32_SYSCALL_BIT, To::Skip(2), To::Next));
                s.push(Insn::Jgt(amd64, To::Enosys, To::Next));
                s.push(Insn::Jump(To::Filter));
                s.push(Insn::Jgt(x32, To::Enosys, To::Next));
            }
            (Some(amd64), None) => {
                // x32 calls are left to the filter.
                s.push(Insn::Jset(X32_SYSCALL_BIT, To::Skip(1), To::Next));
                s.push(Insn::Jgt(amd64, To::Enosys, To::Next));
            }
            (None, Some(x32)) => {
                s.push(Insn::Jset(X32_SYSCALL_BIT, To::Next, To::Skip(1)));
                s.push(Insn::Jgt(x32, To::Enosys, To::Next));
            }
            (None, None) => unreachable!("checked above"),
        }
        s.push(Insn::Jump(To::Filter));
        s.push(Insn::Ret(RET_ENOSYS));
        sections.push(s);
    }
    if sections.is_empty() {
        return Vec::new();
    }

    let mut program = vec![Insn::Load(DATA_ARCH)];
    let mut section_ends = Vec::new();
    for s in &sections {
        program.extend_from_slice(s);
        section_ends.push(program.len());
    }
    // Architectures without a section go straight to the filter.
    program.push(Insn::Jump(To::Filter));
    let filter_start = program.len();

    // Resolve the targets into offsets (relative to the next instruction).
    let mut out = Vec::with_capacity(program.len());
    let mut section = 0;
    for (pc, insn) in program.iter().enumerate() {
        if section < section_ends.len() && pc >= section_ends[section] {
            section += 1;
        }
        let section_end = section_ends.get(section).copied().unwrap_or(filter_start);
        // The ENOSYS return is the last instruction of the current section.
        let enosys = section_end - 1;
        let offset = |to: To| -> usize {
            let target = match to {
                To::Next => pc + 1,
                To::Enosys => enosys,
                To::Filter => filter_start,
                To::NextArch => section_end,
                To::Skip(n) => pc + 1 + n as usize,
            };
            target - (pc + 1)
        };
        let cond = |code: u16, k: u32, t: To, f: To| {
            let (jt, jf) = (offset(t), offset(f));
            // Sections are a handful of instructions: conditional jumps stay short.
            assert!(jt < 256 && jf < 256, "seccomp stub jump out of range");
            SockFilter {
                code,
                jt: jt as u8,
                jf: jf as u8,
                k,
            }
        };
        out.push(match *insn {
            Insn::Load(k) => SockFilter {
                code: BPF_LD_W_ABS,
                jt: 0,
                jf: 0,
                k,
            },
            Insn::Jeq(k, t, f) => cond(BPF_JMP_JEQ_K, k, t, f),
            Insn::Jgt(k, t, f) => cond(BPF_JMP_JGT_K, k, t, f),
            Insn::Jset(k, t, f) => cond(BPF_JMP_JSET_K, k, t, f),
            Insn::Jump(to) => SockFilter {
                code: BPF_JMP_JA,
                jt: 0,
                jf: 0,
                k: offset(to) as u32,
            },
            Insn::Ret(k) => SockFilter {
                code: BPF_RET_K,
                jt: 0,
                jf: 0,
                k,
            },
        });
    }
    out
}

/// Whether runc would put the stub in front of this profile: its default action denies,
/// and its default errno is not ENOSYS already.
pub(crate) fn wanted(seccomp: &LinuxSeccomp) -> bool {
    if stub_disabled_for_test() {
        return false;
    }
    match seccomp.default_action() {
        LinuxSeccompAction::ScmpActAllow
        | LinuxSeccompAction::ScmpActLog
        | LinuxSeccompAction::ScmpActTrace => false,
        LinuxSeccompAction::ScmpActErrno => {
            seccomp.default_errno_ret() != Some(libc::ENOSYS as u32)
        }
        _ => true,
    }
}

/// Debug builds only: `_RUNTIME_TEST_UNSAFE=seccomp-no-enosys-stub` loads profiles
/// without the stub, for the negative control of spec-tests runtime_seccomp_args.rs. The
/// init has replaced its environment with the container's by the time it loads the
/// filter; the one the runtime was started with is still in /proc/self/environ.
fn stub_disabled_for_test() -> bool {
    if !cfg!(debug_assertions) {
        return false;
    }
    std::fs::read("/proc/self/environ").is_ok_and(|env| {
        env.split(|b| *b == 0).any(|kv| {
            kv.strip_prefix(b"_RUNTIME_TEST_UNSAFE=").is_some_and(|v| {
                v.split(|b| *b == b',')
                    .any(|c| c == b"seccomp-no-enosys-stub")
            })
        })
    })
}

/// The program libseccomp generated for the context.
fn exported_program(ctx: &ScmpFilterContext) -> Result<Vec<SockFilter>, SeccompError> {
    let io = |e: std::io::Error| SeccompError::ExportFilter { source: e };
    // SAFETY: memfd_create takes a NUL-terminated name and flags and returns a new fd.
    let fd = unsafe { libc::memfd_create(c"seccomp-filter".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(io(std::io::Error::last_os_error()));
    }
    // SAFETY: the fd was just created and belongs to nobody else.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut file = std::fs::File::from(memfd);
    ctx.export_bpf(&file)
        .map_err(|e| io(std::io::Error::other(e.to_string())))?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    let size = std::mem::size_of::<SockFilter>();
    if bytes.is_empty() || bytes.len() % size != 0 {
        return Err(io(std::io::Error::other(format!(
            "libseccomp exported a program of {} bytes",
            bytes.len()
        ))));
    }
    Ok(bytes
        .chunks_exact(size)
        .map(|c| SockFilter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect())
}

const SECCOMP_SET_MODE_FILTER: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_TSYNC: libc::c_ulong = 1;
const SECCOMP_FILTER_FLAG_LOG: libc::c_ulong = 2;
const SECCOMP_FILTER_FLAG_SPEC_ALLOW: libc::c_ulong = 4;
const SECCOMP_FILTER_FLAG_NEW_LISTENER: libc::c_ulong = 8;
const SECCOMP_FILTER_FLAG_TSYNC_ESRCH: libc::c_ulong = 16;
const SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV: libc::c_ulong = 32;

/// The seccomp(2) flags the profile asks for.
fn filter_flags(seccomp: &LinuxSeccomp, notify: bool) -> libc::c_ulong {
    let mut flags = 0;
    for flag in seccomp.flags().iter().flatten() {
        flags |= match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => SECCOMP_FILTER_FLAG_LOG,
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => SECCOMP_FILTER_FLAG_TSYNC,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => SECCOMP_FILTER_FLAG_SPEC_ALLOW,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
            }
        };
    }
    if notify {
        flags |= SECCOMP_FILTER_FLAG_NEW_LISTENER;
        // The kernel refuses TSYNC with a listener unless told how to report a
        // thread it could not synchronise (libseccomp does the same).
        if flags & SECCOMP_FILTER_FLAG_TSYNC != 0 {
            flags |= SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
        }
    }
    flags
}

/// Loads the stub followed by the context's program; returns the listener fd when the
/// profile has notify rules.
pub(crate) fn load_with_stub(
    ctx: &ScmpFilterContext,
    seccomp: &LinuxSeccomp,
    notify: bool,
) -> Result<Option<RawFd>, SeccompError> {
    let mut program = stub(&LastSyscalls::of(seccomp));
    tracing::debug!(
        stub = program.len(),
        "seccomp: -ENOSYS stub in front of the filter"
    );
    program.extend(exported_program(ctx)?);
    let len = u16::try_from(program.len()).map_err(|_| SeccompError::FilterTooLong {
        instructions: program.len(),
    })?;
    let prog = libc::sock_fprog {
        len,
        filter: program.as_mut_ptr().cast::<libc::sock_filter>(),
    };
    let flags = filter_flags(seccomp, notify);
    let ret = if flags == 0 {
        // SAFETY: prog points at `len` instructions that outlive the call.
        unsafe {
            libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER as libc::c_ulong,
                &prog as *const libc::sock_fprog,
                0 as libc::c_ulong,
                0 as libc::c_ulong,
            ) as libc::c_long
        }
    } else {
        // SAFETY: as above; seccomp(2) takes the operation, flags and the program.
        unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                SECCOMP_SET_MODE_FILTER,
                flags,
                &prog as *const libc::sock_fprog,
            )
        }
    };
    if ret < 0 {
        return Err(SeccompError::LoadFilter {
            source: std::io::Error::last_os_error(),
        });
    }
    if notify {
        // SAFETY: with NEW_LISTENER the kernel returned a new fd that nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(ret as RawFd) };
        return Ok(Some(std::os::fd::IntoRawFd::into_raw_fd(fd)));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program (the instructions the stub uses, and the two returns a
    /// fake filter needs) on one (arch, nr).
    fn run(program: &[SockFilter], arch: u32, nr: u32) -> u32 {
        let mut pc = 0;
        let mut a = 0u32;
        loop {
            let i = program[pc];
            let jump = |cond: bool| pc + 1 + if cond { i.jt } else { i.jf } as usize;
            pc = match i.code {
                BPF_LD_W_ABS => {
                    a = if i.k == DATA_ARCH { arch } else { nr };
                    pc + 1
                }
                BPF_JMP_JEQ_K => jump(a == i.k),
                BPF_JMP_JGT_K => jump(a > i.k),
                BPF_JMP_JSET_K => jump(a & i.k != 0),
                BPF_JMP_JA => pc + 1 + i.k as usize,
                BPF_RET_K => return i.k,
                other => panic!("unexpected instruction {other:#x}"),
            };
        }
    }

    /// A stand-in for libseccomp's program: EPERM for everything.
    const FILTER_RET: u32 = SECCOMP_RET_ERRNO | libc::EPERM as u32;

    fn with_filter(last: &LastSyscalls) -> Vec<SockFilter> {
        let mut p = stub(last);
        p.push(SockFilter {
            code: BPF_RET_K,
            jt: 0,
            jf: 0,
            k: FILTER_RET,
        });
        p
    }

    #[test]
    fn numbers_above_the_largest_get_enosys_per_architecture() {
        let last = LastSyscalls {
            single: vec![(0x4000_0003, 400), (AUDIT_ARCH_S390X, 300)],
            amd64: Some(334),
            x32: Some(X32_SYSCALL_BIT | 546),
        };
        let p = with_filter(&last);
        let x86 = 0x4000_0003;
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 334), FILTER_RET);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 335), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 1000), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0), FILTER_RET);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 546),
            FILTER_RET
        );
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 547),
            RET_ENOSYS
        );
        assert_eq!(run(&p, x86, 400), FILTER_RET);
        assert_eq!(run(&p, x86, 401), RET_ENOSYS);
        assert_eq!(run(&p, AUDIT_ARCH_S390X, 0), RET_ENOSYS, "s390 multiplexer");
        assert_eq!(run(&p, AUDIT_ARCH_S390X, 300), FILTER_RET);
        assert_eq!(run(&p, AUDIT_ARCH_S390X, 301), RET_ENOSYS);
        // An architecture the profile does not name is the filter's business.
        assert_eq!(run(&p, 0xC000_00B7, 5000), FILTER_RET);
    }

    #[test]
    fn amd64_alone_leaves_x32_calls_to_the_filter() {
        let p = with_filter(&LastSyscalls {
            amd64: Some(334),
            ..Default::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 335), RET_ENOSYS);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 9999),
            FILTER_RET
        );
        let p = with_filter(&LastSyscalls {
            x32: Some(X32_SYSCALL_BIT | 546),
            ..Default::default()
        });
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 9999), FILTER_RET);
        assert_eq!(
            run(&p, AUDIT_ARCH_X86_64, X32_SYSCALL_BIT | 547),
            RET_ENOSYS
        );
    }

    #[test]
    fn no_architecture_no_stub() {
        assert!(stub(&LastSyscalls::default()).is_empty());
    }

    #[test]
    fn the_profile_largest_syscall_is_found() {
        use oci_spec::runtime::{Arch, LinuxSeccompBuilder, LinuxSyscallBuilder};
        let syscalls = vec![
            LinuxSyscallBuilder::default()
                .names(vec!["read".to_string(), "openat".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()
                .unwrap(),
            LinuxSyscallBuilder::default()
                .names(vec!["no_such_call".to_string()])
                .action(LinuxSeccompAction::ScmpActAllow)
                .build()
                .unwrap(),
        ];
        let seccomp = LinuxSeccompBuilder::default()
            .default_action(LinuxSeccompAction::ScmpActErrno)
            .architectures(vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86])
            .syscalls(syscalls)
            .build()
            .unwrap();
        let last = LastSyscalls::of(&seccomp);
        // openat is 257 on x86_64 and 295 on i386.
        assert_eq!(last.amd64, Some(257));
        assert_eq!(last.single, vec![(0x4000_0003, 295)]);
        assert!(wanted(&seccomp));
    }
}
