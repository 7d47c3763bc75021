//! `features`: what this build supports, as the runtime-spec features document, so engines
//! can decide what to ask of us.

use std::collections::HashMap;

use anyhow::Result;
use clap::Args;
use libcontainer::oci_spec::runtime::{
    ApparmorBuilder, CgroupBuilder, FeaturesBuilder, IntelRdtBuilder, LinuxFeatureBuilder,
    LinuxNamespaceType, LinuxSeccompAction, SeccompBuilder, SelinuxBuilder,
};

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
    let seccomp = SeccompBuilder::default()
        .enabled(true)
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
    let linux = LinuxFeatureBuilder::default()
        .namespaces(namespaces)
        .capabilities(capabilities)
        .cgroup(
            CgroupBuilder::default()
                .v1(true)
                .v2(true)
                .systemd(true)
                .systemd_user(true)
                .build()?,
        )
        .seccomp(seccomp)
        .apparmor(ApparmorBuilder::default().enabled(true).build()?)
        .selinux(SelinuxBuilder::default().enabled(false).build()?)
        .intel_rdt(IntelRdtBuilder::default().enabled(true).build()?)
        .build()?;
    let annotations = HashMap::from([
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
    let features = FeaturesBuilder::default()
        .oci_version_min("1.0.0")
        .oci_version_max(libcontainer::oci_spec::runtime::VERSION)
        .hooks(HOOKS.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .mount_options(
            MOUNT_OPTIONS
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>(),
        )
        .linux(linux)
        .annotations(annotations)
        .build()?;
    crate::output::outln!("{}", serde_json::to_string_pretty(&features)?);
    Ok(())
}
