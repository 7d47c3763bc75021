//! Checks a bundle's config.json before libcontainer sees it, so hostile or broken input
//! gets one error line naming the field (`process.rlimits[0].soft ...`) instead of a panic,
//! a bare syscall error half-way through setting the container up, or an escape.
//!
//! Three layers:
//! - `parse`: the JSON is deserialized with the path of the field that failed
//!   (`process.args: invalid type: string "sh", expected a sequence`).
//! - `validate`: what the runtime spec requires but the types do not say (absolute paths,
//!   positive timeouts, value ranges the kernel would refuse later).
//! - `check_proc_mounts`: nothing but procfs may be mounted on the container's /proc, also
//!   when the destination reaches /proc through a symlink in the rootfs, and procfs/sysfs
//!   may not be mounted through a symlink (CVE-2019-16884, CVE-2019-19921, CVE-2023-27561).
//!   libcontainer 0.7 checks /proc only for mounts of type proc or sysfs, so a bind mount
//!   of a fake procfs over /proc went through.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use libcontainer::oci_spec::runtime::{Hook, Spec};

use crate::container::test_switches::unsafe_enabled;

/// A parsed config.json and the capability names it gave that runc would not know.
pub struct Parsed {
    pub spec: Spec,
    /// Left out of the sets, as runc leaves them (`warn_ignored_capabilities`).
    pub ignored_capabilities: Vec<String>,
}

/// Parses config.json; the error names the field that does not fit the runtime spec.
/// Capability names runc does not know are taken out of the sets first (runc 1.1.5 warns
/// and runs without them; oci-spec would refuse the whole file).
pub fn parse(text: &[u8]) -> Result<Parsed, String> {
    let mut value: serde_json::Value = match serde_json::from_slice(text) {
        Ok(v) => v,
        // Not JSON at all: the typed parse below says where.
        Err(_) => serde_json::Value::Null,
    };
    let ignored_capabilities = value
        .get_mut("process")
        .map(libcontainer::capabilities::remove_unknown_names)
        .unwrap_or_default();
    let spec = if ignored_capabilities.is_empty() {
        parse_typed(text)?
    } else {
        parse_typed(&serde_json::to_vec(&value).map_err(|e| e.to_string())?)?
    };
    Ok(Parsed {
        spec,
        ignored_capabilities,
    })
}

/// runc's warning for capability names it leaves out (a logrus warning record).
pub fn warn_ignored_capabilities(names: &[String]) {
    if !names.is_empty() {
        crate::logging::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

fn parse_typed(text: &[u8]) -> Result<Spec, String> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let spec: Spec = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        }
    })?;
    de.end().map_err(|e| e.to_string())?;
    Ok(spec)
}

