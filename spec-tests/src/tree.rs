//! A file tree as a comparable listing: for every path under a root, its type, mode,
//! owner, link target, content digest and extended attributes of every namespace (user.*,
//! security.* such as a file capability, trusted.*, system.* such as POSIX ACLs), so a
//! lost `security.capability` is a difference. Two unpackers agree on an image when their
//! listings are equal.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use sha2::{Digest as _, Sha256};

/// One path's observable properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    /// Symlink target, or content digest for regular files, or device numbers.
    pub detail: String,
    pub xattrs: Vec<(String, Vec<u8>)>,
}

/// `umoci unpack --image IMAGE DEST` (IMAGE: `LAYOUT:TAG`), the reference unpacker our
/// bundles are compared with; it must succeed. Returns the listing of `DEST/rootfs`.
pub fn umoci_unpack(image: &str, dest: &Path) -> BTreeMap<String, Node> {
    let out = std::process::Command::new("umoci")
        .args(["unpack", "--image", image])
        .arg(dest)
        .output()
        .expect("run umoci");
    assert!(
        out.status.success(),
        "umoci unpack {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    listing(&dest.join("rootfs"))
}

/// Lists `root` (not following symlinks), keyed by path relative to it.
pub fn listing(root: &Path) -> BTreeMap<String, Node> {
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Node>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let meta = std::fs::symlink_metadata(&path)
            .unwrap_or_else(|e| panic!("lstat {}: {e}", path.display()));
        let ft = meta.file_type();
        let (kind, detail) = if ft.is_symlink() {
            (
                "symlink",
                std::fs::read_link(&path)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            )
        } else if ft.is_dir() {
            ("dir", String::new())
        } else if ft.is_file() {
            let data = std::fs::read(&path).expect("read file");
            ("file", hex::encode(Sha256::digest(&data)))
        } else if ft.is_fifo() {
            ("fifo", String::new())
        } else if ft.is_char_device() {
            ("char", format!("{:x}", meta.rdev()))
        } else if ft.is_block_device() {
            ("block", format!("{:x}", meta.rdev()))
        } else {
            ("socket", String::new())
        };
        let rel = path
            .strip_prefix(root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        out.insert(
            rel,
            Node {
                kind,
                mode: if ft.is_symlink() {
                    0
                } else {
                    meta.mode() & 0o7777
                },
                uid: meta.uid(),
                gid: meta.gid(),
                detail,
                xattrs: xattrs(&path),
            },
        );
        if ft.is_dir() {
            walk(root, &path, out);
        }
    }
}

/// Every extended attribute of a path (not following a symlink: a link's own, which only
/// trusted.* and security.* can be), sorted by name.
pub fn xattrs(path: &Path) -> Vec<(String, Vec<u8>)> {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: llistxattr writes at most names.len() bytes into our buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n < 0 {
        let err = std::io::Error::last_os_error();
        // A filesystem without xattrs has none to lose.
        assert_eq!(
            err.raw_os_error(),
            Some(libc::ENOTSUP),
            "llistxattr {}: {err}",
            path.display()
        );
        return vec![];
    }
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let cname = CString::new(name).unwrap();
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: lgetxattr writes at most value.len() bytes into our buffer.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        assert!(
            len >= 0,
            "lgetxattr {} {}: {}",
            path.display(),
            String::from_utf8_lossy(name),
            std::io::Error::last_os_error()
        );
        value.truncate(len as usize);
        out.push((String::from_utf8_lossy(name).into_owned(), value));
    }
    out.sort();
    out
}

/// Panics with every difference between two listings.
pub fn assert_same(ours: &BTreeMap<String, Node>, theirs: &BTreeMap<String, Node>, what: &str) {
    let mut diffs = Vec::new();
    for (p, n) in ours {
        match theirs.get(p) {
            None => diffs.push(format!("only in ours: {p} {n:?}")),
            Some(t) if t != n => diffs.push(format!("{p}: ours {n:?} theirs {t:?}")),
            _ => {}
        }
    }
    for p in theirs.keys().filter(|p| !ours.contains_key(*p)) {
        diffs.push(format!("only in theirs: {p} {:?}", theirs[p]));
    }
    assert!(
        diffs.is_empty(),
        "{what}: {} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file capability (security.capability) and a trusted.* attribute are part of the
    /// listing: a tree that lost one differs from one that kept it.
    #[test]
    fn a_lost_file_capability_is_a_difference() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        for d in [a.path(), b.path()] {
            std::fs::write(d.join("ping"), "binary").unwrap();
        }
        let set = |p: &Path, name: &str, value: &[u8]| {
            let c = CString::new(p.as_os_str().as_bytes()).unwrap();
            let n = CString::new(name).unwrap();
            // SAFETY: lsetxattr reads value.len() bytes of value and two C strings.
            let rc = unsafe {
                libc::lsetxattr(
                    c.as_ptr(),
                    n.as_ptr(),
                    value.as_ptr().cast(),
                    value.len(),
                    0,
                )
            };
            assert_eq!(rc, 0, "{name}: {}", std::io::Error::last_os_error());
        };
        // VFS_CAP_REVISION_2 with CAP_NET_RAW (13) permitted and effective.
        let cap: [u8; 20] = [
            0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        set(&a.path().join("ping"), "security.capability", &cap);
        set(&a.path().join("ping"), "trusted.mark", b"1");
        let with = listing(a.path());
        let without = listing(b.path());
        assert_ne!(with, without);
        let names: Vec<&str> = with["ping"]
            .xattrs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(names, ["security.capability", "trusted.mark"]);
        let lost = std::panic::catch_unwind(|| assert_same(&with, &without, "trees"));
        assert!(lost.is_err(), "assert_same missed the lost capability");
    }
}
