//! Applies one layer changeset (a tar stream) to a root directory, following image-spec
//! layer.md: regular files, directories, symlinks, hardlinks (also to files of lower
//! layers), fifos and device nodes, owners, modes, mtimes and xattrs, `.wh.` whiteouts and
//! `.wh..wh..opq` opaque directories.
//!
//! Hostile archives must not write outside the root. Every path is resolved inside it with
//! libpathrs (openat2 `RESOLVE_IN_ROOT`), so a symlink planted by an earlier entry, an
//! absolute target or a `..` chain all stay inside; entry names that climb above the root
//! and whiteouts of `.`/`..` are refused outright with an error naming the entry.

use std::collections::HashSet;
use std::ffi::CString;
use std::fs::Permissions;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use pathrs::flags::OpenFlags;
use pathrs::{InodeType, Root};
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot open the root {path}: {source}")]
    Root {
        path: PathBuf,
        source: pathrs::error::Error,
    },
    #[error("cannot read the layer: {0}")]
    Read(#[from] std::io::Error),
    #[error("hostile layer entry {entry:?}: {reason}")]
    Hostile { entry: String, reason: &'static str },
    #[error("cannot apply layer entry {entry:?}: {message}")]
    Write { entry: String, message: String },
}

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Give entries the owners the layer records (needs root); otherwise the caller owns all.
    pub preserve_owners: bool,
}

/// A directory whose mode and mtime are set after its contents are written.
struct DirMeta {
    path: PathBuf,
    mode: u32,
    mtime: u64,
}

/// The entry's path relative to the root, with `.` removed and `..` applied; an entry
/// that climbs above the root is hostile.
fn clean(raw: &Path, entry: &str) -> Result<PathBuf, ApplyError> {
    let mut out = PathBuf::new();
    for c in raw.components() {
        match c {
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
            Component::ParentDir => {
                if !out.pop() {
                    return Err(ApplyError::Hostile {
                        entry: entry.to_string(),
                        reason: "its path climbs above the root",
                    });
                }
            }
            Component::Normal(n) => out.push(n),
        }
    }
    Ok(out)
}

fn write_err(entry: &str, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Write {
        entry: entry.to_string(),
        message: e.to_string(),
    }
}

/// A failed file system call on an entry, saying which step failed and why: pathrs's own
/// text ("resolve hardlink source path") with the innermost cause ("No such file or
/// directory"), without the openat2 arguments in between.
fn fs_err<E: std::error::Error>(entry: &str, e: E) -> ApplyError {
    let mut root_cause = None;
    let mut cause = e.source();
    while let Some(c) = cause {
        root_cause = Some(c.to_string());
        cause = c.source();
    }
    let top = e.to_string();
    match root_cause {
        Some(why) if !top.ends_with(&why) => {
            // pathrs puts the errno text last in its own messages too.
            let why = why.rsplit("): ").next().unwrap_or(&why).to_string();
            write_err(entry, format!("{top}: {why}"))
        }
        _ => write_err(entry, top),
    }
}

/// Whether the path is absent: nothing there, or a parent that is not a directory (so
/// nothing can be below it).
fn is_not_found(e: &pathrs::error::Error) -> bool {
    matches!(
        e.kind(),
        pathrs::error::ErrorKind::OsError(Some(libc::ENOENT | libc::ENOTDIR))
    )
}

/// Removes whatever is at `path` (file, link or whole tree); absent is fine.
fn remove_any(root: &Root, path: &Path, entry: &str) -> Result<(), ApplyError> {
    match root.remove_all(path) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(fs_err(entry, e)),
    }
}

/// The `/proc/self/fd/N` path of an O_PATH handle: chmod, chown, utimensat and setxattr
/// through it act on the inode the handle pinned, never on a path an attacker could swap.
fn fd_path(fd: &impl AsFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())).expect("no NUL in a number")
}

