//! Collectors: what a client can see of a live container from the host, read through
//! the init's /proc entries (its mount table as seen inside, its fds, its cgroups) and
//! rendered as normalised text.

use std::path::PathBuf;
use std::process::Command;

use super::json::OJson;
use super::row::Obs;
use super::run::{step_output, Ctx};

/// State fields `Obs::State` does not compare: each differs for one reason that one row
/// of the table observes with `Obs::StateRaw` (ociVersion: the spec version each runtime
/// implements; owner: runc's `state` leaves it empty).
pub const STATE_KEPT_OUT: &[&str] = &["ociVersion", "owner"];

/// Collects one observation (a failure to collect is itself the observation).
pub fn collect(ctx: &mut Ctx, o: &Obs) -> String {
    let text = match o {
        Obs::State | Obs::StateRaw => {
            let id = ctx.id.clone();
            let (code, out) = ctx.quiet(&["state", &id]);
            let keep_out: &[&str] = if matches!(o, Obs::State) {
                STATE_KEPT_OUT
            } else {
                &[]
            };
            match OJson::parse(&out) {
                Some(j) => format!("exit {code} {}", ctx.norm.json_except(&j, keep_out)),
                None => format!("exit {code} (no JSON)"),
            }
        }
        Obs::File(name, class) => match std::fs::read_to_string(ctx.dir().join(name)) {
            Ok(s) => ctx.norm.classify(class, &s).unwrap_or_default(),
            Err(_) => "<absent>".into(),
        },
        Obs::StepOutput(i, class) => step_output(ctx, *i, class),
        Obs::Leftovers => leftovers(ctx),
        _ => {
            let Some(pid) = ctx.pid() else {
                return "no live container".into();
            };
            match o {
                Obs::FdModes => fd_modes(pid),
                Obs::Devices => devices(pid),
                Obs::Lo => lo(pid),
                Obs::Mounts(prefix) => mounts(pid, prefix),
                Obs::CgroupFile(ctrl, file) => match cgroup_dir(pid, ctrl) {
                    Some(d) => std::fs::read_to_string(d.join(file))
                        .map(|s| s.trim_end().to_string())
                        .unwrap_or_else(|e| format!("<unreadable: {e}>")),
                    None => format!("<no {ctrl:?} cgroup>"),
                },
                Obs::CgroupPath(ctrl) => cgroup_path(pid, ctrl).unwrap_or_else(|| "<none>".into()),
                Obs::ProcStatus(keys) => std::fs::read_to_string(format!("/proc/{pid}/status"))
                    .unwrap_or_default()
                    .lines()
                    .filter(|l| keys.iter().any(|k| l.starts_with(&format!("{k}:"))))
                    .collect::<Vec<_>>()
                    .join("\n"),
                Obs::ProcFile(f) => std::fs::read_to_string(format!("/proc/{pid}/{f}"))
                    .unwrap_or_else(|e| format!("<unreadable: {e}>")),
                Obs::Namespaces => namespaces(pid),
                _ => unreachable!("handled above"),
            }
        }
    };
    ctx.norm.text(&text)
}

/// Every fd of a process: `N MODE TARGET`, pipes and sockets without their inode.
fn fd_modes(pid: u32) -> String {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return "<no fds>".into();
    };
    let mut fds: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort();
    fds.iter()
        .map(|fd| {
            let target = std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
                .map(|p| p.to_string_lossy().to_string())
                .unwrap_or_default();
            let target = match target.split_once(":[") {
                Some(("pipe", _)) => "pipe".to_string(),
                Some(("socket", _)) => "socket".to_string(),
                _ => target,
            };
            let flags = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| {
                    l.strip_prefix("flags:")
                        .map(|v| u32::from_str_radix(v.trim(), 8).unwrap_or(0))
                })
                .unwrap_or(0);
            let mode = match flags & libc::O_ACCMODE as u32 {
                0 => "r",
                1 => "w",
                _ => "rw",
            };
            let append = if flags & libc::O_APPEND as u32 != 0 {
                ",append"
            } else {
                ""
            };
            format!("{fd} {mode}{append} {target}")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The lines of /proc/PID/cgroup: (hierarchy id, controllers, path).
fn cgroup_lines(pid: u32) -> Vec<(String, String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ':');
            Some((it.next()?.into(), it.next()?.into(), it.next()?.into()))
        })
        .collect()
}

/// The process's cgroup path in the hierarchy of `ctrl` (`""`: the v2 one).
fn cgroup_path(pid: u32, ctrl: &str) -> Option<String> {
    cgroup_lines(pid)
        .into_iter()
        .find(|(id, ctrls, _)| {
            if ctrl.is_empty() {
                id == "0" && ctrls.is_empty()
            } else {
                ctrls.split(',').any(|c| c == ctrl)
            }
        })
        .map(|(_, _, p)| p)
}

/// Where the hierarchy of `ctrl` is mounted on the host (`""`: cgroup2).
fn hierarchy_mount(ctrl: &str) -> Option<PathBuf> {
    let mi = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    mi.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        let mut post = post.split_whitespace();
        let fstype = post.next()?;
        let _source = post.next()?;
        let sopts = post.next().unwrap_or("");
        let mp = pre.split_whitespace().nth(4)?;
        let hit = if ctrl.is_empty() {
            fstype == "cgroup2"
        } else {
            fstype == "cgroup" && sopts.split(',').any(|o| o == ctrl)
        };
        hit.then(|| PathBuf::from(mp))
    })
}

