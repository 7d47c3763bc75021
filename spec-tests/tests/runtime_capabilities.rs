//! Which capabilities a container's process holds when the config says little or something
//! runc would not understand: no `capabilities` object, a set left out, an unknown name,
//! and what `spec` writes (no inheritable set, CVE-2022-29162). Each check has a negative
//! control showing it sees capabilities when the config grants them.

use std::time::Duration;

use serde_json::json;
use spec_tests::bundle::Bundle;
use spec_tests::container::Runtime;

/// The capability lines of the process's own status.
const CAPS: &str = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' /proc/self/status";

/// CAP_CHOWN, CAP_KILL and CAP_SYS_ADMIN as bits of the /proc/PID/status masks.
const CHOWN: u64 = 1 << 0;
const KILL: u64 = 1 << 5;
const SYS_ADMIN: u64 = 1 << 21;

/// The mask of a `CapXxx:` line.
fn mask(status: &str, key: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in {status:?}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap_or_else(|e| panic!("{key} {hex:?}: {e}"))
}

/// Every set's mask: (Inh, Prm, Eff, Bnd, Amb).
fn masks(status: &str) -> [u64; 5] {
    ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"].map(|k| mask(status, k))
}

/// Runs `CAPS` (and then `extra`) in a container of this bundle: its stdout and stderr.
fn run_caps(b: &mut Bundle, name: &str, extra: &str) -> (String, String) {
    b.sh(&format!("{CAPS}; {extra}"));
    let rt = Runtime::new();
    let c = rt.guard(name);
    let out = rt.run(b.path(), c.id()).ok();
    (out.stdout, out.stderr)
}

/// Without a `capabilities` object the process has none (runc's behaviour), and root in
/// the container cannot do what a capability would allow. Upstream libcontainer skipped the
/// drop and left the process every capability the runtime had.
#[test]
fn no_capabilities_object_means_none() {
    let chown = "touch /tmp/f && chown 1 /tmp/f && echo chowned || echo refused";
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false))
        .remove("/process/capabilities");
    let (out, _) = run_caps(&mut b, "nocaps", chown);
    assert_eq!(masks(&out), [0; 5], "{out}");
    assert!(out.contains("refused"), "{out}");

    // Negative control: the same check sees a capability the config grants.
    let mut b = Bundle::busybox();
    b.set("/root/readonly", json!(false)).set(
        "/process/capabilities",
        json!({"bounding": ["CAP_CHOWN"], "effective": ["CAP_CHOWN"], "permitted": ["CAP_CHOWN"]}),
    );
    let (out, _) = run_caps(&mut b, "chowncap", chown);
    let [_, prm, eff, bnd, _] = masks(&out);
    assert_eq!((prm, eff, bnd), (CHOWN, CHOWN, CHOWN), "{out}");
    assert!(out.contains("chowned"), "{out}");
    println!("control: with CAP_CHOWN granted the check sees it and chown works");
}

/// A set the config leaves out is empty (runc clears every set, then sets the listed
/// ones): with only `bounding`, root holds nothing in effective or permitted.
#[test]
fn a_set_left_out_is_empty() {
    let mut b = Bundle::busybox();
    b.set("/process/capabilities", json!({"bounding": ["CAP_KILL"]}));
    let (out, _) = run_caps(&mut b, "bndonly", "true");
    assert_eq!(masks(&out), [0, 0, 0, KILL, 0], "{out}");

    // Negative control: the sets given explicitly are seen.
    let mut b = Bundle::busybox();
    b.set(
        "/process/capabilities",
        json!({"bounding": ["CAP_KILL"], "effective": ["CAP_KILL"], "permitted": ["CAP_KILL"]}),
    );
    let (out, _) = run_caps(&mut b, "bndeffprm", "true");
    assert_eq!(masks(&out), [0, KILL, KILL, KILL, 0], "{out}");
    println!("control: effective and permitted given are seen");
}

/// A process joining a container without capabilities (`exec`) gets none either, and
/// `exec --cap` adds to empty sets, not to a default.
#[test]
fn exec_into_a_container_without_capabilities_gets_none() {
    let mut b = Bundle::busybox();
    b.remove("/process/capabilities").args(&["sleep", "100"]);
    let rt = Runtime::new();
    let c = rt.guard("execnocaps");
    rt.create(b.path(), c.id()).ok();
    rt.exec(&["start", c.id()]).ok();
    rt.wait_status(c.id(), "running", Duration::from_secs(20));
    let out = rt.exec(&["exec", c.id(), "sh", "-c", CAPS]).ok();
    assert_eq!(masks(&out.stdout), [0; 5], "{out:?}");

    // Negative control: --cap is seen, and only it.
    let out = rt
        .exec(&["exec", "--cap", "CAP_KILL", c.id(), "sh", "-c", CAPS])
        .ok();
    assert_eq!(masks(&out.stdout), [0, KILL, KILL, KILL, 0], "{out:?}");
    println!("control: exec --cap CAP_KILL shows exactly CAP_KILL");
}