/// Whether an absolute path is /proc or below it once `.` and `..` are applied.
fn lexically_under_proc(path: &Path) -> bool {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in path.components() {
        match c {
            std::path::Component::Normal(p) => parts.push(p),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    parts.first().is_some_and(|p| *p == "proc")
}

/// The highest hostname length the kernel accepts (HOST_NAME_MAX).
const HOST_NAME_MAX: usize = 64;

/// Checks what the runtime spec requires beyond the JSON types. The error starts with the
/// field's path.
pub fn validate(spec: &Spec) -> Result<(), String> {
    if !spec.version().starts_with("1.") {
        return Err(format!(
            "ociVersion {:?} is not a 1.x runtime-spec version",
            spec.version()
        ));
    }
    let Some(root) = spec.root() else {
        return Err("root is missing".into());
    };
    if root.path().as_os_str().is_empty() {
        return Err("root.path is empty".into());
    }
    let Some(process) = spec.process() else {
        return Err("process is missing".into());
    };
    if process.args().as_ref().is_none_or(|a| a.is_empty()) {
        return Err("process.args must not be empty".into());
    }
    if process.args().iter().flatten().any(|a| a.contains('\0')) {
        return Err("process.args contains a NUL byte".into());
    }
    if !process.cwd().is_absolute() {
        return Err(format!(
            "process.cwd {:?} must be an absolute path",
            process.cwd()
        ));
    }
    if lexically_under_proc(process.cwd()) && !unsafe_enabled("proc-cwd-check") {
        // /proc/self/fd/N, /proc/self/cwd, /proc/1/root...: a working directory there can be
        // a descriptor the runtime holds on a host directory (CVE-2024-21626).
        return Err(format!(
            "process.cwd {:?} is under /proc: it could lead out of the container",
            process.cwd()
        ));
    }
    if let Some(env) = process.env() {
        for (i, e) in env.iter().enumerate() {
            if e.contains('\0') {
                return Err(format!("process.env[{i}] contains a NUL byte"));
            }
        }
    }
    if let Some(adj) = process.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(format!("process.oomScoreAdj {adj} is outside -1000..1000"));
        }
    }
    if let Some(rlimits) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rlimits.iter().enumerate() {
            if r.soft() > r.hard() {
                return Err(format!(
                    "process.rlimits[{i}] ({}): soft {} is above hard {}",
                    serde_name(&r.typ()),
                    r.soft(),
                    r.hard()
                ));
            }
            if !seen.insert(serde_name(&r.typ())) {
                return Err(format!(
                    "process.rlimits[{i}]: {} is set twice",
                    serde_name(&r.typ())
                ));
            }
        }
    }
    if let Some(hostname) = spec.hostname() {
        if hostname.len() > HOST_NAME_MAX {
            return Err(format!(
                "hostname is {} bytes long, the limit is {HOST_NAME_MAX}",
                hostname.len()
            ));
        }
    }
    if let Some(domain) = spec.domainname() {
        if domain.len() > HOST_NAME_MAX {
            return Err(format!(
                "domainname is {} bytes long, the limit is {HOST_NAME_MAX}",
                domain.len()
            ));
        }
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(format!(
                "mounts[{i}].destination {:?} must be an absolute path",
                m.destination()
            ));
        }
    }
    if let Some(hooks) = spec.hooks() {
        let kinds: [(&str, &Option<Vec<Hook>>); 6] = [
            ("prestart", hooks.prestart()),
            ("createRuntime", hooks.create_runtime()),
            ("createContainer", hooks.create_container()),
            ("startContainer", hooks.start_container()),
            ("poststart", hooks.poststart()),
            ("poststop", hooks.poststop()),
        ];
        for (kind, list) in kinds {
            for (i, h) in list.iter().flatten().enumerate() {
                if !h.path().is_absolute() {
                    return Err(format!(
                        "hooks.{kind}[{i}].path {:?} must be an absolute path",
                        h.path()
                    ));
                }
                if let Some(t) = h.timeout() {
                    if t <= 0 {
                        return Err(format!(
                            "hooks.{kind}[{i}].timeout {t} must be greater than zero"
                        ));
                    }
                }
            }
        }
    }
    let Some(linux) = spec.linux() else {
        return Err("linux is missing".into());
    };
    let mut types = HashSet::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        if !types.insert(ns.typ()) {
            return Err(format!(
                "linux.namespaces[{i}]: namespace {} is listed twice",
                serde_name(&ns.typ())
            ));
        }
        if let Some(p) = ns.path() {
            if !p.is_absolute() {
                return Err(format!(
                    "linux.namespaces[{i}].path {p:?} must be an absolute path"
                ));
            }
        }
    }
    for (field, maps) in [
        ("uidMappings", linux.uid_mappings()),
        ("gidMappings", linux.gid_mappings()),
    ] {
        for (i, m) in maps.iter().flatten().enumerate() {
            if m.size() == 0 {
                return Err(format!("linux.{field}[{i}].size must be greater than zero"));
            }
        }
    }
    // maskedPaths and readonlyPaths may be relative: runc takes them from the
    // container's root, and so does the fork (patch 0307).
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        if !d.path().is_absolute() {
            return Err(format!(
                "linux.devices[{i}].path {:?} must be an absolute path",
                d.path()
            ));
        }
    }
    if let Some(res) = linux.resources() {
        if let Some(mem) = res.memory() {
            for (field, value) in [
                ("limit", mem.limit()),
                ("reservation", mem.reservation()),
                ("swap", mem.swap()),
                ("kernel", mem.kernel()),
                ("kernelTCP", mem.kernel_tcp()),
            ] {
                if let Some(v) = value {
                    if v < -1 {
                        return Err(format!(
                            "linux.resources.memory.{field} {v} must be -1 (unlimited) or positive"
                        ));
                    }
                }
            }
            if let Some(s) = mem.swappiness() {
                if s > 100 {
                    return Err(format!(
                        "linux.resources.memory.swappiness {s} is above 100"
                    ));
                }
            }
        }
        if let Some(cpu) = res.cpu() {
            // 0 means "not set" for quota and period, as runc reads them.
            if let Some(q) = cpu.quota() {
                if q < -1 {
                    return Err(format!(
                        "linux.resources.cpu.quota {q} must be -1 (unlimited) or positive"
                    ));
                }
            }
        }
        if let Some(pids) = res.pids() {
            if pids.limit() < -1 {
                return Err(format!(
                    "linux.resources.pids.limit {} must be -1 (unlimited) or positive",
                    pids.limit()
                ));
            }
        }
    }
    Ok(())
}

/// A value's name as config.json spells it (`RLIMIT_NOFILE`, `pid`).
fn serde_name<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_value(v)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Files under /proc that may be bind-mounted over (what lxcfs emulates), as runc allows.
const PROC_FILES_ALLOWED: &[&str] = &[
    "cpuinfo",
    "diskstats",
    "meminfo",
    "stat",
    "swaps",
    "uptime",
    "loadavg",
    "slabinfo",
    "sys/kernel/ns_last_pid",
    "sys/crypto/fips_enabled",
];

/// procfs's magic number (statfs f_type).
const PROC_SUPER_MAGIC: i64 = 0x9fa0;

