//! The seccomp profile of a bundle: docker's default profile unless told otherwise
//! (`--security-opt seccomp=unconfined|FILE`), turned into the runtime config's
//! `linux.seccomp` as docker does it for each container: the architectures of the host
//! (from the profile's `archMap`), and only the rules whose `includes` and `excludes`
//! match the container (its bounding capabilities, the host architecture, the running
//! kernel's version).
//!
//! `seccomp/docker-default.json` is moby's profile (github.com/moby/profiles,
//! seccomp/default.json, commit 02e898b1, Apache-2.0), kept as data: the same allow
//! list docker applies. A FILE is read in the same (docker) format; a file already in
//! the runtime-spec form (`architectures`, no `archMap`) is taken as it is.

use std::collections::HashSet;
use std::path::Path;

use oci_spec::runtime::{Capability, LinuxSeccomp};
use serde_json::{json, Map, Value};

/// moby's default profile.
pub const DOCKER_DEFAULT: &str = include_str!("seccomp/docker-default.json");

#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp profile {path}: {message}")]
    Profile { path: String, message: String },
}

/// The host, as a profile's conditions see it.
#[derive(Debug, Clone)]
pub struct Target {
    /// Go's name of the architecture (`amd64`, `arm64`, ...), what profiles match on.
    pub go_arch: &'static str,
    /// libseccomp's name of the native architecture (`SCMP_ARCH_X86_64`, ...).
    pub scmp_arch: &'static str,
    /// (major, minor) of the running kernel.
    pub kernel: (u32, u32),
}

impl Target {
    /// This machine.
    pub fn host() -> Self {
        let (go_arch, scmp_arch) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", "SCMP_ARCH_X86_64"),
            "x86" => ("386", "SCMP_ARCH_X86"),
            "aarch64" => ("arm64", "SCMP_ARCH_AARCH64"),
            "arm" => ("arm", "SCMP_ARCH_ARM"),
            "riscv64" => ("riscv64", "SCMP_ARCH_RISCV64"),
            "s390x" => ("s390x", "SCMP_ARCH_S390X"),
            "powerpc64" => ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "loongarch64" => ("loong64", "SCMP_ARCH_LOONGARCH64"),
            "mips64" => ("mips64le", "SCMP_ARCH_MIPSEL64"),
            // Profiles name no rule for it: the native architecture alone.
            _ => ("unknown", "SCMP_ARCH_NATIVE"),
        };
        let release = nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default();
        Self {
            go_arch,
            scmp_arch,
            kernel: parse_kernel(&release).unwrap_or((0, 0)),
        }
    }
}

