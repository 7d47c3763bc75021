//! Who uses a bundle's rootfs or a layer cache directory, in every mount namespace of the
//! machine. A running container holds its rootfs mounted in its own mount namespace, so
//! unmounting the host's copy succeeds (no EBUSY) while the container still stands on
//! it; only reading every namespace's mount table shows it. Each namespace is read once
//! (through one of its processes' `/proc/PID/mountinfo`).

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// One line of a mountinfo table, as far as this module needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the filesystem.
    pub dev: String,
    /// The path inside that filesystem this mount shows (`/` for a whole filesystem).
    pub root: String,
    /// Where it is mounted, in the namespace the table is from.
    pub mount_point: String,
    pub fs_type: String,
    /// The superblock options (for overlayfs: `lowerdir=…,upperdir=…`).
    pub super_options: String,
}

/// Undoes mountinfo's octal escapes (`\040` for a space, …).
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 4 <= bytes.len() {
            let oct = &bytes[i + 1..i + 4];
            if oct.iter().all(|b| (b'0'..=b'7').contains(b)) {
                let oct = std::str::from_utf8(oct).unwrap_or("0");
                if let Ok(v) = u8::from_str_radix(oct, 8) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses a mountinfo table.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (pre, post) = line.split_once(" - ")?;
            let f: Vec<&str> = pre.split(' ').collect();
            let g: Vec<&str> = post.split(' ').collect();
            Some(MountEntry {
                dev: f.get(2)?.to_string(),
                root: unescape(f.get(3)?),
                mount_point: unescape(f.get(4)?),
                fs_type: g.first()?.to_string(),
                super_options: g.get(2).map(|s| unescape(s)).unwrap_or_default(),
            })
        })
        .collect()
}

/// The mount table of every mount namespace but this process's own, each with a process
/// in it (`pid (comm)`), read once per namespace.
fn other_namespaces() -> Vec<(String, Vec<MountEntry>)> {
    let own = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).ok();
    let mut seen: HashSet<u64> = HashSet::new();
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(ns) = std::fs::metadata(format!("/proc/{pid}/ns/mnt")).map(|m| m.ino()) else {
            continue; // gone, or a kernel thread
        };
        if Some(ns) == own || !seen.insert(ns) {
            continue;
        }
        let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")) else {
            seen.remove(&ns); // the process went away: try another one of that namespace
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        out.push((format!("{pid} ({})", comm.trim()), parse_mountinfo(&text)));
    }
    out
}

fn own_table() -> Vec<MountEntry> {
    parse_mountinfo(&std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default())
}

/// The filesystem and the path inside it that `path` is: the mount at `path` itself, or
/// the innermost mount containing it with the rest of the path appended.
fn tree_of(path: &Path, table: &[MountEntry]) -> Option<(String, String)> {
    let want = path.to_string_lossy();
    let mut best: Option<&MountEntry> = None;
    for m in table {
        let mp = m.mount_point.as_str();
        let contains = want == mp
            || mp == "/"
            || (want.starts_with(mp) && want.as_bytes().get(mp.len()) == Some(&b'/'));
        if contains && best.is_none_or(|b| mp.len() >= b.mount_point.len()) {
            best = Some(m);
        }
    }
    let m = best?;
    let rest = want
        .strip_prefix(m.mount_point.as_str())
        .unwrap_or("")
        .trim_start_matches('/');
    let root = if rest.is_empty() {
        m.root.clone()
    } else if m.root == "/" {
        format!("/{rest}")
    } else {
        format!("{}/{rest}", m.root)
    };
    Some((m.dev.clone(), root))
}

/// Where the directory tree at `path` is in use outside this namespace's mount of it
/// at `path`: every other mount, in any mount namespace, of the same filesystem at or
/// below the same place (a copy another namespace inherited at the same mount point
/// excepted), and every process of this namespace whose root or working directory is
/// inside it. Each as a line for an error message.
pub fn users_of(path: &Path) -> Vec<String> {
    let Ok(path) = std::fs::canonicalize(path) else {
        return Vec::new();
    };
    let own = own_table();
    let Some((dev, root)) = tree_of(&path, &own) else {
        return Vec::new();
    };
    let within = |m: &MountEntry| {
        m.dev == dev
            && (m.root == root
                || root == "/"
                || (m.root.starts_with(&root) && m.root.as_bytes().get(root.len()) == Some(&b'/')))
    };
    let here = path.to_string_lossy().into_owned();
    let mut users = Vec::new();
    for m in &own {
        if within(m) && m.mount_point != here && !is_under(&m.mount_point, &here) {
            users.push(format!("it is also mounted at {}", m.mount_point));
        }
    }
    // Every mount namespace made after the bundle (a container being set up, an
    // `unshare -m` shell) starts with a copy of this namespace's mounts, ours included, at
    // the same place: such a copy is not a use. A container stands on the rootfs as its
    // root (`/`), or has it bind-mounted somewhere else.
    for (who, table) in other_namespaces() {
        if let Some(m) = table.iter().find(|m| within(m) && m.mount_point != here) {
            users.push(format!(
                "process {who} has it mounted at {} in another mount namespace",
                m.mount_point
            ));
        }
    }
    users.extend(processes_inside(&path));
    users
}

