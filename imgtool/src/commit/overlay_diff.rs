//! The changes of an overlay bundle: its upper directory already is the changeset, in
//! overlayfs's spelling. A 0:0 character device is a deletion (an OCI whiteout), a
//! directory marked `trusted.overlay.opaque=y` replaced the lower one (an opaque
//! marker); everything else is added or modified content. Reading it costs what was
//! changed, not the size of the image.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::writer::{child_path, sorted_entries, ChangeWriter};
use crate::layer::xattrs::read as xattrs;

fn is_whiteout(meta: &fs::Metadata) -> bool {
    meta.file_type().is_char_device() && meta.rdev() == 0
}

fn is_opaque(path: &Path) -> bool {
    xattrs(path).iter().any(|(k, v)| {
        (k == "trusted.overlay.opaque" || k == "user.overlay.opaque") && v.as_slice() == b"y"
    })
}

/// Writes the changeset of `upper` into `out`, leaving out `excluded` paths (relative,
/// e.g. volumes). Returns how many entries it wrote.
pub fn write_upper<W: Write>(
    upper: &Path,
    excluded: &[String],
    out: &mut ChangeWriter<W>,
) -> io::Result<()> {
    walk(upper, "", excluded, out)
}

fn walk<W: Write>(
    dir: &Path,
    rel: &str,
    excluded: &[String],
    out: &mut ChangeWriter<W>,
) -> io::Result<()> {
    for entry in sorted_entries(dir)? {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let child = child_path(rel, &name);
        if excluded.iter().any(|e| e == &child) {
            continue;
        }
        let meta = fs::symlink_metadata(&path)?;
        if is_whiteout(&meta) {
            out.whiteout(&child)?;
            continue;
        }
        out.add(&child, &path, &meta)?;
        if meta.is_dir() {
            if is_opaque(&path) {
                out.opaque(&child)?;
            }
            walk(&path, &child, excluded, out)?;
        }
    }
    Ok(())
}
