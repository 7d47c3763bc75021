//! PATCH (runtime, see third_party/README.md): the config's LSM fields are refused up
//! front when the host has no such LSM, as runc and crun refuse them.
//!
//! Before, `process.selinuxLabel` without SELinux ran the container unconfined (the label
//! was ignored), `process.apparmorProfile` without AppArmor failed with "io error: No such
//! file or directory" (the AppArmor check read a file that only exists with AppArmor), and
//! `linux.mountLabel` without SELinux failed half-way with "failed to mount path as
//! masked". Each is now one line naming the field and the missing LSM, before anything is
//! created.

use std::path::Path;

use oci_spec::runtime::Spec;

use crate::error::ErrInvalidSpec;

/// SELinux is enabled when selinuxfs is mounted where the kernel's tools look for it and
/// the process has a context other than the kernel's placeholder (as go-selinux decides).
pub fn selinux_enabled() -> bool {
    let mounted = ["/sys/fs/selinux", "/selinux"].iter().any(|p| {
        nix::sys::statfs::statfs(Path::new(p))
            .is_ok_and(|st| st.filesystem_type() == nix::sys::statfs::SELINUX_MAGIC)
    });
    mounted
        && std::fs::read_to_string("/proc/self/attr/current")
            .is_ok_and(|c| c.trim_end_matches('\0').trim() != "kernel")
}

/// AppArmor is enabled when securityfs shows it and the module says so (as runc decides).
pub fn apparmor_enabled() -> bool {
    Path::new("/sys/kernel/security/apparmor").exists()
        && std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|v| v.starts_with('Y'))
}

/// Refuses an LSM field of `spec` whose LSM this host does not have.
pub fn check(spec: &Spec) -> Result<(), ErrInvalidSpec> {
    check_with(spec, selinux_enabled(), apparmor_enabled())
}

fn check_with(spec: &Spec, selinux: bool, apparmor: bool) -> Result<(), ErrInvalidSpec> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let process = spec.process().as_ref();
    if !selinux && process.is_some_and(|p| set(p.selinux_label())) {
        return Err(ErrInvalidSpec::LsmNotEnabled {
            field: "process.selinuxLabel",
            lsm: "SELinux",
        });
    }
    if !apparmor && process.is_some_and(|p| set(p.apparmor_profile())) {
        return Err(ErrInvalidSpec::LsmNotEnabled {
            field: "process.apparmorProfile",
            lsm: "AppArmor",
        });
    }
    if !selinux && spec.linux().as_ref().is_some_and(|l| set(l.mount_label())) {
        return Err(ErrInvalidSpec::LsmNotEnabled {
            field: "linux.mountLabel",
            lsm: "SELinux",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> Spec {
        let mut base = serde_json::to_value(Spec::default()).unwrap();
        json_merge(&mut base, v);
        serde_json::from_value(base).unwrap()
    }

    fn json_merge(a: &mut serde_json::Value, b: serde_json::Value) {
        match (a, b) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                for (k, v) in b {
                    json_merge(a.entry(k).or_insert(serde_json::Value::Null), v);
                }
            }
            (a, b) => *a = b,
        }
    }

    #[test]
    fn each_field_names_its_lsm() {
        let label = spec(serde_json::json!({"process": {"selinuxLabel": "system_u:system_r:container_t:s0"}}));
        let profile = spec(serde_json::json!({"process": {"apparmorProfile": "docker-default"}}));
        let mount = spec(serde_json::json!({"linux": {"mountLabel": "system_u:object_r:container_file_t:s0"}}));
        for (s, field, lsm) in [
            (&label, "process.selinuxLabel", "SELinux"),
            (&profile, "process.apparmorProfile", "AppArmor"),
            (&mount, "linux.mountLabel", "SELinux"),
        ] {
            let msg = check_with(s, false, false).unwrap_err().to_string();
            assert!(msg.contains(field) && msg.contains(lsm), "{msg}");
            assert!(check_with(s, true, true).is_ok());
        }
        assert!(check_with(&Spec::default(), false, false).is_ok());
        let empty = spec(serde_json::json!({"process": {"apparmorProfile": ""}}));
        assert!(check_with(&empty, false, false).is_ok());
    }
}
