//! Completing a layer applied on its own ([`super::ApplyInto::OverlayLayer`]) once the
//! layers below it are there: the parent directories it had to make take the mode, owner
//! and xattrs of the lower layers' directories, as they would have on the lower layers'
//! tree (where overlayfs copies a directory up before a child is made in it). Where
//! the lower layers have something the layer's own result cannot agree with (a symlink
//! or a file where it made a directory, no directory where it only made one for a
//! whiteout), the answer is to apply the layer on the lower layers' tree instead. Its
//! whiteouts of what no lower layer has are removed, as overlayfs would never make them.
//!
//! The lower layers' tree is read through paths whose every component is checked to be
//! a directory before it is entered, so no symlink of a layer is ever followed.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::apply::LowerRefs;

/// What completing a layer found.
#[derive(Debug, PartialEq, Eq)]
pub enum Completion {
    /// The layer is what applying it on the lower layers' tree would have made.
    Done,
    /// It is not: apply it on the lower layers' tree (the reason says where).
    NeedsLowerTree(String),
}

/// What the lower layers' tree has at a path.
enum Lower {
    /// Nothing (or nothing that counts: below a directory the layer replaced).
    Absent,
    /// A directory, with its metadata.
    Dir(fs::Metadata),
    /// A file, symlink or device, with its metadata.
    Other(fs::Metadata),
}

/// What `tree` has at `rel` for what the layer did after `seq` entries, never following a
/// symlink; `opaque` are the directories the layer marked to hide the lower ones, with
/// when.
fn lookup(
    tree: &Path,
    rel: &Path,
    seq: usize,
    opaque: &HashMap<PathBuf, usize>,
) -> std::io::Result<Lower> {
    let comps: Vec<_> = rel.components().collect();
    let mut prefix = PathBuf::new();
    for (k, c) in comps.iter().enumerate() {
        prefix.push(c);
        let last = k + 1 == comps.len();
        let meta = match fs::symlink_metadata(tree.join(&prefix)) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Lower::Absent),
            Err(e) => return Err(e),
        };
        if last {
            return Ok(if meta.is_dir() {
                Lower::Dir(meta)
            } else {
                Lower::Other(meta)
            });
        }
        // An ancestor the layer made opaque, or one the lower tree has as a non-directory
        // (the layer has a directory there, so it hides it): below it nothing counts.
        if opaque.get(&prefix).is_some_and(|&marked| marked <= seq) || !meta.is_dir() {
            return Ok(Lower::Absent);
        }
    }
    Ok(Lower::Absent) // the root itself: never made by a layer
}

