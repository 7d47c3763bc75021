//! PATCH (runtime, see third_party/README.md): the device cgroup's rules as runc computes
//! them, for cgroup v1 (`devices.allow`/`devices.deny`) and v2 (an eBPF program) alike.
//!
//! The rule set a container gets always starts from deny-all, then the config's
//! `linux.resources.devices` in order, then runc's default devices (runc's
//! `specconv.AllowedDevices`): mknod of any device, /dev/null, zero, full, random, urandom,
//! tty, ptmx, the pts devices and tun. Before this, the v1 controller only wrote the
//! config's rules and the defaults, so a config with no deny-all rule (what `runc spec`
//! users and image tools often write: `"devices": []`) left the cgroup at `a *:* rwm` and any
//! host device could be opened after a mknod.
//!
//! [`Emulator`] models what the kernel's v1 controller keeps: a default (allow-all or
//! deny-all) and exceptions keyed by type, major and minor with their access. Applying a
//! rule behaves as writing it to `devices.allow`/`devices.deny` does, except that removing
//! access from inside a wildcard exception is refused instead of silently ignored (the
//! kernel cannot punch that hole; runc refuses it too). [`Emulator::transition`] gives the
//! writes that take a cgroup from one state to another without a window of lost access
//! when possible, so `update` can re-apply rules while the container runs.

use std::collections::BTreeMap;
use std::fmt;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

/// A device rule that cannot be applied, with the reason.
#[derive(thiserror::Error, Debug, PartialEq, Eq)]
pub enum DeviceRuleError {
    #[error("device rule \"{rule}\": type {typ:?} is not one a device cgroup knows (a, b or c)")]
    Type { rule: String, typ: String },
    #[error(
        "device rule \"{rule}\" cannot be applied: it would remove access from inside the wildcard rule \"{wildcard}\", which a device cgroup cannot express"
    )]
    WildcardHole { rule: String, wildcard: String },
    #[error("unexpected line in devices.list: {0:?}")]
    List(String),
}

/// The kind of device an exception applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Block,
    Char,
}

impl Kind {
    fn letter(self) -> char {
        match self {
            Kind::Block => 'b',
            Kind::Char => 'c',
        }
    }

    fn oci(self) -> LinuxDeviceType {
        match self {
            Kind::Block => LinuxDeviceType::B,
            Kind::Char => LinuxDeviceType::C,
        }
    }
}

/// Which devices an exception covers; `None` is the wildcard `*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Target {
    pub kind: Kind,
    pub major: Option<u32>,
    pub minor: Option<u32>,
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        write!(
            f,
            "{} {}:{}",
            self.kind.letter(),
            num(self.major),
            num(self.minor)
        )
    }
}

/// A set of the access kinds r (read), w (write) and m (mknod).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Access(u8);

impl Access {
    pub const READ: Access = Access(1);
    pub const WRITE: Access = Access(2);
    pub const MKNOD: Access = Access(4);
    pub const ALL: Access = Access(7);

    /// The r/w/m letters of `text`; any other letter is an error (for the kernel's own
    /// devices.list, which holds no other).
    fn parse(text: &str) -> Result<Access, ()> {
        let mut bits = 0;
        let mut unknown = false;
        for c in text.chars() {
            match c {
                'r' => bits |= 1,
                'w' => bits |= 2,
                'm' => bits |= 4,
                _ => unknown = true,
            }
        }
        if unknown { Err(()) } else { Ok(Access(bits)) }
    }

    /// Only the r/w/m letters of `text`: other letters grant or deny nothing, as in
    /// runc's `Permissions` (its update test's `c 1:11 rwa` is `rw`; written as given the
    /// kernel would refuse it).
    fn parse_lenient(text: &str) -> Access {
        Access(
            text.chars()
                .map(|c| match c {
                    'r' => 1,
                    'w' => 2,
                    'm' => 4,
                    _ => 0,
                })
                .fold(0, |a, b| a | b),
        )
    }