/// Applies a tar stream to `root`. Returns the number of entries applied.
pub fn apply_layer(
    root_dir: &Path,
    layer: impl Read,
    opts: ApplyOptions,
) -> Result<usize, ApplyError> {
    let root = Root::open(root_dir).map_err(|source| ApplyError::Root {
        path: root_dir.to_path_buf(),
        source,
    })?;
    let mut archive = tar::Archive::new(layer);
    // Paths this layer created: an opaque marker hides only what lower layers had.
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut dirs: Vec<DirMeta> = Vec::new();
    let mut count = 0;
    for entry in archive.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let name = raw.to_string_lossy().into_owned();
        let path = clean(&raw, &name)?;
        if path.as_os_str().is_empty() {
            continue; // "./": the root itself
        }
        let file_name = path
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_default();
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();

        if file_name == OPAQUE_WHITEOUT {
            opaque(&root, &parent, &created, &name)?;
            count += 1;
            continue;
        }
        if let Some(hidden) = file_name.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(ApplyError::Hostile {
                    entry: name,
                    reason: "a whiteout of . or ..",
                });
            }
            remove_any(&root, &parent.join(hidden), &name)?;
            count += 1;
            continue;
        }

        if !parent.as_os_str().is_empty() {
            root.mkdir_all(&parent, &Permissions::from_mode(0o755))
                .map_err(|e| fs_err(&name, e))?;
        }
        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let kind = header.entry_type();
        match kind {
            EntryType::Directory => {
                let existing_dir = root
                    .resolve_nofollow(&path)
                    .ok()
                    .and_then(|h| h.reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY).ok())
                    .is_some();
                if !existing_dir {
                    remove_any(&root, &path, &name)?;
                    root.mkdir_all(&path, &Permissions::from_mode(0o755))
                        .map_err(|e| fs_err(&name, e))?;
                }
                dirs.push(DirMeta {
                    path: path.clone(),
                    mode,
                    mtime: header.mtime().unwrap_or(0),
                });
            }
            EntryType::Regular | EntryType::Continuous => {
                remove_any(&root, &path, &name)?;
                let mut file = root
                    .create_file(
                        &path,
                        OpenFlags::O_WRONLY
                            | OpenFlags::O_CREAT
                            | OpenFlags::O_EXCL
                            | OpenFlags::O_NOFOLLOW,
                        &Permissions::from_mode(0o600),
                    )
                    .map_err(|e| fs_err(&name, e))?;
                std::io::copy(&mut entry, &mut file).map_err(|e| fs_err(&name, e))?;
            }
            EntryType::Symlink => {
                let target = header
                    .link_name()?
                    .ok_or_else(|| write_err(&name, "symlink without a target"))?
                    .into_owned();
                remove_any(&root, &path, &name)?;
                root.create(&path, &InodeType::Symlink(target))
                    .map_err(|e| fs_err(&name, e))?;
            }
            EntryType::Link => {
                let raw_target = header
                    .link_name()?
                    .ok_or_else(|| write_err(&name, "hardlink without a target"))?
                    .into_owned();
                let target = clean(&raw_target, &name)?;
                remove_any(&root, &path, &name)?;
                root.create(&path, &InodeType::Hardlink(target))
                    .map_err(|e| fs_err(&name, e))?;
                created.insert(path);
                count += 1;
                continue; // a hardlink shares its target's metadata
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                remove_any(&root, &path, &name)?;
                let perm = Permissions::from_mode(0o600);
                let dev = || {
                    let major = header.device_major().ok().flatten().unwrap_or(0);
                    let minor = header.device_minor().ok().flatten().unwrap_or(0);
                    libc::makedev(major, minor)
                };
                let inode = match kind {
                    EntryType::Fifo => InodeType::Fifo(perm),
                    EntryType::Char => InodeType::CharacterDevice(perm, dev()),
                    _ => InodeType::BlockDevice(perm, dev()),
                };
                root.create(&path, &inode).map_err(|e| fs_err(&name, e))?;
            }
            // Metadata-only records the tar crate has already folded into entries.
            _ => continue,
        }

        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions()? {
            Some(exts) => exts
                .flatten()
                .filter_map(|e| {
                    let key = e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                    Some((key, e.value_bytes().to_vec()))
                })
                .collect(),
            None => Vec::new(),
        };
        if kind != EntryType::Directory {
            set_metadata(
                &root,
                &path,
                &header,
                mode,
                &xattrs,
                opts,
                &name,
                kind != EntryType::Symlink,
            )?;
        } else {
            set_owner_and_xattrs(&root, &path, &header, &xattrs, opts, &name)?;
        }
        created.insert(path);
        count += 1;
    }
    // Directory modes and mtimes last: writing their contents changed the mtimes, and a
    // read-only mode would have refused the contents.
    for d in dirs.iter().rev() {
        let handle = root
            .resolve_nofollow(&d.path)
            .map_err(|e| fs_err(&d.path.to_string_lossy(), e))?;
        let p = fd_path(&handle);
        chmod(&p, d.mode, &d.path.to_string_lossy())?;
        set_mtime(&p, d.mtime);
    }
    Ok(count)
}