fn is_under(p: &str, dir: &str) -> bool {
    p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/')
}

/// Processes of this namespace whose root or working directory is inside `dir`.
fn processes_inside(dir: &Path) -> Vec<String> {
    let own = std::fs::metadata("/proc/self/ns/mnt").map(|m| m.ino()).ok();
    let me = std::process::id().to_string();
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if pid == me
            || std::fs::metadata(format!("/proc/{pid}/ns/mnt"))
                .map(|m| m.ino())
                .ok()
                != own
        {
            continue;
        }
        for link in ["root", "cwd"] {
            if let Ok(target) = std::fs::read_link(format!("/proc/{pid}/{link}")) {
                if target.starts_with(dir) {
                    let comm =
                        std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                    out.push(format!(
                        "process {pid} ({}) has its {} in it",
                        comm.trim(),
                        if link == "root" {
                            "root"
                        } else {
                            "working directory"
                        }
                    ));
                    break;
                }
            }
        }
    }
    out
}

/// The lower directories of every overlay mounted in any mount namespace (this one
/// included), as given at mount time.
pub fn overlay_lowers_in_use() -> HashSet<PathBuf> {
    let mut tables: Vec<Vec<MountEntry>> = vec![own_table()];
    tables.extend(other_namespaces().into_iter().map(|(_, t)| t));
    let mut out = HashSet::new();
    for m in tables.iter().flatten().filter(|m| m.fs_type == "overlay") {
        out.extend(overlay_lowers(&m.super_options));
    }
    out
}

/// The lower directories named in overlay superblock options (`lowerdir=a:b`, or
/// `lowerdir+=a,lowerdir+=b` and `datadir+=` as newer kernels show them), unescaped.
pub fn overlay_lowers(options: &str) -> Vec<PathBuf> {
    let mut opts: Vec<String> = Vec::new();
    let mut cur = String::new();
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                cur.push(c);
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ',' => opts.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    opts.push(cur);
    let mut out = Vec::new();
    for o in opts {
        let list = if let Some(v) = o.strip_prefix("lowerdir=") {
            split_lowers(v)
        } else if let Some(v) = o
            .strip_prefix("lowerdir+=")
            .or_else(|| o.strip_prefix("datadir+="))
        {
            vec![unescape_overlay(v)]
        } else {
            continue;
        };
        out.extend(list.into_iter().map(PathBuf::from));
    }
    out
}

/// `a:b\:c` → ["a", "b:c"].
fn split_lowers(v: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    cur.push(n);
                }
            }
            ':' => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn unescape_overlay(v: &str) -> String {
    let mut cur = String::new();
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                cur.push(n);
            }
        } else {
            cur.push(c);
        }
    }
    cur
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_lines() {
        let t = parse_mountinfo(
            "36 35 98:0 /mnt1 /mnt\\040two rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
             50 36 0:52 / /b/rootfs rw,relatime - overlay overlay rw,lowerdir=/s/l/b:/s/l/a\\134:x,upperdir=/b/up,workdir=/b/w\n",
        );
        assert_eq!(t.len(), 2);
        assert_eq!(t[0].mount_point, "/mnt two");
        assert_eq!(t[0].root, "/mnt1");
        assert_eq!(t[1].fs_type, "overlay");
        assert_eq!(
            overlay_lowers(&t[1].super_options),
            [PathBuf::from("/s/l/b"), PathBuf::from("/s/l/a:x")]
        );
        assert_eq!(
            overlay_lowers("rw,lowerdir+=/a,lowerdir+=/b\\,c,datadir+=/d,upperdir=/u"),
            [
                PathBuf::from("/a"),
                PathBuf::from("/b,c"),
                PathBuf::from("/d")
            ]
        );
    }

    #[test]
    fn the_tree_a_path_is_in() {
        let t = parse_mountinfo(
            "1 0 8:1 / / rw - ext4 /dev/sda1 rw\n\
             2 1 8:2 /vol /data rw - ext4 /dev/sda2 rw\n\
             3 1 0:60 / /b/rootfs rw - overlay overlay rw,lowerdir=/x\n",
        );
        assert_eq!(
            tree_of(Path::new("/b/rootfs"), &t),
            Some(("0:60".into(), "/".into()))
        );
        assert_eq!(
            tree_of(Path::new("/data/c/rootfs"), &t),
            Some(("8:2".into(), "/vol/c/rootfs".into()))
        );
        assert_eq!(
            tree_of(Path::new("/work/rootfs"), &t),
            Some(("8:1".into(), "/work/rootfs".into()))
        );
    }
}
