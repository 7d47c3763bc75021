//! The changes of a copied bundle: its rootfs compared with the image it was unpacked
//! from. A path is changed when its type, mode, owner, size, mtime, link target or
//! xattrs differ (a rewritten file has a new mtime, as docker and tar judge it); a path
//! of the image that is gone becomes a whiteout (only the topmost gone directory).

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use super::writer::{child_path, portable_xattrs, sorted_entries, ChangeWriter};

fn same(a: &fs::Metadata, b: &fs::Metadata, pa: &Path, pb: &Path) -> bool {
    if a.file_type() != b.file_type()
        || a.mode() != b.mode()
        || a.uid() != b.uid()
        || a.gid() != b.gid()
    {
        return false;
    }
    if a.is_dir() {
        // A directory's own mtime moves with every entry added or removed, which the
        // entries themselves record; only its own metadata counts.
        return portable_xattrs(pa) == portable_xattrs(pb);
    }
    if a.file_type().is_symlink() {
        return fs::read_link(pa).ok() == fs::read_link(pb).ok();
    }
    a.len() == b.len()
        && a.mtime() == b.mtime()
        && a.mtime_nsec() == b.mtime_nsec()
        && a.rdev() == b.rdev()
        && portable_xattrs(pa) == portable_xattrs(pb)
}

/// Writes what differs between `current` and `original` into `out`.
pub fn write_tree_diff<W: Write>(
    current: &Path,
    original: &Path,
    excluded: &[String],
    out: &mut ChangeWriter<W>,
) -> io::Result<()> {
    walk(current, original, "", excluded, out)
}

fn walk<W: Write>(
    cur: &Path,
    orig: &Path,
    rel: &str,
    excluded: &[String],
    out: &mut ChangeWriter<W>,
) -> io::Result<()> {
    let names = sorted_entries(cur)?;
    for entry in &names {
        let name = entry.file_name().to_string_lossy().into_owned();
        let child = child_path(rel, &name);
        if excluded.iter().any(|e| e == &child) {
            continue;
        }
        let cpath = entry.path();
        let opath = orig.join(&name);
        let cmeta = fs::symlink_metadata(&cpath)?;
        match fs::symlink_metadata(&opath) {
            Ok(ometa) if ometa.is_dir() && cmeta.is_dir() => {
                if !same(&cmeta, &ometa, &cpath, &opath) {
                    out.add(&child, &cpath, &cmeta)?;
                }
                walk(&cpath, &opath, &child, excluded, out)?;
            }
            Ok(ometa) if same(&cmeta, &ometa, &cpath, &opath) => {}
            _ => {
                out.add(&child, &cpath, &cmeta)?;
                if cmeta.is_dir() {
                    add_tree(&cpath, &child, excluded, out)?;
                }
            }
        }
    }
    // What the image had here and the rootfs no longer has.
    if let Ok(orig_entries) = fs::read_dir(orig) {
        let mut gone: Vec<String> = orig_entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| cur.join(n).symlink_metadata().is_err())
            .collect();
        gone.sort();
        for name in gone {
            let child = child_path(rel, &name);
            if !excluded.iter().any(|e| e == &child) {
                out.whiteout(&child)?;
            }
        }
    }
    Ok(())
}

/// Adds a whole new tree.
fn add_tree<W: Write>(
    dir: &Path,
    rel: &str,
    excluded: &[String],
    out: &mut ChangeWriter<W>,
) -> io::Result<()> {
    for entry in sorted_entries(dir)? {
        let child = format!("{rel}/{}", entry.file_name().to_string_lossy());
        if excluded.iter().any(|e| e == &child) {
            continue;
        }
        let meta = fs::symlink_metadata(entry.path())?;
        out.add(&child, &entry.path(), &meta)?;
        if meta.is_dir() {
            add_tree(&entry.path(), &child, excluded, out)?;
        }
    }
    Ok(())
}