/// "6.1.0-18-amd64" -> (6, 1).
fn parse_kernel(release: &str) -> Option<(u32, u32)> {
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// Whether a rule applies, by its `includes` (all must hold) and `excludes` (none may).
fn applies(rule: &Value, caps: &HashSet<String>, target: &Target) -> Result<bool, String> {
    let inc = &rule["includes"];
    let exc = &rule["excludes"];
    let arches = strings(&inc["arches"]);
    if !arches.is_empty() && !arches.contains(&target.go_arch) {
        return Ok(false);
    }
    if !strings(&inc["caps"]).iter().all(|c| caps.contains(*c)) {
        return Ok(false);
    }
    if let Some(min) = inc["minKernel"].as_str() {
        let want =
            parse_kernel(min).ok_or_else(|| format!("minKernel {min:?} is not a version"))?;
        if target.kernel < want {
            return Ok(false);
        }
    }
    if strings(&exc["arches"]).contains(&target.go_arch)
        || strings(&exc["caps"]).iter().any(|c| caps.contains(*c))
    {
        return Ok(false);
    }
    if let Some(min) = exc["minKernel"].as_str() {
        let want =
            parse_kernel(min).ok_or_else(|| format!("minKernel {min:?} is not a version"))?;
        if target.kernel >= want {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Converts a docker-format profile for a container with bounding set `caps`.
pub fn convert(
    profile: &Value,
    caps: &[Capability],
    target: &Target,
) -> Result<LinuxSeccomp, String> {
    let caps: HashSet<String> = caps
        .iter()
        .filter_map(|c| serde_json::to_value(c).ok())
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    let mut out = Map::new();
    for key in [
        "defaultAction",
        "defaultErrnoRet",
        "listenerPath",
        "listenerMetadata",
        "flags",
    ] {
        if let Some(v) = profile.get(key).filter(|v| !v.is_null()) {
            out.insert(key.to_string(), v.clone());
        }
    }
    if !out.contains_key("defaultAction") {
        return Err("no defaultAction".into());
    }
    let architectures: Vec<Value> = if let Some(map) = profile["archMap"].as_array() {
        map.iter()
            .filter(|m| m["architecture"] == target.scmp_arch)
            .flat_map(|m| {
                std::iter::once(m["architecture"].clone()).chain(
                    m["subArchitectures"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default(),
                )
            })
            .collect()
    } else {
        profile["architectures"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    if !architectures.is_empty() {
        out.insert("architectures".into(), Value::Array(architectures));
    }
    let mut syscalls = Vec::new();
    for rule in profile["syscalls"].as_array().into_iter().flatten() {
        if !applies(rule, &caps, target)? {
            continue;
        }
        let mut names = strings(&rule["names"]);
        if let Some(name) = rule["name"].as_str() {
            names.push(name);
        }
        if names.is_empty() {
            continue;
        }
        let mut s = json!({"names": names, "action": rule["action"]});
        for key in ["args", "errnoRet"] {
            if let Some(v) = rule.get(key).filter(|v| !v.is_null()) {
                s[key] = v.clone();
            }
        }
        syscalls.push(s);
    }
    out.insert("syscalls".into(), Value::Array(syscalls));
    serde_json::from_value(Value::Object(out)).map_err(|e| e.to_string())
}

/// Docker's default profile for a container with bounding set `caps` on this host.
pub fn docker_default(caps: &[Capability]) -> LinuxSeccomp {
    let profile: Value =
        serde_json::from_str(DOCKER_DEFAULT).expect("the embedded profile is JSON");
    convert(&profile, caps, &Target::host()).expect("the embedded profile converts")
}

/// The profile in `path` (docker's format, or the runtime-spec form).
pub fn from_file(path: &Path, caps: &[Capability]) -> Result<LinuxSeccomp, SeccompError> {
    let bad = |message: String| SeccompError::Profile {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let profile: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    convert(&profile, caps, &Target::host()).map_err(bad)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::spec::DOCKER_CAPABILITIES;

    fn amd64() -> Target {
        Target {
            go_arch: "amd64",
            scmp_arch: "SCMP_ARCH_X86_64",
            kernel: (6, 1),
        }
    }

    fn allowed(s: &LinuxSeccomp) -> HashSet<String> {
        let v = serde_json::to_value(s).unwrap();
        v["syscalls"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["action"] == "SCMP_ACT_ALLOW")
            .flat_map(|r| strings(&r["names"]).into_iter().map(str::to_string))
            .collect()
    }

    fn default_for(caps: &[Capability], target: &Target) -> Value {
        let profile: Value = serde_json::from_str(DOCKER_DEFAULT).unwrap();
        serde_json::to_value(convert(&profile, caps, target).unwrap()).unwrap()
    }

    #[test]
    fn docker_default_for_docker_caps_on_amd64() {
        let v = default_for(&DOCKER_CAPABILITIES, &amd64());
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(v["defaultErrnoRet"], 1);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"])
        );
        let s: LinuxSeccomp = serde_json::from_value(v.clone()).unwrap();
        let allow = allowed(&s);
        for yes in [
            "read",
            "execve",
            "clone",
            "arch_prctl",
            "chroot",
            "ptrace",
            "socket",
        ] {
            assert!(allow.contains(yes), "{yes} allowed");
        }
        // What docker denies a default container.
        for no in [
            "unshare",
            "keyctl",
            "add_key",
            "request_key",
            "mount",
            "setns",
            "bpf",
            "reboot",
            "kexec_load",
            "init_module",
            "swapon",
            "userfaultfd",
            "perf_event_open",
            "io_uring_setup",
            "open_by_handle_at",
            "s390_runtime_instr",
        ] {
            assert!(!allow.contains(no), "{no} denied");
        }
        // clone3 answers ENOSYS so that libcs fall back to clone; clone is allowed only
        // without namespace flags.
        let rules = v["syscalls"].as_array().unwrap();
        let clone3 = rules
            .iter()
            .find(|r| strings(&r["names"]) == ["clone3"])
            .unwrap();
        assert_eq!(
            (clone3["action"].as_str(), clone3["errnoRet"].as_u64()),
            (Some("SCMP_ACT_ERRNO"), Some(38))
        );
        let clone = rules
            .iter()
            .find(|r| strings(&r["names"]) == ["clone"])
            .unwrap();
        assert_eq!(clone["args"][0]["op"], "SCMP_CMP_MASKED_EQ");
        // socket: every address family docker allows, not AF_VSOCK (40).
        let sockets: Vec<&Value> = rules
            .iter()
            .filter(|r| strings(&r["names"]) == ["socket"])
            .collect();
        assert_eq!(sockets.len(), 26);
        assert!(!sockets.iter().any(|r| r["args"][0]["value"] == 40));
    }

    #[test]
    fn capabilities_and_kernels_select_rules() {
        let mut caps = DOCKER_CAPABILITIES.to_vec();
        caps.push(Capability::SysAdmin);
        let v = default_for(&caps, &amd64());
        let s: LinuxSeccomp = serde_json::from_value(v.clone()).unwrap();
        let allow = allowed(&s);
        assert!(allow.contains("mount") && allow.contains("unshare") && allow.contains("clone3"));
        assert!(
            !v["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["action"] == "SCMP_ACT_ERRNO"),
            "with CAP_SYS_ADMIN clone3 is allowed, not ENOSYS"
        );
        let old = Target {
            kernel: (4, 4),
            ..amd64()
        };
        let s: LinuxSeccomp =
            serde_json::from_value(default_for(&DOCKER_CAPABILITIES, &old)).unwrap();
        assert!(
            !allowed(&s).contains("ptrace"),
            "ptrace needs 4.8 without CAP_SYS_PTRACE"
        );
        let arm = Target {
            go_arch: "arm64",
            scmp_arch: "SCMP_ARCH_AARCH64",
            kernel: (6, 1),
        };
        let v = default_for(&DOCKER_CAPABILITIES, &arm);
        assert_eq!(
            v["architectures"],
            json!(["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"])
        );
        let s: LinuxSeccomp = serde_json::from_value(v).unwrap();
        assert!(allowed(&s).contains("set_tls") && !allowed(&s).contains("arch_prctl"));
    }

    #[test]
    fn runtime_spec_profiles_pass_through_and_bad_ones_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("p.json");
        std::fs::write(
            &p,
            r#"{"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}"#,
        )
        .unwrap();
        let v = serde_json::to_value(from_file(&p, &DOCKER_CAPABILITIES).unwrap()).unwrap();
        assert_eq!(v["syscalls"][0]["errnoRet"], 13);
        assert_eq!(v["architectures"], json!(["SCMP_ARCH_X86_64"]));
        std::fs::write(&p, r#"{"syscalls": []}"#).unwrap();
        let e = from_file(&p, &[]).unwrap_err().to_string();
        assert!(e.contains("p.json") && e.contains("defaultAction"), "{e}");
        let e = from_file(&dir.path().join("none.json"), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("none.json"), "{e}");
    }

    #[test]
    fn kernel_versions() {
        assert_eq!(parse_kernel("6.1.0-18-amd64"), Some((6, 1)));
        assert_eq!(parse_kernel("4.8"), Some((4, 8)));
        assert_eq!(parse_kernel("x"), None);
    }
}
