//! PATCH (runtime, see third_party/README.md): the cgroup v1 devices controller's rule
//! set, emulated as runc emulates it (libcontainer/cgroups/devices/emulator.go), so that
//! the rules written are the difference between what the cgroup has (its devices.list)
//! and what the container asks for, not the requested rules as given.
//!
//! Writing the requested rules verbatim failed where runc succeeds: an access with a
//! letter the kernel does not know (`"rwa"`, which runc reads as `rw`) made the write
//! EINVAL; and every rule was written again on each application, where runc writes only
//! what changes (a rule taken away and given back lets a process see EPERM in between).
//! The target always starts from "deny everything", as runc's does: a container gets the
//! devices its rules and the default list allow, whether or not its spec begins with a
//! deny-all rule.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

const READ: u8 = 1;
const WRITE: u8 = 2;
const MKNOD: u8 = 4;

/// A device node pattern: type `c` or `b`, major and minor (`None` is the wildcard `*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Node {
    kind: char,
    major: Option<i64>,
    minor: Option<i64>,
}

fn number(n: Option<i64>) -> String {
    n.map_or_else(|| "*".to_string(), |n| n.to_string())
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}:{}", self.kind, number(self.major), number(self.minor))
    }
}

/// `r`, `w` and `m` as bits; other letters are ignored, as runc ignores them.
fn parse_access(text: &str) -> u8 {
    text.chars().fold(0, |p, c| {
        p | match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => 0,
        }
    })
}

fn access_text(perms: u8) -> String {
    [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
        .iter()
        .filter(|(bit, _)| perms & bit != 0)
        .map(|(_, c)| *c)
        .collect()
}

/// One rule to write: to devices.allow when `allow`, else to devices.deny.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Write {
    pub allow: bool,
    pub rule: String,
}

/// A devices cgroup's state: its default (allow everything, a "black-list" whose
/// exceptions devices.list cannot show, or deny everything, a "white-list") and its
/// exceptions.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(super) struct Emulator {
    default_allow: bool,
    rules: BTreeMap<Node, u8>,
}

impl Emulator {
    /// What a container starts from: nothing allowed.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The state a cgroup's devices.list shows: `a *:* rwm` alone for allow-all, else
    /// the allowed exceptions of a deny-all cgroup.
    pub fn from_list(text: &str) -> Result<Self, String> {
        let mut emu = Self::deny_all();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || format!("cannot parse devices.list line {line:?}");
            let mut parts = line.split_whitespace();
            let kind = parts.next().and_then(|k| k.chars().next()).ok_or_else(bad)?;
            let (major, minor) = parts.next().and_then(|n| n.split_once(':')).ok_or_else(bad)?;
            let perms = parse_access(parts.next().ok_or_else(bad)?);
            let num = |n: &str| -> Result<Option<i64>, String> {
                if n == "*" {
                    Ok(None)
                } else {
                    n.parse().map(Some).map_err(|_| bad())
                }
            };
            if kind == 'a' {
                emu.default_allow = true;
                emu.rules.clear();
                continue;
            }
            let node = Node {
                kind,
                major: num(major)?,
                minor: num(minor)?,
            };
            *emu.rules.entry(node).or_insert(0) |= perms;
        }
        Ok(emu)
    }

    /// What a cgroup whose devices.list cannot be read is taken to be: allow-all, whose
    /// exceptions are unknown, so a transition from it starts with a reset.
    pub fn allow_all() -> Self {
        Self {
            default_allow: true,
            rules: BTreeMap::new(),
        }
    }

    #[cfg(test)]
    pub fn is_allow_all(&self) -> bool {
        self.default_allow
    }

    /// Applies one rule of the spec (or of the default list) as the kernel would.
    pub fn apply(&mut self, rule: &LinuxDeviceCgroup) -> Result<(), String> {
        let kind = match rule.typ().unwrap_or(LinuxDeviceType::A) {
            LinuxDeviceType::A => 'a',
            LinuxDeviceType::B => 'b',
            LinuxDeviceType::C => 'c',
            other => return Err(format!("invalid cgroup device type {other:?}")),
        };
        let perms = rule.access().as_deref().map_or(READ | WRITE | MKNOD, parse_access);
        if kind == 'a' {
            // A rule for every device resets the cgroup to that default.
            *self = Self {
                default_allow: rule.allow(),
                rules: BTreeMap::new(),
            };
            return Ok(());
        }
        let node = Node {
            kind,
            major: rule.major(),
            minor: rule.minor(),
        };
        // An allow rule adds to a deny-all cgroup's exceptions and removes from an
        // allow-all one's; a deny rule the other way round.
        if rule.allow() != self.default_allow {
            *self.rules.entry(node).or_insert(0) |= perms;
            Ok(())
        } else {
            self.remove(node, perms)
        }
    }

    /// Takes `perms` away from the exception for `node`. The kernel ignores a removal
    /// that a wider wildcard exception still grants, so runc refuses it; so do we.
    fn remove(&mut self, node: Node, perms: u8) -> Result<(), String> {
        for wider in [
            Node { major: None, ..node },
            Node { minor: None, ..node },
            Node {
                major: None,
                minor: None,
                ..node
            },
        ] {
            if wider != node && self.rules.get(&wider).is_some_and(|p| p & perms != 0) {
                return Err(format!(
                    "requested rule [{node} {}] not supported by devices cgroupv1 \
                     (cannot punch hole in existing wildcard rule [{wider}])",
                    access_text(perms)
                ));
            }
        }
        if let Some(p) = self.rules.get_mut(&node) {
            *p &= !perms;
            if *p == 0 {
                self.rules.remove(&node);
            }
        }
        Ok(())
    }

    /// The fewest writes that take a cgroup from `self` to `target`, as runc computes
    /// them: a reset to the target's default first when the defaults differ or when the
    /// cgroup allows everything (its deny exceptions cannot be read back), then what the
    /// target no longer grants, then what it newly grants.
    pub fn transition(&self, target: &Emulator) -> Vec<Write> {
        let mut writes = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            writes.push(Write {
                allow: target.default_allow,
                rule: "a *:* rwm".to_string(),
            });
            &empty
        } else {
            &self.rules
        };
        for (node, perms) in old {
            let dropped = perms & !target.rules.get(node).copied().unwrap_or(0);
            if dropped != 0 {
                writes.push(Write {
                    allow: target.default_allow,
                    rule: format!("{node} {}", access_text(dropped)),
                });
            }
        }
        for (node, perms) in &target.rules {
            let gained = perms & !old.get(node).copied().unwrap_or(0);
            if gained != 0 {
                writes.push(Write {
                    allow: !target.default_allow,
                    rule: format!("{node} {}", access_text(gained)),
                });
            }
        }
        writes
    }
}

