//! `features`: what this build supports, as the runtime-spec features document, so engines
//! can decide what to ask of us.
//!
//! The runtime spec defines most of it as facts of the build, "irrelevant to" the host
//! (cgroup managers, AppArmor, SELinux, Intel RDT, seccomp actions): those come from what
//! libcgroups and libcontainer were compiled with and implement. What it defines as facts
//! of the host comes from the host: `seccomp.supportedFlags` (the filter flags both this
//! kernel and the loaded libseccomp accept, probed as runc probes them) and the
//! `io.github.seccomp.libseccomp.version` annotation (the libseccomp loaded, runc's key).

use std::collections::BTreeMap;

use anyhow::Result;
use clap::Args;
use libcontainer::oci_spec::runtime::{
    Apparmor, ApparmorBuilder, Arch, Cgroup, CgroupBuilder, IntelRdt, IntelRdtBuilder,
    LinuxNamespaceType, LinuxSeccompAction, Seccomp, SeccompBuilder, Selinux, SelinuxBuilder,
};
use serde::Serialize;

use crate::cli::Cli;

#[derive(Args, Debug)]
pub struct FeaturesArgs {}

/// Mount options libcontainer maps to mount flags or propagation.
const MOUNT_OPTIONS: &[&str] = &[
    "async",
    "atime",
    "bind",
    "defaults",
    "dev",
    "diratime",
    "dirsync",
    "exec",
    "iversion",
    "lazytime",
    "loud",
    "mand",
    "noatime",
    "nodev",
    "nodiratime",
    "noexec",
    "noiversion",
    "nolazytime",
    "nomand",
    "norelatime",
    "nostrictatime",
    "nosuid",
    "nosymfollow",
    "private",
    "rbind",
    "relatime",
    "remount",
    "ro",
    "rprivate",
    "rshared",
    "rslave",
    "runbindable",
    "rw",
    "shared",
    "silent",
    "slave",
    "strictatime",
    "suid",
    "symfollow",
    "sync",
    "unbindable",
    "idmap",
    "ridmap",
    "recursive",
];

const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

/// The seccomp filter flags libcontainer applies (config.json's `linux.seccomp.flags`),
/// with the least libseccomp version that can set each and its kernel value.
const SECCOMP_FLAGS: &[(&str, (u32, u32, u32), u64)] = &[
    ("SECCOMP_FILTER_FLAG_TSYNC", (2, 2, 0), 1),
    ("SECCOMP_FILTER_FLAG_LOG", (2, 4, 0), 2),
    ("SECCOMP_FILTER_FLAG_SPEC_ALLOW", (2, 5, 0), 4),
    ("SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV", (2, 6, 0), 32),
];

/// Whether this kernel accepts a seccomp filter flag: installing a NULL filter with it fails
/// with EFAULT (the flag passed, the pointer did not) rather than EINVAL.
fn kernel_accepts_seccomp_flag(flag: u64) -> bool {
    const SECCOMP_SET_MODE_FILTER: u64 = 1;
    // SAFETY: seccomp(2) with a NULL filter installs nothing: it fails with EFAULT for a
    // flag the kernel knows, EINVAL for one it does not; no memory is read or written.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            SECCOMP_SET_MODE_FILTER,
            flag,
            std::ptr::null::<libc::c_void>(),
        )
    };
    rc == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EFAULT)
}

/// The loaded libseccomp's version, if it can tell.
fn libseccomp_version() -> Option<(u32, u32, u32)> {
    let v = libseccomp::ScmpVersion::current().ok()?;
    Some((v.major, v.minor, v.micro))
}

/// The architectures libcontainer translates for libseccomp (every one of the runtime
/// spec's but the pseudo-architecture "native").
const SECCOMP_ARCHS: &[Arch] = &[
    Arch::ScmpArchX86,
    Arch::ScmpArchX86_64,
    Arch::ScmpArchX32,
    Arch::ScmpArchArm,
    Arch::ScmpArchAarch64,
    Arch::ScmpArchMips,
    Arch::ScmpArchMips64,
    Arch::ScmpArchMips64n32,
    Arch::ScmpArchMipsel,
    Arch::ScmpArchMipsel64,
    Arch::ScmpArchMipsel64n32,
    Arch::ScmpArchPpc,
    Arch::ScmpArchPpc64,
    Arch::ScmpArchPpc64le,
    Arch::ScmpArchS390,
    Arch::ScmpArchS390x,
    Arch::ScmpArchRiscv64,
    Arch::ScmpArchParisc,
    Arch::ScmpArchParisc64,
    Arch::ScmpArchLoongarch64,
    Arch::ScmpArchM68k,
    Arch::ScmpArchSh,
    Arch::ScmpArchSheb,
];