/// The host directory of the process's cgroup in the hierarchy of `ctrl`.
pub fn cgroup_dir(pid: u32, ctrl: &str) -> Option<PathBuf> {
    let path = cgroup_path(pid, ctrl)?;
    Some(hierarchy_mount(ctrl)?.join(path.trim_start_matches('/')))
}

/// Every cgroup directory of a process, in all hierarchies (for the leftovers check).
pub fn cgroup_dirs_of(pid: u32) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for (id, ctrls, path) in cgroup_lines(pid) {
        let ctrl = if id == "0" && ctrls.is_empty() {
            String::new()
        } else {
            ctrls.split(',').next().unwrap_or("").to_string()
        };
        if path == "/" {
            continue;
        }
        if let Some(m) = hierarchy_mount(&ctrl) {
            dirs.push(m.join(path.trim_start_matches('/')));
        }
    }
    dirs
}

fn devices(pid: u32) -> String {
    match cgroup_dir(pid, "devices") {
        Some(d) => {
            let mut rules: Vec<String> = std::fs::read_to_string(d.join("devices.list"))
                .unwrap_or_else(|e| format!("<unreadable: {e}>"))
                .lines()
                .map(str::to_string)
                .collect();
            rules.sort();
            rules.join("\n")
        }
        None => "<no v1 devices cgroup>".into(),
    }
}

fn nsenter_net(pid: u32, args: &[&str]) -> String {
    let out = Command::new("nsenter")
        .arg("-t")
        .arg(pid.to_string())
        .arg("-n")
        .args(args)
        .output();
    match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout).to_string(),
        Err(e) => format!("<nsenter: {e}>"),
    }
}

/// lo's flags and state, and its addresses, in the container's network namespace.
fn lo(pid: u32) -> String {
    let link = nsenter_net(pid, &["ip", "-o", "link", "show", "lo"]);
    let flags = link
        .split_once('<')
        .and_then(|(_, r)| r.split_once('>'))
        .map(|(f, _)| f.to_string())
        .unwrap_or_else(|| link.trim().to_string());
    let state = link
        .split_whitespace()
        .skip_while(|w| *w != "state")
        .nth(1)
        .unwrap_or("?")
        .to_string();
    let addrs: Vec<String> = nsenter_net(pid, &["ip", "-o", "addr", "show", "lo"])
        .lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace().skip(2);
            Some(format!("{} {}", w.next()?, w.next()?))
        })
        .collect();
    format!("<{flags}> state {state}; {}", addrs.join(", "))
}

/// Propagation from mountinfo's optional fields.
fn propagation(optional: &[&str]) -> String {
    let mut p: Vec<&str> = optional
        .iter()
        .filter_map(|f| match f.split(':').next() {
            Some("shared") => Some("shared"),
            Some("master") => Some("slave"),
            Some("unbindable") => Some("unbindable"),
            _ => None,
        })
        .collect();
    if p.is_empty() {
        p.push("private");
    }
    p.join("+")
}

/// The init's mounts at and below `prefix` (exactly at it when it ends in `$`), as seen inside, sorted by mount point (mounts
/// on one point keep their stacking order).
fn mounts(pid: u32, prefix: &str) -> String {
    let mi = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
    let mut rows: Vec<(String, String)> = mi
        .lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let f: Vec<&str> = pre.split_whitespace().collect();
            let (root, mp, opts) = (f.get(3)?, f.get(4)?, f.get(5)?);
            let optional = &f[6.min(f.len())..];
            let mut post = post.split_whitespace();
            let fstype = post.next()?;
            let _source = post.next()?;
            let sopts = post.next().unwrap_or("");
            let under = match prefix.strip_suffix('$') {
                Some(exact) => *mp == exact,
                None => prefix == "/" || *mp == prefix || mp.starts_with(&format!("{prefix}/")),
            };
            under.then(|| {
                (
                    mp.to_string(),
                    format!(
                        "{mp} {fstype} {opts} {} [{sopts}] root={root}",
                        propagation(optional)
                    ),
                )
            })
        })
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    if rows.is_empty() {
        return format!("<nothing at {prefix}>");
    }
    rows.into_iter()
        .map(|(_, r)| r)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Which namespaces of the init are the host's (the test process's) own.
fn namespaces(pid: u32) -> String {
    ["cgroup", "ipc", "mnt", "net", "pid", "time", "user", "uts"]
        .iter()
        .map(|ns| {
            let host = std::fs::read_link(format!("/proc/self/ns/{ns}")).ok();
            let theirs = std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).ok();
            let same = if host.is_some() && host == theirs {
                "host"
            } else {
                "own"
            };
            format!("{ns}={same}")
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// After delete: the container's cgroup directories that remain, and its state directory.
fn leftovers(ctx: &Ctx) -> String {
    let cg: Vec<String> = ctx
        .cgroups
        .iter()
        .filter(|d| d.exists())
        .map(|d| d.to_string_lossy().to_string())
        .collect();
    let state = ctx.root().join(&ctx.id).exists();
    format!(
        "cgroups left: {}; state dir left: {state}",
        if cg.is_empty() {
            "none".to_string()
        } else {
            cg.join(",")
        }
    )
}
