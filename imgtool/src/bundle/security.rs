//! docker's security options for a bundle: `--cap-add` / `--cap-drop` on docker's
//! default capability set, and `--security-opt seccomp=unconfined|FILE` and
//! `no-new-privileges` (docker's default seccomp profile otherwise), and `--read-only`.

use std::path::PathBuf;

use oci_spec::runtime::{Capability, Spec};

use super::seccomp::{self, SeccompError};
use super::spec::DOCKER_CAPABILITIES;

#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("{option} {name:?}: unknown capability")]
    UnknownCapability { option: &'static str, name: String },
    #[error("--security-opt {0:?}: expected seccomp=unconfined, seccomp=FILE or no-new-privileges[=true|false]")]
    BadOption(String),
    #[error(transparent)]
    Seccomp(#[from] SeccompError),
}

/// Which seccomp filter the container gets.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SeccompChoice {
    /// docker's default profile.
    #[default]
    Default,
    /// No filter.
    Unconfined,
    /// A profile file.
    File(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityOptions {
    /// The bounding set (and, for root, the effective and permitted sets).
    pub capabilities: Vec<Capability>,
    pub seccomp: SeccompChoice,
    pub no_new_privileges: bool,
    /// `--read-only`: the root filesystem is mounted read-only.
    pub read_only: bool,
}

impl Default for SecurityOptions {
    fn default() -> Self {
        Self {
            capabilities: DOCKER_CAPABILITIES.to_vec(),
            seccomp: SeccompChoice::Default,
            no_new_privileges: false,
            read_only: false,
        }
    }
}

/// Every capability, in kernel order (the index is the capability's number).
const ALL_CAPABILITIES: [Capability; 41] = [
    Capability::Chown,
    Capability::DacOverride,
    Capability::DacReadSearch,
    Capability::Fowner,
    Capability::Fsetid,
    Capability::Kill,
    Capability::Setgid,
    Capability::Setuid,
    Capability::Setpcap,
    Capability::LinuxImmutable,
    Capability::NetBindService,
    Capability::NetBroadcast,
    Capability::NetAdmin,
    Capability::NetRaw,
    Capability::IpcLock,
    Capability::IpcOwner,
    Capability::SysModule,
    Capability::SysRawio,
    Capability::SysChroot,
    Capability::SysPtrace,
    Capability::SysPacct,
    Capability::SysAdmin,
    Capability::SysBoot,
    Capability::SysNice,
    Capability::SysResource,
    Capability::SysTime,
    Capability::SysTtyConfig,
    Capability::Mknod,
    Capability::Lease,
    Capability::AuditWrite,
    Capability::AuditControl,
    Capability::Setfcap,
    Capability::MacOverride,
    Capability::MacAdmin,
    Capability::Syslog,
    Capability::WakeAlarm,
    Capability::BlockSuspend,
    Capability::AuditRead,
    Capability::Perfmon,
    Capability::Bpf,
    Capability::CheckpointRestore,
];

/// The capabilities this kernel knows (docker's "ALL").
fn kernel_capabilities() -> Vec<Capability> {
    let last: usize = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(ALL_CAPABILITIES.len() - 1);
    ALL_CAPABILITIES[..=last.min(ALL_CAPABILITIES.len() - 1)].to_vec()
}

enum CapName {
    All,
    One(Capability),
}

fn parse_cap(option: &'static str, name: &str) -> Result<CapName, SecurityError> {
    if name.eq_ignore_ascii_case("ALL") {
        return Ok(CapName::All);
    }
    // Docker takes names with or without CAP_, in any case.
    serde_json::from_value::<Capability>(serde_json::Value::String(name.to_string()))
        .map(CapName::One)
        .map_err(|_| SecurityError::UnknownCapability {
            option,
            name: name.to_string(),
        })
}

/// docker's rule: `--cap-add ALL` is every capability but the dropped ones; `--cap-drop
/// ALL` is only the added ones; otherwise the defaults minus the dropped plus the added
/// (an added capability wins over the same one dropped).
pub fn capabilities(add: &[String], drop: &[String]) -> Result<Vec<Capability>, SecurityError> {
    let parse_all = |option, names: &[String]| -> Result<(bool, Vec<Capability>), SecurityError> {
        let mut all = false;
        let mut caps = Vec::new();
        for n in names {
            match parse_cap(option, n)? {
                CapName::All => all = true,
                CapName::One(c) => caps.push(c),
            }
        }
        Ok((all, caps))
    };
    let (add_all, adds) = parse_all("--cap-add", add)?;
    let (drop_all, drops) = parse_all("--cap-drop", drop)?;
    let mut out: Vec<Capability> = if add_all {
        kernel_capabilities()
            .into_iter()
            .filter(|c| !drops.contains(c))
            .collect()
    } else if drop_all {
        adds
    } else {
        DOCKER_CAPABILITIES
            .iter()
            .copied()
            .filter(|c| !drops.contains(c))
            .chain(adds)
            .collect()
    };
    let mut seen = std::collections::HashSet::new();
    out.retain(|c| seen.insert(*c));
    Ok(out)
}

/// Parses the `--security-opt` values into `opts`.
pub fn apply_security_opts(
    opts: &mut SecurityOptions,
    values: &[String],
) -> Result<(), SecurityError> {
    for v in values {
        // docker accepts both KEY=VALUE and the older KEY:VALUE.
        let (key, value) = match v.split_once(['=', ':']) {
            Some((k, val)) => (k, Some(val)),
            None => (v.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => opts.seccomp = SeccompChoice::Unconfined,
            ("seccomp", Some(file)) if !file.is_empty() => {
                opts.seccomp = SeccompChoice::File(PathBuf::from(file))
            }
            ("no-new-privileges", None | Some("true")) => opts.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => opts.no_new_privileges = false,
            _ => return Err(SecurityError::BadOption(v.clone())),
        }
    }
    Ok(())
}

/// Lays the seccomp filter, no_new_privileges and the read-only root over `spec` (the
/// capabilities are set by `spec::apply_options`).
pub fn apply(spec: &mut Spec, opts: &SecurityOptions) -> Result<(), SecurityError> {
    let filter = match &opts.seccomp {
        SeccompChoice::Default => Some(seccomp::docker_default(&opts.capabilities)),
        SeccompChoice::Unconfined => None,
        SeccompChoice::File(path) => Some(seccomp::from_file(path, &opts.capabilities)?),
    };
    if let Some(linux) = spec.linux_mut() {
        linux.set_seccomp(filter);
    }
    if let Some(process) = spec.process_mut() {
        process.set_no_new_privileges(Some(opts.no_new_privileges));
    }
    if opts.read_only {
        if let Some(root) = spec.root_mut() {
            root.set_readonly(Some(true));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn docker_rules_for_add_and_drop() {
        assert_eq!(
            capabilities(&[], &[]).unwrap(),
            DOCKER_CAPABILITIES.to_vec()
        );
        let c = capabilities(&s(&["sys_admin", "CAP_NET_ADMIN"]), &s(&["mknod"])).unwrap();
        assert!(c.contains(&Capability::SysAdmin) && c.contains(&Capability::NetAdmin));
        assert!(!c.contains(&Capability::Mknod));
        assert_eq!(c.len(), DOCKER_CAPABILITIES.len() + 1);
        let c = capabilities(&s(&["chown"]), &s(&["ALL"])).unwrap();
        assert_eq!(c, [Capability::Chown]);
        let c = capabilities(&s(&["all"]), &s(&["SYS_ADMIN"])).unwrap();
        assert!(c.len() > DOCKER_CAPABILITIES.len() && !c.contains(&Capability::SysAdmin));
        // Added and dropped: added wins (docker drops first, then adds).
        let c = capabilities(&s(&["KILL"]), &s(&["KILL"])).unwrap();
        assert!(c.contains(&Capability::Kill));
        let e = capabilities(&s(&["CAP_FLY"]), &[]).unwrap_err().to_string();
        assert_eq!(e, "--cap-add \"CAP_FLY\": unknown capability");
    }

    #[test]
    fn security_opt_forms() {
        let mut o = SecurityOptions::default();
        apply_security_opts(&mut o, &s(&["seccomp=unconfined", "no-new-privileges"])).unwrap();
        assert_eq!(o.seccomp, SeccompChoice::Unconfined);
        assert!(o.no_new_privileges);
        apply_security_opts(&mut o, &s(&["seccomp:/p.json", "no-new-privileges=false"])).unwrap();
        assert_eq!(o.seccomp, SeccompChoice::File("/p.json".into()));
        assert!(!o.no_new_privileges);
        for bad in ["apparmor=x", "seccomp=", "seccomp", "label=disable"] {
            assert!(apply_security_opts(&mut o, &s(&[bad])).is_err(), "{bad}");
        }
    }

    #[test]
    fn capability_table_is_in_kernel_order() {
        // Spot checks against linux/capability.h.
        assert_eq!(ALL_CAPABILITIES[21], Capability::SysAdmin);
        assert_eq!(ALL_CAPABILITIES[27], Capability::Mknod);
        assert_eq!(ALL_CAPABILITIES[37], Capability::AuditRead);
        assert_eq!(ALL_CAPABILITIES[40], Capability::CheckpointRestore);
    }
}