    pub fn bits(self) -> u8 {
        self.0
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    fn union(self, other: Access) -> Access {
        Access(self.0 | other.0)
    }

    fn minus(self, other: Access) -> Access {
        Access(self.0 & !other.0)
    }

    fn overlaps(self, other: Access) -> bool {
        self.0 & other.0 != 0
    }
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (bit, c) in [(1, 'r'), (2, 'w'), (4, 'm')] {
            if self.0 & bit != 0 {
                write!(f, "{c}")?;
            }
        }
        Ok(())
    }
}

/// One write to `devices.allow` (allow) or `devices.deny` (deny); `target` `None` is the
/// `a` rule, which resets the cgroup to allow-all or deny-all.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub allow: bool,
    pub target: Option<Target>,
    pub access: Access,
}

impl Write {
    /// The line the kernel expects (`c 1:3 rwm`, `a *:* rwm`).
    pub fn line(&self) -> String {
        match &self.target {
            Some(t) => format!("{t} {}", self.access),
            None => "a *:* rwm".to_string(),
        }
    }

    /// The same rule in the runtime spec's terms.
    pub fn to_oci(&self) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(self.allow)
            .access(self.access.to_string());
        match &self.target {
            Some(t) => {
                b = b.typ(t.kind.oci());
                if let Some(m) = t.major {
                    b = b.major(m as i64);
                }
                if let Some(m) = t.minor {
                    b = b.minor(m as i64);
                }
            }
            None => b = b.typ(LinuxDeviceType::A).access("rwm"),
        }
        b.build().expect("every field of a device rule is set")
    }
}

/// What a v1 device cgroup holds: a default and exceptions to it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Emulator {
    /// true: every access is allowed except the exceptions (the kernel's "a *:* rwm" list);
    /// false: only the exceptions are allowed.
    default_allow: bool,
    exceptions: BTreeMap<Target, Access>,
}

/// runc's default device rules (libcontainer/specconv AllowedDevices in runc 1.1), as the
/// devices.list of a runc 1.1.5 container shows them.
pub fn default_allowed() -> Vec<(Target, Access)> {
    let c = |major: Option<u32>, minor: Option<u32>, access| {
        (
            Target {
                kind: Kind::Char,
                major,
                minor,
            },
            access,
        )
    };
    vec![
        // mknod of any device (opening one still needs a rule)
        c(None, None, Access::MKNOD),
        (
            Target {
                kind: Kind::Block,
                major: None,
                minor: None,
            },
            Access::MKNOD,
        ),
        c(Some(1), Some(3), Access::ALL),    // /dev/null
        c(Some(1), Some(8), Access::ALL),    // /dev/random
        c(Some(1), Some(7), Access::ALL),    // /dev/full
        c(Some(5), Some(0), Access::ALL),    // /dev/tty
        c(Some(1), Some(5), Access::ALL),    // /dev/zero
        c(Some(1), Some(9), Access::ALL),    // /dev/urandom
        c(Some(136), None, Access::ALL),     // /dev/pts/*
        c(Some(5), Some(2), Access::ALL),    // /dev/ptmx
        c(Some(10), Some(200), Access::ALL), // /dev/net/tun
    ]
}

impl Emulator {
    /// A cgroup that allows nothing.
    pub fn deny_all() -> Self {
        Self::default()
    }

    /// The rule set of a container: deny-all, the config's rules in order, then runc's
    /// default devices.
    pub fn for_container(config: &[LinuxDeviceCgroup]) -> Result<Self, DeviceRuleError> {
        let mut e = Self::deny_all();
        for rule in config {
            e.apply(rule)?;
        }
        for (target, access) in default_allowed() {
            e.allow(Some(target), access)?;
        }
        Ok(e)
    }

    /// Whether every access is allowed except the exceptions.
    pub fn default_allow(&self) -> bool {
        self.default_allow
    }

    /// The exceptions to the default, in a stable order.
    pub fn exceptions(&self) -> impl Iterator<Item = (&Target, &Access)> {
        self.exceptions.iter()
    }

