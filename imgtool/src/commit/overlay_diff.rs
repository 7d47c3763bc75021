//! The changes of an overlay bundle: its upper directory already is the changeset, in
//! overlayfs's spelling. A 0:0 character device is a deletion (an OCI whiteout), a
//! directory marked `trusted.overlay.opaque=y` replaced the lower one (an opaque
//! marker); everything else is added or modified content. Reading it costs what was
//! changed, not the size of the image.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use super::writer::{xattrs, ChangeWriter};

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
    let mut names: Vec<_> = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    names.sort_by_key(|e| e.file_name());
    for entry in names {
        let name = entry.file_name().to_string_lossy().into_owned();
        let path = entry.path();
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
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