#[cfg(test)]
mod tests {
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

    use super::*;

    fn rule(allow: bool, typ: LinuxDeviceType, major: Option<i64>, minor: Option<i64>, access: &str) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build().unwrap()
    }

    fn texts(w: &[Write]) -> Vec<String> {
        w.iter()
            .map(|w| format!("{} {}", if w.allow { "allow" } else { "deny" }, w.rule))
            .collect()
    }

    #[test]
    fn unknown_access_letters_are_dropped() {
        let mut target = Emulator::deny_all();
        target
            .apply(&rule(true, LinuxDeviceType::C, Some(1), Some(11), "rwa"))
            .unwrap();
        let current = Emulator::from_list("a *:* rwm\n").unwrap();
        assert_eq!(
            texts(&current.transition(&target)),
            ["deny a *:* rwm", "allow c 1:11 rw"]
        );
    }

    #[test]
    fn an_unchanged_cgroup_gets_no_writes() {
        let list = "c *:* m\nb *:* m\nc 1:3 rwm\nc 136:* rwm\n";
        let current = Emulator::from_list(list).unwrap();
        let mut target = Emulator::deny_all();
        for r in [
            rule(true, LinuxDeviceType::C, None, None, "m"),
            rule(true, LinuxDeviceType::B, None, None, "m"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(true, LinuxDeviceType::C, Some(136), None, "rwm"),
            // A redundant rule changes nothing.
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rw"),
        ] {
            target.apply(&r).unwrap();
        }
        assert!(current.transition(&target).is_empty());
    }

    #[test]
    fn only_differences_are_written() {
        let current = Emulator::from_list("c 1:3 rwm\nc 1:5 rwm\n").unwrap();
        let mut target = Emulator::deny_all();
        target
            .apply(&rule(true, LinuxDeviceType::C, Some(1), Some(3), "rw"))
            .unwrap();
        target
            .apply(&rule(true, LinuxDeviceType::C, Some(1), Some(7), "rwm"))
            .unwrap();
        assert_eq!(
            texts(&current.transition(&target)),
            ["deny c 1:3 m", "deny c 1:5 rwm", "allow c 1:7 rwm"]
        );
    }

    #[test]
    fn deny_all_then_allow_and_deny() {
        let mut target = Emulator::deny_all();
        for r in [
            rule(true, LinuxDeviceType::A, None, None, "rwm"),
            rule(false, LinuxDeviceType::A, None, None, "rwm"),
            rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
            rule(false, LinuxDeviceType::C, Some(1), Some(3), "m"),
        ] {
            target.apply(&r).unwrap();
        }
        assert_eq!(
            texts(&Emulator::deny_all().transition(&target)),
            ["allow c 1:3 rw"]
        );
    }

    #[test]
    fn a_hole_in_a_wildcard_is_refused() {
        let mut target = Emulator::deny_all();
        target
            .apply(&rule(true, LinuxDeviceType::C, None, None, "m"))
            .unwrap();
        let err = target
            .apply(&rule(false, LinuxDeviceType::C, Some(1), Some(3), "m"))
            .unwrap_err();
        assert!(err.contains("cannot punch hole"), "{err}");
    }

    #[test]
    fn devices_list_round_trip() {
        let emu = Emulator::from_list("c 1:3 rwm\nb *:* m\n").unwrap();
        assert!(!emu.is_allow_all());
        assert!(Emulator::from_list("a *:* rwm\n").unwrap().is_allow_all());
        assert!(Emulator::from_list("x\n").is_err());
    }
}