    /// Applies one rule of the runtime spec, as writing it to devices.allow or
    /// devices.deny would.
    pub fn apply(&mut self, rule: &LinuxDeviceCgroup) -> Result<(), DeviceRuleError> {
        let access_text = rule.access().as_deref().unwrap_or("");
        let kind = match rule.typ().unwrap_or_default() {
            // Whatever its numbers and access, an `a` rule resets the cgroup.
            LinuxDeviceType::A => {
                *self = Emulator {
                    default_allow: rule.allow(),
                    exceptions: BTreeMap::new(),
                };
                return Ok(());
            }
            LinuxDeviceType::B => Kind::Block,
            LinuxDeviceType::C => Kind::Char,
            other => {
                return Err(DeviceRuleError::Type {
                    rule: rule.to_string(),
                    typ: other.as_str().to_string(),
                });
            }
        };
        let number = |n: Option<i64>| n.filter(|n| *n >= 0).map(|n| n as u32);
        let target = Target {
            kind,
            major: number(rule.major()),
            minor: number(rule.minor()),
        };
        if rule.allow() {
            self.allow(Some(target), Access::parse_lenient(access_text))
        } else {
            self.deny(target, Access::parse_lenient(access_text))
        }
    }

    fn allow(&mut self, target: Option<Target>, access: Access) -> Result<(), DeviceRuleError> {
        let Some(target) = target else {
            *self = Emulator {
                default_allow: true,
                exceptions: BTreeMap::new(),
            };
            return Ok(());
        };
        if self.default_allow {
            self.remove(target, access)
        } else {
            self.add(target, access);
            Ok(())
        }
    }

    fn deny(&mut self, target: Target, access: Access) -> Result<(), DeviceRuleError> {
        if self.default_allow {
            self.add(target, access);
            Ok(())
        } else {
            self.remove(target, access)
        }
    }

    fn add(&mut self, target: Target, access: Access) {
        let entry = self.exceptions.entry(target).or_default();
        *entry = entry.union(access);
    }

    /// Takes `access` away from the exception for exactly `target`. A wildcard exception
    /// that covers `target` with some of that access cannot be split; the kernel would
    /// ignore the request, so it is refused.
    fn remove(&mut self, target: Target, access: Access) -> Result<(), DeviceRuleError> {
        let wider = [
            Target {
                major: None,
                ..target
            },
            Target {
                minor: None,
                ..target
            },
            Target {
                major: None,
                minor: None,
                ..target
            },
        ];
        for w in wider {
            if w == target {
                continue;
            }
            if let Some(have) = self.exceptions.get(&w) {
                if have.overlaps(access) {
                    return Err(DeviceRuleError::WildcardHole {
                        rule: format!("{target} {access}"),
                        wildcard: format!("{w} {have}"),
                    });
                }
            }
        }
        if let Some(have) = self.exceptions.get(&target).copied() {
            let left = have.minus(access);
            if left.is_empty() {
                self.exceptions.remove(&target);
            } else {
                self.exceptions.insert(target, left);
            }
        }
        Ok(())
    }