/// Hides everything lower layers put in `dir` (what this layer created stays).
fn opaque(
    root: &Root,
    dir: &Path,
    created: &HashSet<PathBuf>,
    entry: &str,
) -> Result<(), ApplyError> {
    let handle = match root.resolve_nofollow(dir) {
        Ok(h) => h,
        Err(e) if is_not_found(&e) => return Ok(()),
        Err(e) => return Err(fs_err(entry, e)),
    };
    // Below a file or a symlink nothing can be hidden (as below a missing path).
    let is_dir = nix::sys::stat::fstat(handle.as_fd().as_raw_fd())
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .map_err(|e| fs_err(entry, e))?;
    if !is_dir {
        return Ok(());
    }
    let listing = handle
        .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
        .map_err(|e| fs_err(entry, e))?;
    let names: Vec<PathBuf> = std::fs::read_dir(fd_path(&listing).to_str().unwrap_or_default())
        .map_err(|e| fs_err(entry, e))?
        .flatten()
        .map(|e| dir.join(e.file_name()))
        .collect();
    for child in names {
        if !created.contains(&child) {
            remove_any(root, &child, entry)?;
        }
    }
    Ok(())
}

fn chmod(p: &CString, mode: u32, entry: &str) -> Result<(), ApplyError> {
    // SAFETY: chmod with a NUL-terminated path; no memory is written.
    if unsafe { libc::chmod(p.as_ptr(), mode) } != 0 {
        return Err(write_err(entry, std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_mtime(p: &CString, mtime: u64) {
    let t = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [t, t];
    // SAFETY: utimensat reads two timespecs from an array we own.
    unsafe { libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0) };
}

fn set_owner_and_xattrs(
    root: &Root,
    path: &Path,
    header: &tar::Header,
    xattrs: &[(String, Vec<u8>)],
    opts: ApplyOptions,
    entry: &str,
) -> Result<(), ApplyError> {
    let handle = root.resolve_nofollow(path).map_err(|e| fs_err(entry, e))?;
    if opts.preserve_owners {
        let uid = header.uid().unwrap_or(0) as libc::uid_t;
        let gid = header.gid().unwrap_or(0) as libc::gid_t;
        let empty = c"";
        // SAFETY: fchownat on our O_PATH fd with an empty path; no memory is written.
        let rc = unsafe {
            libc::fchownat(
                handle.as_fd().as_raw_fd(),
                empty.as_ptr(),
                uid,
                gid,
                libc::AT_EMPTY_PATH | libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(write_err(entry, std::io::Error::last_os_error()));
        }
    }
    let p = fd_path(&handle);
    for (key, value) in xattrs {
        let Ok(k) = CString::new(key.as_bytes()) else {
            continue;
        };
        // SAFETY: setxattr reads `value.len()` bytes from the slice and two C strings.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                k.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if rc != 0 {
            return Err(write_err(
                entry,
                format!("xattr {key}: {}", std::io::Error::last_os_error()),
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn set_metadata(
    root: &Root,
    path: &Path,
    header: &tar::Header,
    mode: u32,
    xattrs: &[(String, Vec<u8>)],
    opts: ApplyOptions,
    entry: &str,
    follows: bool,
) -> Result<(), ApplyError> {
    // Owner first: chown clears set-id bits, which the mode then sets.
    let xattrs = if follows { xattrs } else { &[] };
    set_owner_and_xattrs(root, path, header, xattrs, opts, entry)?;
    if follows {
        let handle = root.resolve_nofollow(path).map_err(|e| fs_err(entry, e))?;
        let p = fd_path(&handle);
        chmod(&p, mode, entry)?;
        set_mtime(&p, header.mtime().unwrap_or(0));
    }
    Ok(())
}