pub fn run(_cli: &Cli, _args: FeaturesArgs) -> Result<()> {
    let namespaces = vec![
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Time,
    ];
    let mut capabilities: Vec<String> = caps::all().iter().map(|c| c.to_string()).collect();
    capabilities.sort();
    let library = libseccomp_version();
    let supported_flags: Vec<String> = SECCOMP_FLAGS
        .iter()
        .filter(|(_, least, bit)| {
            library.is_some_and(|v| v >= *least) && kernel_accepts_seccomp_flag(*bit)
        })
        .map(|(name, _, _)| name.to_string())
        .collect();
    let seccomp = SeccompBuilder::default()
        .enabled(libcontainer::BUILT_WITH_SECCOMP)
        .known_flags(
            SECCOMP_FLAGS
                .iter()
                .map(|(name, _, _)| name.to_string())
                .collect::<Vec<_>>(),
        )
        .supported_flags(supported_flags)
        .archs(SECCOMP_ARCHS.to_vec())
        .actions(vec![
            LinuxSeccompAction::ScmpActAllow,
            LinuxSeccompAction::ScmpActErrno,
            LinuxSeccompAction::ScmpActKill,
            LinuxSeccompAction::ScmpActKillProcess,
            LinuxSeccompAction::ScmpActKillThread,
            LinuxSeccompAction::ScmpActLog,
            LinuxSeccompAction::ScmpActNotify,
            LinuxSeccompAction::ScmpActTrace,
            LinuxSeccompAction::ScmpActTrap,
        ])
        .operators(
            [
                "SCMP_CMP_EQ",
                "SCMP_CMP_GE",
                "SCMP_CMP_GT",
                "SCMP_CMP_LE",
                "SCMP_CMP_LT",
                "SCMP_CMP_MASKED_EQ",
                "SCMP_CMP_NE",
            ]
            .map(String::from)
            .to_vec(),
        )
        .build()?;
    let linux = LinuxDoc {
        namespaces,
        capabilities,
        // The managers libcgroups was built with; systemd includes the user manager
        // (rootless --systemd-cgroup). No RDMA controller is implemented.
        cgroup: CgroupBuilder::default()
            .v1(libcgroups::build::V1)
            .v2(libcgroups::build::V2)
            .systemd(libcgroups::build::SYSTEMD)
            .systemd_user(libcgroups::build::SYSTEMD)
            .rdma(false)
            .build()?,
        seccomp,
        // libcontainer applies process.apparmorProfile; it sets no SELinux process label
        // (only mount labels); it writes linux.intelRdt's closID and schemata to resctrl.
        apparmor: ApparmorBuilder::default().enabled(true).build()?,
        selinux: SelinuxBuilder::default().enabled(false).build()?,
        intel_rdt: IntelRdtBuilder::default().enabled(true).build()?,
    };
    let mut annotations = BTreeMap::from([
        (
            "org.opencontainers.runtime-spec.features".to_string(),
            "runtime".to_string(),
        ),
        (
            "io.github.youki-dev.libcontainer.version".to_string(),
            "0.7.0".to_string(),
        ),
        (
            "run.oci.runtime.version".to_string(),
            env!("CARGO_PKG_VERSION").to_string(),
        ),
    ]);
    if let Some((major, minor, micro)) = library {
        annotations.insert(
            "io.github.seccomp.libseccomp.version".to_string(),
            format!("{major}.{minor}.{micro}"),
        );
    }
    let features = FeaturesDoc {
        oci_version_min: "1.0.0",
        oci_version_max: libcontainer::oci_spec::runtime::VERSION,
        hooks: HOOKS,
        mount_options: MOUNT_OPTIONS,
        linux,
        annotations,
    };
    crate::output::outln!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}

/// The features document laid out as runc prints it: the spec's fields in its order
/// (oci-spec's `Features` gives the same order) and annotations sorted, as Go's map is;
/// without the fields oci-spec would print as `null` (memoryPolicy, netDevices,
/// mountExtensions, potentiallyUnsafeConfigAnnotations: this build says nothing about
/// them, and the schema has no null).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FeaturesDoc {
    oci_version_min: &'static str,
    oci_version_max: &'static str,
    hooks: &'static [&'static str],
    mount_options: &'static [&'static str],
    linux: LinuxDoc,
    annotations: BTreeMap<String, String>,
}

/// `linux` of the features document (see `FeaturesDoc`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct LinuxDoc {
    namespaces: Vec<LinuxNamespaceType>,
    capabilities: Vec<String>,
    cgroup: Cgroup,
    seccomp: Seccomp,
    apparmor: Apparmor,
    selinux: Selinux,
    intel_rdt: IntelRdt,
}