    /// Reads a v1 cgroup's `devices.list`: `a *:* rwm` alone means allow-all (the kernel
    /// does not list the deny exceptions then), anything else lists the allowed devices.
    pub fn from_list(text: &str) -> Result<Self, DeviceRuleError> {
        let mut e = Self::deny_all();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
            let bad = || DeviceRuleError::List(line.to_string());
            let mut parts = line.split_whitespace();
            let (Some(typ), Some(numbers), Some(access), None) =
                (parts.next(), parts.next(), parts.next(), parts.next())
            else {
                return Err(bad());
            };
            let access = Access::parse(access).map_err(|()| bad())?;
            let kind = match typ {
                "a" => {
                    e = Emulator {
                        default_allow: true,
                        exceptions: BTreeMap::new(),
                    };
                    continue;
                }
                "b" => Kind::Block,
                "c" => Kind::Char,
                _ => return Err(bad()),
            };
            let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
            let number = |n: &str| -> Result<Option<u32>, DeviceRuleError> {
                if n == "*" {
                    Ok(None)
                } else {
                    n.parse().map(Some).map_err(|_| bad())
                }
            };
            e.add(
                Target {
                    kind,
                    major: number(major)?,
                    minor: number(minor)?,
                },
                access,
            );
        }
        Ok(e)
    }

    /// The writes that turn a cgroup in state `self` into `target`. When the default
    /// changes, or `self` allows by default (whose deny exceptions devices.list does not
    /// show), it starts with the resetting `a` rule; otherwise only the differences are
    /// written, so access that both states allow is never lost in between.
    pub fn transition(&self, target: &Emulator) -> Vec<Write> {
        let mut writes = Vec::new();
        let empty = BTreeMap::new();
        let old = if self.default_allow || self.default_allow != target.default_allow {
            writes.push(Write {
                allow: target.default_allow,
                target: None,
                access: Access::ALL,
            });
            &empty
        } else {
            &self.exceptions
        };
        for (t, had) in old {
            let dropped = had.minus(target.exceptions.get(t).copied().unwrap_or_default());
            if !dropped.is_empty() {
                writes.push(Write {
                    allow: target.default_allow,
                    target: Some(*t),
                    access: dropped,
                });
            }
        }
        for (t, want) in &target.exceptions {
            let gained = want.minus(old.get(t).copied().unwrap_or_default());
            if !gained.is_empty() {
                writes.push(Write {
                    allow: !target.default_allow,
                    target: Some(*t),
                    access: gained,
                });
            }
        }
        writes
    }

    /// The rules a deny-all cgroup needs to reach this state (for the v2 program: the
    /// default, then exceptions that all go the other way).
    pub fn rules(&self) -> Vec<Write> {
        Emulator::deny_all()
            .transition(self)
            .into_iter()
            .filter(|w| w.target.is_some())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(
        allow: bool,
        typ: LinuxDeviceType,
        major: i64,
        minor: i64,
        access: &str,
    ) -> LinuxDeviceCgroup {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if major >= 0 {
            b = b.major(major);
        }
        if minor >= 0 {
            b = b.minor(minor);
        }
        b.build().unwrap()
    }

    fn list(e: &Emulator) -> Vec<String> {
        e.exceptions().map(|(t, a)| format!("{t} {a}")).collect()
    }

    /// What a runc 1.1.5 container's devices.list shows with `"devices": []`.
    const RUNC_DEFAULT_LIST: &[&str] = &[
        "b *:* m",
        "c *:* m",
        "c 1:3 rwm",
        "c 1:5 rwm",
        "c 1:7 rwm",
        "c 1:8 rwm",
        "c 1:9 rwm",
        "c 5:0 rwm",
        "c 5:2 rwm",
        "c 10:200 rwm",
        "c 136:* rwm",
    ];

    #[test]
    fn an_empty_config_is_deny_all_plus_runcs_defaults() {
        let e = Emulator::for_container(&[]).unwrap();
        assert!(!e.default_allow());
        assert_eq!(list(&e), RUNC_DEFAULT_LIST);
        // The same with runc spec's explicit deny-all rule.
        let e = Emulator::for_container(&[rule(false, LinuxDeviceType::A, -1, -1, "rwm")]).unwrap();
        assert_eq!(list(&e), RUNC_DEFAULT_LIST);
    }

    #[test]
    fn the_defaults_come_after_the_config_rules() {
        // runc: a config deny of /dev/urandom is overridden by the default allow.
        let e = Emulator::for_container(&[rule(false, LinuxDeviceType::C, 1, 9, "rwm")]).unwrap();
        assert_eq!(list(&e), RUNC_DEFAULT_LIST);
        // allow-all then a deny: the default allow of 1:9 removes the deny again.
        let e = Emulator::for_container(&[
            rule(true, LinuxDeviceType::A, -1, -1, "rwm"),
            rule(false, LinuxDeviceType::C, 1, 9, "w"),
        ])
        .unwrap();
        assert!(e.default_allow());
        assert!(list(&e).is_empty());
        let e = Emulator::for_container(&[
            rule(true, LinuxDeviceType::A, -1, -1, "rwm"),
            rule(false, LinuxDeviceType::C, 10, 229, "rwm"),
        ])
        .unwrap();
        assert_eq!(list(&e), ["c 10:229 rwm"]);
    }

    #[test]
    fn holes_in_wildcards_are_refused_and_unknown_deny_letters_ignored() {
        let err = Emulator::for_container(&[
            rule(true, LinuxDeviceType::C, 4, -1, "rw"),
            rule(false, LinuxDeviceType::C, 4, 5, "w"),
        ])
        .unwrap_err();
        assert!(matches!(err, DeviceRuleError::WildcardHole { .. }), "{err}");
        // runc's own update test config: a deny with a letter that is not r/w/m.
        let e = Emulator::for_container(&[
            rule(false, LinuxDeviceType::A, -1, -1, "rwm"),
            rule(false, LinuxDeviceType::C, 1, 11, "rwa"),
        ])
        .unwrap();
        assert_eq!(list(&e), RUNC_DEFAULT_LIST);
        // An allow with a letter that is not r/w/m grants the r/w/m ones.
        let e = Emulator::for_container(&[rule(true, LinuxDeviceType::C, 1, 11, "rwa")]).unwrap();
        assert!(list(&e).contains(&"c 1:11 rw".to_string()), "{:?}", list(&e));
        assert!(matches!(
            Emulator::for_container(&[rule(true, LinuxDeviceType::U, 1, 11, "rw")]),
            Err(DeviceRuleError::Type { .. })
        ));
    }

    #[test]
    fn transition_from_a_new_cgroup_resets_first() {
        let current = Emulator::from_list("a *:* rwm\n").unwrap();
        let target = Emulator::for_container(&[]).unwrap();
        let writes = current.transition(&target);
        assert_eq!(writes[0].line(), "a *:* rwm");
        assert!(!writes[0].allow);
        let lines: Vec<String> = writes[1..].iter().map(Write::line).collect();
        assert_eq!(lines, RUNC_DEFAULT_LIST);
        assert!(writes[1..].iter().all(|w| w.allow));
    }

    #[test]
    fn transition_between_equal_states_writes_nothing_and_changes_are_minimal() {
        let target = Emulator::for_container(&[]).unwrap();
        let current = Emulator::from_list(&RUNC_DEFAULT_LIST.join("\n")).unwrap();
        assert_eq!(current, target);
        assert!(current.transition(&target).is_empty());
        let more =
            Emulator::for_container(&[rule(true, LinuxDeviceType::C, 10, 229, "rw")]).unwrap();
        let lines: Vec<(bool, String)> = current
            .transition(&more)
            .iter()
            .map(|w| (w.allow, w.line()))
            .collect();
        assert_eq!(lines, [(true, "c 10:229 rw".to_string())]);
        let back: Vec<(bool, String)> = more
            .transition(&current)
            .iter()
            .map(|w| (w.allow, w.line()))
            .collect();
        assert_eq!(back, [(false, "c 10:229 rw".to_string())]);
    }

    #[test]
    fn rules_for_a_program_skip_the_reset() {
        let e = Emulator::for_container(&[]).unwrap();
        let rules = e.rules();
        assert_eq!(rules.len(), RUNC_DEFAULT_LIST.len());
        assert!(rules.iter().all(|w| w.allow && w.target.is_some()));
        let e = Emulator::for_container(&[
            rule(true, LinuxDeviceType::A, -1, -1, "rwm"),
            rule(false, LinuxDeviceType::C, 10, 229, "rwm"),
        ])
        .unwrap();
        let rules = e.rules();
        assert_eq!(rules.len(), 1);
        assert!(!rules[0].allow);
    }

    #[test]
    fn bad_list_lines_are_errors() {
        assert!(Emulator::from_list("c 1:x rwm").is_err());
        assert!(Emulator::from_list("z 1:3 rwm").is_err());
        assert!(Emulator::from_list("c 1:3").is_err());
    }
}