/// Completes `layer` (a directory [`super::apply_layer`] filled as an overlay layer, with
/// `refs` from its stats) against `lower_tree`, the merged tree of the layers below it.
pub fn complete(layer: &Path, lower_tree: &Path, refs: &LowerRefs) -> std::io::Result<Completion> {
    for (dir, seq) in &refs.made_for_whiteouts {
        if !matches!(lookup(lower_tree, dir, *seq, &refs.opaque)?, Lower::Dir(_)) {
            return Ok(Completion::NeedsLowerTree(format!(
                "it hides entries in /{}, which the layers below do not have as a directory",
                dir.display()
            )));
        }
    }
    for (dir, seq) in &refs.made_dirs {
        let meta = match lookup(lower_tree, dir, *seq, &refs.opaque)? {
            Lower::Absent => continue,
            Lower::Other(_) => {
                return Ok(Completion::NeedsLowerTree(format!(
                    "it writes below /{}, which the layers below have as a non-directory",
                    dir.display()
                )))
            }
            Lower::Dir(_) if refs.given_dirs.contains(dir) => continue,
            Lower::Dir(meta) => meta,
        };
        // Still a directory of the layer's, reached without a symlink the layer made
        // later (one could lead to another of its directories).
        if !matches!(lookup(layer, dir, 0, &HashMap::new())?, Lower::Dir(_)) {
            continue; // removed or replaced later in the layer
        }
        let own = layer.join(dir);
        std::os::unix::fs::lchown(&own, Some(meta.uid()), Some(meta.gid()))?;
        fs::set_permissions(&own, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
        for (key, value) in super::xattrs::read_portable(&lower_tree.join(dir)) {
            super::xattrs::set(&own, &key, &value)?;
        }
    }
    for (hidden, seq) in &refs.whiteouts {
        if !matches!(
            lookup(lower_tree, hidden, *seq, &refs.opaque)?,
            Lower::Absent
        ) {
            continue;
        }
        // Still the whiteout (a later entry may have put something there), reached
        // without a symlink.
        if let Lower::Other(m) = lookup(layer, hidden, 0, &HashMap::new())? {
            if m.file_type().is_char_device() && m.rdev() == 0 {
                fs::remove_file(layer.join(hidden))?;
            }
        }
    }
    Ok(Completion::Done)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// Refs of a layer that marked `opaque` first, then made its directories.
    fn refs(made: &[&str], for_whiteouts: &[&str], opaque: &[&str]) -> LowerRefs {
        LowerRefs {
            made_dirs: made.iter().map(|p| (PathBuf::from(p), 1)).collect(),
            made_for_whiteouts: for_whiteouts
                .iter()
                .map(|p| (PathBuf::from(p), 1))
                .collect(),
            opaque: opaque.iter().map(|p| (PathBuf::from(p), 0)).collect(),
            given_dirs: HashSet::new(),
            whiteouts: Vec::new(),
        }
    }

    #[test]
    fn a_made_directory_takes_the_lower_ones_mode() {
        let (layer, lower) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::create_dir_all(lower.path().join("usr/share")).unwrap();
        fs::set_permissions(
            lower.path().join("usr/share"),
            fs::Permissions::from_mode(0o750),
        )
        .unwrap();
        fs::create_dir_all(layer.path().join("usr/share/doc")).unwrap();
        let r = refs(&["usr", "usr/share", "usr/share/doc"], &[], &[]);
        assert_eq!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::Done
        );
        let mode = |p: &str| fs::metadata(layer.path().join(p)).unwrap().mode() & 0o7777;
        assert_eq!(mode("usr/share"), 0o750);
        assert_eq!(mode("usr/share/doc"), 0o755, "absent below: left as made");
    }

    #[test]
    fn a_symlink_below_a_made_directory_needs_the_lower_tree() {
        let (layer, lower) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::create_dir_all(lower.path().join("usr/lib")).unwrap();
        std::os::unix::fs::symlink("usr/lib", lower.path().join("lib")).unwrap();
        fs::create_dir_all(layer.path().join("lib")).unwrap();
        let r = refs(&["lib"], &[], &[]);
        assert!(matches!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::NeedsLowerTree(_)
        ));
        // Below a directory the layer made opaque, the lower symlink does not count.
        fs::create_dir_all(layer.path().join("opt/lib")).unwrap();
        fs::create_dir_all(lower.path().join("opt")).unwrap();
        std::os::unix::fs::symlink("/etc", lower.path().join("opt/lib")).unwrap();
        let r = refs(&["opt/lib/x"], &[], &["opt/lib"]);
        assert_eq!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::Done
        );
    }

    /// A made directory the layer later replaced by a symlink is not reached through it:
    /// the directory the symlink leads to keeps its own mode.
    #[test]
    fn a_made_directory_replaced_by_a_symlink_is_not_completed_through_it() {
        let (layer, lower) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::create_dir_all(lower.path().join("b/b")).unwrap();
        fs::set_permissions(lower.path().join("b/b"), fs::Permissions::from_mode(0o711)).unwrap();
        fs::create_dir_all(layer.path().join("a/b")).unwrap();
        fs::set_permissions(layer.path().join("a/b"), fs::Permissions::from_mode(0o750)).unwrap();
        std::os::unix::fs::symlink("a", layer.path().join("b")).unwrap();
        let r = refs(&["b", "b/b"], &[], &[]);
        assert_eq!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::Done
        );
        let mode = fs::metadata(layer.path().join("a/b")).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o750);
    }

    #[test]
    fn a_whiteout_in_a_directory_the_lower_layers_lack_needs_the_lower_tree() {
        let (layer, lower) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        fs::create_dir_all(layer.path().join("gone")).unwrap();
        let r = refs(&["gone"], &["gone"], &[]);
        assert!(matches!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::NeedsLowerTree(_)
        ));
        fs::create_dir_all(lower.path().join("gone")).unwrap();
        assert_eq!(
            complete(layer.path(), lower.path(), &r).unwrap(),
            Completion::Done
        );
    }
}