/// Refuses mounts that would put something other than procfs on the container's /proc
/// (after resolving the destination inside the rootfs, symlinks included), mounts over
/// files under /proc other than lxcfs's, and procfs or sysfs mounted through a symlink.
pub fn check_proc_mounts(rootfs: &Path, spec: &Spec) -> Result<(), String> {
    if unsafe_enabled("proc-mount-check") {
        return Ok(());
    }
    let rootfs = std::fs::canonicalize(rootfs)
        .map_err(|e| format!("root.path {}: {e}", rootfs.display()))?;
    let proc_dir = rootfs.join("proc");
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let dest = m.destination();
        // A `bind`/`rbind` option makes any mount a bind mount (runc ignores the type
        // then): a `proc`-typed bind of a directory is judged as the bind it is.
        let typ = if is_bind(m) {
            "bind"
        } else {
            m.typ().as_deref().unwrap_or("")
        };
        if matches!(typ, "proc" | "sysfs") {
            if let Some(link) = first_symlink(&rootfs, dest) {
                return Err(format!(
                    "mounts[{i}]: {typ} cannot be mounted on {}: {} is a symlink in the rootfs",
                    dest.display(),
                    link.display()
                ));
            }
        }
        let resolved = safe_path::scoped_join(&rootfs, dest)
            .map_err(|e| format!("mounts[{i}].destination {}: {e}", dest.display()))?;
        let Ok(under_proc) = resolved.strip_prefix(&proc_dir) else {
            continue;
        };
        let via = if resolved == rootfs.join(dest.strip_prefix("/").unwrap_or(dest)) {
            String::new()
        } else {
            format!(
                " (it resolves to /proc/{} in the rootfs)",
                under_proc.display()
            )
        };
        if under_proc.as_os_str().is_empty() {
            if typ == "proc" || is_procfs_root_bind(m) {
                continue;
            }
            return Err(format!(
                "mounts[{i}]: {} cannot be mounted on /proc{via}: only procfs may be",
                m.source()
                    .as_ref()
                    .map(|s| s.display().to_string())
                    .unwrap_or_else(|| typ.to_string())
            ));
        }
        let allowed = PROC_FILES_ALLOWED
            .iter()
            .any(|f| under_proc == Path::new(f));
        if !allowed {
            return Err(format!(
                "mounts[{i}]: {} is not a valid mount destination under /proc{via}",
                dest.display()
            ));
        }
    }
    Ok(())
}

/// The first component of `dest` inside `rootfs` that is a symlink, if any.
fn first_symlink(rootfs: &Path, dest: &Path) -> Option<PathBuf> {
    let mut cur = rootfs.to_path_buf();
    let mut shown = PathBuf::from("/");
    for part in dest.components() {
        if let std::path::Component::Normal(p) = part {
            cur.push(p);
            shown.push(p);
            match std::fs::symlink_metadata(&cur) {
                Ok(m) if m.file_type().is_symlink() => return Some(shown),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
    None
}

/// Whether a mount is a bind mount: its type says so, or a `bind`/`rbind` option does.
fn is_bind(m: &libcontainer::oci_spec::runtime::Mount) -> bool {
    m.typ().as_deref() == Some("bind")
        || m.options()
            .iter()
            .flatten()
            .any(|o| o == "bind" || o == "rbind")
}

/// A bind mount of a procfs root (what some engines do) is procfs too.
fn is_procfs_root_bind(m: &libcontainer::oci_spec::runtime::Mount) -> bool {
    if !is_bind(m) {
        return false;
    }
    let Some(src) = m.source() else { return false };
    match nix::sys::statfs::statfs(src) {
        Ok(st) => st.filesystem_type().0 == PROC_SUPER_MAGIC,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Result<Spec, String> {
        parse(v.to_string().as_bytes()).map(|p| p.spec)
    }

    #[test]
    fn unknown_capability_names_are_left_out() {
        let parsed = parse(
            serde_json::json!({"ociVersion": "1.0.2", "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                "capabilities": {"bounding": ["CAP_KILL", "CAP_NO_SUCH", "SYS_ADMIN"]}}})
            .to_string()
            .as_bytes(),
        )
        .unwrap();
        assert_eq!(parsed.ignored_capabilities, ["CAP_NO_SUCH", "SYS_ADMIN"]);
        let bounding = parsed
            .spec
            .process()
            .as_ref()
            .and_then(|p| p.capabilities().as_ref())
            .and_then(|c| c.bounding().clone())
            .unwrap();
        assert_eq!(bounding.len(), 1);
    }

    #[test]
    fn parse_errors_name_the_field() {
        let err =
            spec(serde_json::json!({"ociVersion": "1.0.2", "process": {"args": "sh", "cwd": "/"}}))
                .unwrap_err();
        assert!(err.starts_with("process.args:"), "{err}");
    }

    #[test]
    fn trailing_garbage_is_refused() {
        assert!(parse(b"{\"ociVersion\": \"1.0.2\"} x").is_err());
    }
}