/// A name runc does not know (a misspelling, a capability of a newer kernel, or a spelling
/// without `CAP_`) is left out with runc's warning instead of failing the container; it is
/// never granted.
#[test]
fn unknown_capability_names_are_ignored_with_a_warning() {
    let mut b = Bundle::busybox();
    let names = json!(["CAP_KILL", "CAP_NO_SUCH", "SYS_ADMIN"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": names, "effective": names, "permitted": names}),
    );
    let (out, err) = run_caps(&mut b, "unknowncap", "true");
    assert_eq!(masks(&out), [0, KILL, KILL, KILL, 0], "{out}");
    assert!(
        err.contains("ignoring unknown or unavailable capabilities: [CAP_NO_SUCH SYS_ADMIN]"),
        "{err}"
    );

    // Negative control: runc's spelling of the same capability is granted.
    let mut b = Bundle::busybox();
    let names = json!(["CAP_KILL", "CAP_SYS_ADMIN"]);
    b.set(
        "/process/capabilities",
        json!({"bounding": names, "effective": names, "permitted": names}),
    );
    let (out, err) = run_caps(&mut b, "knowncap", "true");
    let [_, _, eff, _, _] = masks(&out);
    assert_eq!(eff, KILL | SYS_ADMIN, "{out}");
    assert!(!err.contains("ignoring"), "{err}");
    println!("control: CAP_SYS_ADMIN spelled as runc spells it is granted, no warning");
}

/// `spec` writes no inheritable set (runc's fix for CVE-2022-29162: inheritable
/// capabilities let a program with file capabilities gain them across execve), so a
/// container made from it has none.
#[test]
fn spec_writes_no_inheritable_capabilities() {
    let rt = Runtime::new();
    let dir = tempfile::tempdir().expect("tempdir");
    rt.exec(&["spec", "--bundle", &dir.path().to_string_lossy()])
        .ok();
    let spec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("config.json")).expect("read"))
            .expect("spec JSON");
    let caps = spec["process"]["capabilities"].clone();
    assert!(caps.get("inheritable").is_none(), "{caps}");
    for set in ["bounding", "effective", "permitted", "ambient"] {
        assert_eq!(
            caps[set],
            json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            "{set}: runc's list, in runc's order"
        );
    }
    let mut b = Bundle::busybox();
    b.set("/process/capabilities", caps.clone());
    let (out, _) = run_caps(&mut b, "specinh", "true");
    assert_eq!(mask(&out, "CapInh"), 0, "{out}");

    // Negative control: with the inheritable set spec used to write, the check sees it.
    let mut b = Bundle::busybox();
    let mut with_inh = caps;
    with_inh["inheritable"] = with_inh["bounding"].clone();
    b.set("/process/capabilities", with_inh);
    let (out, _) = run_caps(&mut b, "specinhctl", "true");
    assert_ne!(mask(&out, "CapInh"), 0, "{out}");
    println!("control: an inheritable set in the config shows in CapInh");
}

/// With a seccomp profile and no no_new_privs the init keeps CAP_SYS_ADMIN just long enough
/// to load the filter, also when the config has no capabilities at all: the program runs
/// filtered, with none.
#[test]
fn seccomp_without_no_new_privs_and_without_capabilities() {
    let profile = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mknod", "mknodat"], "action": "SCMP_ACT_ERRNO"}]});
    let mut b = Bundle::busybox();
    b.remove("/process/capabilities")
        .set("/process/noNewPrivileges", json!(false))
        .set("/linux/seccomp", profile);
    let (out, _) = run_caps(
        &mut b,
        "seccompnocaps",
        "grep -E '^(Seccomp|NoNewPrivs):' /proc/self/status",
    );
    assert_eq!(masks(&out), [0; 5], "{out}");
    assert!(out.contains("Seccomp:\t2"), "the filter is loaded: {out}");
    assert!(out.contains("NoNewPrivs:\t0"), "{out}");

    // Negative control: without the profile the same check sees no filter.
    let mut b = Bundle::busybox();
    b.remove("/process/capabilities")
        .set("/process/noNewPrivileges", json!(false));
    let (out, _) = run_caps(
        &mut b,
        "noseccompnocaps",
        "grep -E '^Seccomp:' /proc/self/status",
    );
    assert!(out.contains("Seccomp:\t0"), "{out}");
    println!("control: without a profile Seccomp is 0");
}
