//! Applies one layer changeset (a tar stream) to a root directory, following image-spec
//! layer.md: regular files, directories, symlinks, hardlinks (also to files of lower
//! layers), fifos and device nodes, owners, modes, mtimes and xattrs, `.wh.` whiteouts and
//! `.wh..wh..opq` opaque directories.
//!
//! Hostile archives must not write outside the root. Parent directories are resolved
//! with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` from a handle on the root, so a
//! symlink planted by an earlier entry, an absolute target or a `..` chain all stay
//! inside. A missing parent is created component by component from the root; a
//! component that is a symlink to a path that does not exist yet (`lib -> usr/lib` before
//! `usr/lib` is made) gets its target created inside the root, as docker and umoci do.
//! Every change is then made relative to the parent's handle on the entry's final name
//! only, never following a symlink there (`O_NOFOLLOW`, `O_EXCL`, `AT_SYMLINK_NOFOLLOW`),
//! and metadata is set through the file's own descriptor. Entry names that climb above
//! the root, hardlinks to what the image does not have, whiteouts of `.`/`..`, symlink
//! loops and magic links are refused with an error naming the entry and the reason.
//!
//! Extended attributes follow [`super::xattrs`]; a tar stream that is not a tar archive
//! is an error saying so, never one quoting its bytes.
//!
//! Two targets ([`ApplyInto`]): a whole root, on which whiteouts remove what they name
//! (a plain tree, or an overlay mount of the layers below, which records the removals
//! as overlay whiteouts itself); or an overlay layer on its own, an empty directory that
//! receives this layer's changes in overlayfs's form (whiteouts as 0/0 character
//! devices, opaque directories by `trusted.overlay.opaque`), as containerd and
//! c/storage unpack, so that layers can be unpacked side by side. What such a layer
//! cannot know alone, what the layers below have where it made parent directories, is
//! reported in [`LowerRefs`] for [`super::lower`] to complete once they are there, and
//! what it cannot do alone (a hardlink to a lower layer's file, a path through a
//! symlink) fails, so the caller applies it on the overlay of the lower layers instead.
//!
//! Speed: parent handles are cached (and dropped whenever this layer removes or replaces
//! anything at or below them), so an entry costs a handful of system calls rather than
//! a full resolution per operation.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::Read;
use std::ops::Bound;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fchmod, futimens, mkdirat, mknodat, utimensat, Mode, SFlag, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchown, fchownat, linkat, symlinkat, unlinkat, Gid, Uid, UnlinkatFlags};
use tar::EntryType;

const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_WHITEOUT: &str = ".wh..wh..opq";

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("cannot open the root {path}: {message}")]
    Root { path: PathBuf, message: String },
    #[error("cannot read the layer: {0}")]
    Read(#[from] std::io::Error),
    #[error("the layer is not a valid tar archive ({reason}, after {entries} entries)")]
    NotATar { reason: String, entries: usize },
    #[error("hostile layer entry {entry:?}: {reason}")]
    Hostile { entry: String, reason: &'static str },
    #[error("cannot apply layer entry {entry:?}: {message}")]
    Write { entry: String, message: String },
}

/// What a layer held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Entries applied (whiteouts included).
    pub entries: usize,
    /// Its size as docker reports a layer's: file contents plus symlink targets, each
    /// hardlinked file once.
    pub size: u64,
    /// For [`ApplyInto::OverlayLayer`]: where the result depends on the layers below.
    pub lower: LowerRefs,
}

/// Where a layer applied on its own ([`ApplyInto::OverlayLayer`]) depends on the layers
/// below it; paths are relative to the root and free of symlinks, each with the number
/// of entries applied before it happened (an opaque mark hides the lower layers from
/// what follows it, not from what the layer did before).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LowerRefs {
    /// Parent directories this layer made before any entry of its own for them (mode
    /// 0755, the caller's owner), parents before children: where a lower layer has
    /// something else than a directory the layer must be applied on the lower layers'
    /// tree (it went through that); where it has a directory, one the layer never gives
    /// an entry for takes that directory's mode, owner and xattrs, as it would have there.
    pub made_dirs: Vec<(PathBuf, usize)>,
    /// Those of `made_dirs` the layer later gives an entry for (its metadata wins).
    pub given_dirs: HashSet<PathBuf>,
    /// Directories made only to hold a whiteout or an opaque marker: on the lower
    /// layers' tree nothing is made when there is nothing to hide, so unless a lower
    /// layer has the directory the layer must be applied on that tree.
    pub made_for_whiteouts: Vec<(PathBuf, usize)>,
    /// Directories this layer marked opaque: below them the lower layers do not count.
    pub opaque: HashMap<PathBuf, usize>,
    /// The paths this layer made overlay whiteouts for. One that hides nothing is
    /// removed: overlayfs lists a whiteout in a directory no lower layer has (it is
    /// merged with nothing), where applying on the lower layers' tree leaves no trace.
    pub whiteouts: Vec<(PathBuf, usize)>,
}

impl LowerRefs {
    /// Whether the layer is complete without looking at the layers below.
    pub fn is_empty(&self) -> bool {
        self.made_dirs.is_empty() && self.made_for_whiteouts.is_empty() && self.whiteouts.is_empty()
    }
}

/// A tar error as a reason (`numeric field was not a number`), without the bytes the
/// tar crate quotes after it.
pub fn tar_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    if text.contains("failed to read entire block") {
        return "it ends in the middle of a 512-byte block".into();
    }
    let head = text.split(':').next().unwrap_or(&text);
    let head = head.split(" when ").next().unwrap_or(head).trim();
    if head.is_empty() || !head.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
        "an unreadable header".into()
    } else {
        head.to_string()
    }
}

/// How to apply.
#[derive(Debug, Clone, Copy)]
pub struct ApplyOptions {
    /// Give entries the owners the layer records (needs root); otherwise the caller owns all.
    pub preserve_owners: bool,
    /// What the target directory is.
    pub into: ApplyInto,
}

/// What a layer is applied to (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyInto {
    /// The whole tree (or an overlay mount of the layers below): whiteouts remove.
    Root,
    /// An empty directory that becomes an overlay layer: whiteouts and opaque markers in
    /// overlayfs's form, no symlink followed in a parent path, and the lower layers'
    /// part left to [`LowerRefs`]. Needs root (whiteouts are device nodes, the opaque
    /// mark a trusted xattr).
    OverlayLayer,
}

/// overlayfs's mark of a directory that hides the lower layers' one.
const OVERLAY_OPAQUE: &str = "trusted.overlay.opaque";

/// A directory whose mode and mtime are set after its contents are written.
struct DirMeta {
    mode: u32,
    mtime: u64,
    /// The directory made (device, inode): by then its path may lead elsewhere.
    id: (u64, u64),
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

/// How many symlinks creating one entry's parent may follow (the kernel's limit).
const MAX_SYMLINKS: usize = 40;

/// A parent directory that cannot be opened or made, with the reason in words.
fn parent_err(entry: &str, parent: &Path, e: Errno) -> ApplyError {
    let p = parent.display();
    let why = match e {
        Errno::ELOOP => format!(
            "its parent {p} is a loop of symlinks (or more than {MAX_SYMLINKS} of them): refused"
        ),
        Errno::EXDEV => format!(
            "its parent {p} resolves through a magic link such as /proc/self/root, which could lead out of the root: refused"
        ),
        Errno::ENOTDIR => format!("its parent {p} is not a directory in the image"),
        other => format!("parent {p}: {}", other.desc()),
    };
    ApplyError::Write {
        entry: entry.to_string(),
        message: why,
    }
}

fn write_err(entry: &str, e: impl std::fmt::Display) -> ApplyError {
    ApplyError::Write {
        entry: entry.to_string(),
        message: e.to_string(),
    }
}

/// The root being written, with a cache of parent-directory handles.
struct Tree {
    root: OwnedFd,
    /// Relative directory path → an `O_PATH` handle on it, resolved inside the root.
    dirs: HashMap<PathBuf, OwnedFd>,
    /// For an overlay layer: paths resolve without following any symlink, so every
    /// path names what it says (a symlink in a parent path fails with ELOOP).
    no_symlinks: bool,
    /// Directories [`Tree::make_dirs`] made, parents first, with the entry count then.
    made: Vec<(PathBuf, usize)>,
    /// Entries applied so far (for `made`).
    seq: usize,
    /// This layer's directory entries by real path (no symlink in it), whose mode and
    /// mtime are set last; one removed or replaced (see [`Tree::forget`]) is dropped, one
    /// given again replaced. Ordered by path, so that what is at or below a path is one
    /// range of it.
    pending: BTreeMap<PathBuf, DirMeta>,
}

impl Tree {
    fn open(root_path: &Path, no_symlinks: bool) -> Result<Self, ApplyError> {
        let fd = nix::fcntl::open(
            root_path,
            OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| ApplyError::Root {
            path: root_path.to_path_buf(),
            message: e.to_string(),
        })?;
        Ok(Self {
            // SAFETY: open returned a new descriptor that nothing else owns.
            root: unsafe { OwnedFd::from_raw_fd(fd) },
            dirs: HashMap::new(),
            no_symlinks,
            made: Vec::new(),
            seq: 0,
            pending: BTreeMap::new(),
        })
    }

    /// Opens `rel` inside the root (symlinks resolved as if the root were `/`).
    fn resolve(&self, rel: &Path, flags: OFlag) -> Result<OwnedFd, Errno> {
        let mut resolve = ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS;
        if self.no_symlinks {
            resolve |= ResolveFlag::RESOLVE_NO_SYMLINKS;
        }
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(resolve);
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        let fd = openat2(self.root.as_raw_fd(), rel, how)?;
        // SAFETY: openat2 returned a new descriptor that nothing else owns.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }

    /// A handle on directory `rel`, made (with its missing parents, mode 0755) if absent.
    fn dir(&mut self, rel: &Path, entry: &str) -> Result<RawFd, ApplyError> {
        if rel.as_os_str().is_empty() {
            return Ok(self.root.as_raw_fd());
        }
        if let Some(fd) = self.dirs.get(rel) {
            return Ok(fd.as_raw_fd());
        }
        let fd = match self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY) {
            Ok(fd) => fd,
            Err(_) => {
                // Made where missing; otherwise the walk names the component at fault.
                self.make_dirs(rel, entry, 0)?;
                self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY)
                    .map_err(|e| parent_err(entry, rel, e))?
            }
        };
        let raw = fd.as_raw_fd();
        self.dirs.insert(rel.to_path_buf(), fd);
        Ok(raw)
    }

    /// Creates the directories of `rel` that are missing, inside the root: each missing
    /// component is made in its (resolved) parent, and a component that is a dangling
    /// symlink gets its target made (resolved as the kernel would, inside the root).
    /// `depth` counts the symlinks followed, to end loops.
    fn make_dirs(&mut self, rel: &Path, entry: &str, depth: usize) -> Result<(), ApplyError> {
        if depth > MAX_SYMLINKS {
            return Err(parent_err(entry, rel, Errno::ELOOP));
        }
        let mut prefix = PathBuf::new();
        for c in rel.components() {
            let parent = prefix.clone();
            prefix.push(c);
            let Component::Normal(name) = c else {
                continue; // "..", "." and "/" resolve to what exists already
            };
            match self.resolve(&prefix, OFlag::O_PATH | OFlag::O_DIRECTORY) {
                Ok(_) => continue,
                Err(Errno::ENOENT) => {}
                Err(e) => return Err(parent_err(entry, &prefix, e)),
            }
            let pfd = self
                .resolve(&parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .map_err(|e| parent_err(entry, &parent, e))?;
            match nix::sys::stat::fstatat(Some(pfd.as_raw_fd()), name, AtFlags::AT_SYMLINK_NOFOLLOW)
            {
                Err(Errno::ENOENT) => {
                    match mkdirat(Some(pfd.as_raw_fd()), name, Mode::from_bits_truncate(0o755)) {
                        Ok(()) => self.made.push((prefix.clone(), self.seq)),
                        Err(Errno::EEXIST) => {}
                        Err(e) => return Err(parent_err(entry, &prefix, e)),
                    }
                }
                Ok(st)
                    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFLNK =>
                {
                    let target = nix::fcntl::readlinkat(Some(pfd.as_raw_fd()), name)
                        .map_err(|e| parent_err(entry, &prefix, e))?;
                    let target = Path::new(&target);
                    // An absolute target is relative to the root; a relative one to the
                    // link's directory. ".." is left to the kernel, which stops at the root.
                    let inside = if target.is_absolute() {
                        target.components().skip(1).collect::<PathBuf>()
                    } else {
                        parent.join(target)
                    };
                    self.make_dirs(&inside, entry, depth + 1)?;
                }
                Ok(_) => return Err(parent_err(entry, &prefix, Errno::ENOTDIR)),
                Err(e) => return Err(parent_err(entry, &prefix, e)),
            }
        }
        Ok(())
    }

    /// A handle on directory `rel` if it exists (no creation).
    fn existing_dir(&mut self, rel: &Path) -> Option<RawFd> {
        if rel.as_os_str().is_empty() {
            return Some(self.root.as_raw_fd());
        }
        if let Some(fd) = self.dirs.get(rel) {
            return Some(fd.as_raw_fd());
        }
        let fd = self.resolve(rel, OFlag::O_PATH | OFlag::O_DIRECTORY).ok()?;
        let raw = fd.as_raw_fd();
        self.dirs.insert(rel.to_path_buf(), fd);
        Some(raw)
    }

    /// Where directory handle `dir` is, relative to the root and free of symlinks (what
    /// the kernel says of it), joined with `name`.
    fn real_path(&self, dir: RawFd, name: &OsStr) -> Option<PathBuf> {
        let real = |fd: RawFd| std::fs::read_link(format!("/proc/self/fd/{fd}")).ok();
        let dir = real(dir)?;
        Some(
            dir.strip_prefix(real(self.root.as_raw_fd())?)
                .ok()?
                .join(name),
        )
    }

    /// Forgets cached handles and pending directory metadata at or below `rel` (it was
    /// removed or replaced). Pending directories are keyed by their real path: one given
    /// through a symlink is forgotten when its real place goes.
    fn forget(&mut self, rel: &Path) {
        let real = rel.file_name().and_then(|name| {
            let parent = rel.parent().unwrap_or(Path::new(""));
            let pfd = self
                .resolve(parent, OFlag::O_PATH | OFlag::O_DIRECTORY)
                .ok()?;
            self.real_path(pfd.as_raw_fd(), name)
        });
        if let Some(real) = real {
            let gone: Vec<PathBuf> = self
                .pending
                .range::<Path, _>((Bound::Included(real.as_path()), Bound::Unbounded))
                .map(|(p, _)| p)
                .take_while(|p| p.starts_with(&real))
                .cloned()
                .collect();
            for p in gone {
                self.pending.remove(&p);
            }
        }
        if self.dirs.is_empty() {
            return;
        }
        self.dirs.retain(|k, _| !k.starts_with(rel));
    }
}

/// Removes `name` in directory `dir` (a whole tree if it is a directory); absent is fine.
fn remove_at(dir: RawFd, name: &OsStr) -> Result<(), Errno> {
    match unlinkat(Some(dir), name, UnlinkatFlags::NoRemoveDir) {
        Ok(()) | Err(Errno::ENOENT) => Ok(()),
        Err(Errno::EISDIR) => {
            remove_children(dir, name)?;
            match unlinkat(Some(dir), name, UnlinkatFlags::RemoveDir) {
                Ok(()) | Err(Errno::ENOENT) => Ok(()),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
    }
}

/// Removes everything inside directory `name` of `dir`, never following symlinks.
fn remove_children(dir: RawFd, name: &OsStr) -> Result<(), Errno> {
    let mut d = nix::dir::Dir::openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    let fd = d.as_raw_fd();
    let names: Vec<CString> = d
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    for n in names {
        remove_at(fd, OsStr::from_bytes(n.as_bytes()))?;
    }
    Ok(())
}

/// The names in directory `dir` (by handle).
fn list_dir(dir: RawFd) -> Result<Vec<CString>, Errno> {
    let mut d = nix::dir::Dir::openat(
        Some(dir),
        ".",
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    Ok(d.iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect())
}

/// Runs `make` to create `name` in `dir`; if something is already there (a lower layer's
/// entry, or this layer's earlier one), removes it and tries once more.
fn create_replacing<T>(
    dir: RawFd,
    name: &OsStr,
    mut make: impl FnMut() -> Result<T, Errno>,
) -> Result<(T, bool), Errno> {
    match make() {
        Err(Errno::EEXIST) => {
            remove_at(dir, name)?;
            Ok((make()?, true))
        }
        other => Ok((other?, false)),
    }
}

fn timespec(secs: u64) -> TimeSpec {
    TimeSpec::new(secs as libc::time_t, 0)
}

fn set_xattrs_fd(fd: RawFd, xattrs: &[(String, Vec<u8>)], entry: &str) -> Result<(), ApplyError> {
    for (key, value) in xattrs {
        let Ok(k) = CString::new(key.as_bytes()) else {
            continue;
        };
        // SAFETY: fsetxattr reads `value.len()` bytes from the slice and a C string.
        let rc = unsafe { libc::fsetxattr(fd, k.as_ptr(), value.as_ptr().cast(), value.len(), 0) };
        if rc != 0 {
            return Err(write_err(
                entry,
                format!("xattr {key}: {}", std::io::Error::last_os_error()),
            ));
        }
    }
    Ok(())
}

/// Removes the xattrs of `fd` that belong in a layer ([`super::xattrs::portable`]) but are
/// not in `keep`: an entry for an existing directory gives all of its xattrs (umoci does
/// the same; an unpacker into empty layer directories gets it by construction).
fn remove_other_xattrs(
    fd: RawFd,
    keep: &[(String, Vec<u8>)],
    entry: &str,
) -> Result<(), ApplyError> {
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: flistxattr writes at most names.len() bytes into our buffer.
    let n = unsafe { libc::flistxattr(fd, names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return Ok(());
    }
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let text = String::from_utf8_lossy(name);
        if !super::xattrs::portable(&text) || keep.iter().any(|(k, _)| k.as_bytes() == name) {
            continue;
        }
        let Ok(c) = CString::new(name) else {
            continue;
        };
        // SAFETY: fremovexattr reads a C string.
        if unsafe { libc::fremovexattr(fd, c.as_ptr()) } != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENODATA) {
                return Err(write_err(entry, format!("xattr {text}: {e}")));
            }
        }
    }
    Ok(())
}

const COPY_BUFFER: usize = 256 * 1024;

/// Copies a file's contents with the caller's buffer, filling it before each write.
fn copy_contents(from: &mut impl Read, to: &mut File, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::Write;
    loop {
        let mut filled = 0;
        while filled < buf.len() {
            match from.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        if filled == 0 {
            return Ok(());
        }
        to.write_all(&buf[..filled])?;
        if filled < buf.len() {
            return Ok(());
        }
    }
}

/// Sets xattrs by path, on the node itself (`lsetxattr`), for nodes that must not be
/// opened (fifos, devices).
fn set_xattrs_path(
    path: &Path,
    xattrs: &[(String, Vec<u8>)],
    entry: &str,
) -> Result<(), ApplyError> {
    for (key, value) in xattrs.iter().filter(|(k, _)| !k.contains('\0')) {
        super::xattrs::set(path, key, value)
            .map_err(|e| write_err(entry, format!("xattr {key}: {e}")))?;
    }
    Ok(())
}

/// Gives the node `name` of `dir` (not what a symlink there points to) the layer's owner.
fn chown_at(dir: RawFd, name: &OsStr, owner: Option<(Uid, Gid)>) -> Result<(), Errno> {
    match owner {
        Some((u, g)) => fchownat(
            Some(dir),
            name,
            Some(u),
            Some(g),
            AtFlags::AT_SYMLINK_NOFOLLOW,
        ),
        None => Ok(()),
    }
}

/// Applies a tar stream to `root`. Returns what it held.
pub fn apply_layer(
    root_dir: &Path,
    layer: impl Read,
    opts: ApplyOptions,
) -> Result<ApplyStats, ApplyError> {
    let as_layer = opts.into == ApplyInto::OverlayLayer;
    let mut tree = Tree::open(root_dir, as_layer)?;
    let mut lower = LowerRefs::default();
    let mut archive = tar::Archive::new(layer);
    // Paths this layer created: an opaque marker hides only what lower layers had.
    let mut created: HashSet<PathBuf> = HashSet::new();
    let mut count = 0;
    let mut size = 0u64;
    // One large buffer for every file's contents: fewer, larger writes.
    let mut buf = vec![0u8; COPY_BUFFER];
    let not_a_tar = |e: std::io::Error, entries: usize| ApplyError::NotATar {
        reason: tar_reason(&e),
        entries,
    };
    for entry in archive.entries().map_err(|e| not_a_tar(e, 0))? {
        let mut entry = entry.map_err(|e| not_a_tar(e, count))?;
        tree.seq = count;
        let raw = entry.path()?.into_owned();
        let name = raw.to_string_lossy().into_owned();
        let path = clean(&raw, &name)?;
        let Some(file_name) = path.file_name().map(OsStr::to_os_string) else {
            continue; // "./": the root itself
        };
        let file_str = file_name.to_string_lossy();
        let parent = path.parent().map(Path::to_path_buf).unwrap_or_default();

        if file_str == OPAQUE_WHITEOUT {
            if as_layer && parent.as_os_str().is_empty() {
                // overlayfs merges a layer's root whatever its marks say.
                return Err(write_err(
                    &name,
                    "an opaque root needs the lower layers' tree (their entries removed one by one)",
                ));
            }
            if as_layer {
                whiteout_parent(&mut tree, &parent, &name, &mut lower)?;
            }
            opaque(&mut tree, &parent, &created, &name)?;
            if as_layer {
                let dfd = tree.dir(&parent, &name)?;
                mark_opaque(dfd, Path::new("."), &name)?;
                lower.opaque.insert(parent.clone(), count);
            }
            count += 1;
            continue;
        }
        if let Some(hidden) = file_str.strip_prefix(WHITEOUT_PREFIX) {
            if hidden.is_empty() || hidden == "." || hidden == ".." || hidden.contains('/') {
                return Err(ApplyError::Hostile {
                    entry: name,
                    reason: "a whiteout of . or ..",
                });
            }
            if as_layer {
                whiteout_parent(&mut tree, &parent, &name, &mut lower)?;
            }
            if let Some(pfd) = tree.existing_dir(&parent) {
                remove_at(pfd, OsStr::new(hidden)).map_err(|e| write_err(&name, e))?;
                if as_layer {
                    // overlayfs's whiteout: a character device 0/0 in the layer.
                    mknodat(
                        Some(pfd),
                        OsStr::new(hidden),
                        SFlag::S_IFCHR,
                        Mode::empty(),
                        libc::makedev(0, 0),
                    )
                    .map_err(|e| write_err(&name, e))?;
                    lower.whiteouts.push((parent.join(hidden), count));
                }
            }
            tree.forget(&parent.join(hidden));
            count += 1;
            continue;
        }

        let header = entry.header().clone();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let mtime = header.mtime().unwrap_or(0);
        let owner = opts.preserve_owners.then(|| {
            (
                Uid::from_raw(header.uid().unwrap_or(0) as u32),
                Gid::from_raw(header.gid().unwrap_or(0) as u32),
            )
        });
        let kind = header.entry_type();
        let xattrs: Vec<(String, Vec<u8>)> = match entry.pax_extensions()? {
            Some(exts) => exts
                .flatten()
                .filter_map(|e| {
                    let key = e.key().ok()?.strip_prefix("SCHILY.xattr.")?.to_string();
                    Some((key, e.value_bytes().to_vec()))
                })
                .filter(|(k, _)| super::xattrs::portable(k))
                .collect(),
            None => Vec::new(),
        };
        let pfd = tree.dir(&parent, &name)?;
        let fname = file_name.as_os_str();
        let err = |e: Errno| write_err(&name, e);
        match kind {
            EntryType::Directory => {
                // A directory that stays takes the entry's metadata, its xattrs included.
                let mut kept = false;
                match mkdirat(Some(pfd), fname, Mode::from_bits_truncate(0o700)) {
                    Ok(()) => {}
                    Err(Errno::EEXIST) => {
                        // A directory stays (merged with this layer's entries); anything
                        // else is replaced.
                        let is_dir = nix::sys::stat::fstatat(
                            Some(pfd),
                            fname,
                            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
                        )
                        .map(|st| {
                            SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
                        })
                        .map_err(err)?;
                        if !is_dir {
                            remove_at(pfd, fname).map_err(err)?;
                            tree.forget(&path);
                            mkdirat(Some(pfd), fname, Mode::from_bits_truncate(0o700))
                                .map_err(err)?;
                            if as_layer {
                                // On the lower layers' tree the new directory replaces
                                // whatever they had there, their directory included.
                                mark_opaque(pfd, Path::new(fname), &name)?;
                                lower.opaque.insert(path.clone(), count);
                            }
                        }
                        kept = is_dir;
                    }
                    Err(e) => return Err(err(e)),
                }
                if kept || owner.is_some() || !xattrs.is_empty() {
                    let fd = nix::fcntl::openat(
                        Some(pfd),
                        fname,
                        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                        Mode::empty(),
                    )
                    .map_err(err)?;
                    // SAFETY: openat returned a new descriptor that nothing else owns.
                    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
                    if let Some((u, g)) = owner {
                        fchown(fd.as_raw_fd(), Some(u), Some(g)).map_err(err)?;
                    }
                    if kept {
                        remove_other_xattrs(fd.as_raw_fd(), &xattrs, &name)?;
                    }
                    set_xattrs_fd(fd.as_raw_fd(), &xattrs, &name)?;
                }
                let st = nix::sys::stat::fstatat(Some(pfd), fname, AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map_err(err)?;
                let real = tree.real_path(pfd, fname).unwrap_or_else(|| path.clone());
                tree.pending.insert(
                    real,
                    DirMeta {
                        mode,
                        mtime,
                        id: (st.st_dev, st.st_ino),
                    },
                );
            }
            EntryType::Regular | EntryType::Continuous => {
                let (fd, replaced) = create_replacing(pfd, fname, || {
                    nix::fcntl::openat(
                        Some(pfd),
                        fname,
                        OFlag::O_WRONLY
                            | OFlag::O_CREAT
                            | OFlag::O_EXCL
                            | OFlag::O_NOFOLLOW
                            | OFlag::O_CLOEXEC,
                        // Set-id bits only once the owner is (chown would clear them).
                        Mode::from_bits_truncate(mode & 0o777),
                    )
                })
                .map_err(err)?;
                if replaced {
                    tree.forget(&path);
                }
                // SAFETY: openat returned a new descriptor that nothing else owns.
                let mut file = unsafe { File::from_raw_fd(fd) };
                copy_contents(&mut entry, &mut file, &mut buf).map_err(|e| write_err(&name, e))?;
                size += header.size().unwrap_or(0);
                // What the kernel gave the new file (the caller's owner or the parent's
                // set-group-ID group, the mode less the umask): a chown or chmod to the
                // same is left out, each being a metadata write (a journal entry on a
                // journaled file system) for most files of an image.
                let made = nix::sys::stat::fstat(file.as_raw_fd()).map_err(err)?;
                // Owner first: chown clears set-id bits, which the mode then sets.
                if let Some((u, g)) = owner {
                    if (made.st_uid, made.st_gid) != (u.as_raw(), g.as_raw()) {
                        fchown(file.as_raw_fd(), Some(u), Some(g)).map_err(err)?;
                    }
                }
                set_xattrs_fd(file.as_raw_fd(), &xattrs, &name)?;
                if mode & 0o7000 != 0 || made.st_mode & 0o7777 != mode {
                    fchmod(file.as_raw_fd(), Mode::from_bits_truncate(mode)).map_err(err)?;
                }
                futimens(file.as_raw_fd(), &timespec(mtime), &timespec(mtime)).map_err(err)?;
            }
            EntryType::Symlink => {
                let target = header
                    .link_name()?
                    .ok_or_else(|| write_err(&name, "symlink without a target"))?
                    .into_owned();
                let ((), replaced) =
                    create_replacing(pfd, fname, || symlinkat(&target, Some(pfd), fname))
                        .map_err(err)?;
                size += target.as_os_str().len() as u64;
                if replaced {
                    tree.forget(&path);
                }
                chown_at(pfd, fname, owner).map_err(err)?;
                utimensat(
                    Some(pfd),
                    fname,
                    &timespec(mtime),
                    &timespec(mtime),
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(err)?;
            }
            EntryType::Link => {
                let raw_target = header
                    .link_name()?
                    .ok_or_else(|| write_err(&name, "hardlink without a target"))?
                    .into_owned();
                let target = clean(&raw_target, &name)?;
                let (Some(tname), tparent) = (
                    target.file_name().map(OsStr::to_os_string),
                    target.parent().map(Path::to_path_buf).unwrap_or_default(),
                ) else {
                    return Err(write_err(&name, "hardlink to the root"));
                };
                let tfd = tree.existing_dir(&tparent).ok_or_else(|| {
                    write_err(
                        &name,
                        format!(
                            "hardlink target /{} is not in the image (hardlink targets are looked up inside the root only)",
                            target.display()
                        ),
                    )
                })?;
                // Linking never follows a symlink at the target: the link shares the
                // inode of what is inside the root at that name.
                let ((), replaced) = create_replacing(pfd, fname, || {
                    linkat(
                        Some(tfd),
                        tname.as_os_str(),
                        Some(pfd),
                        fname,
                        AtFlags::empty(),
                    )
                })
                .map_err(|e| {
                    let why = match e {
                        Errno::ENOENT => "it is not in the image (hardlink targets are looked up inside the root only)".to_string(),
                        Errno::EPERM => "it is a directory or a protected file".to_string(),
                        other => other.desc().to_string(),
                    };
                    write_err(&name, format!("hardlink to /{}: {why}", target.display()))
                })?;
                if replaced {
                    tree.forget(&path);
                }
                created.insert(path);
                count += 1;
                continue; // a hardlink shares its target's metadata
            }
            EntryType::Fifo | EntryType::Char | EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let sflag = match kind {
                    EntryType::Fifo => SFlag::S_IFIFO,
                    EntryType::Char => SFlag::S_IFCHR,
                    _ => SFlag::S_IFBLK,
                };
                let ((), replaced) = create_replacing(pfd, fname, || {
                    mknodat(
                        Some(pfd),
                        fname,
                        sflag,
                        Mode::from_bits_truncate(0o600),
                        libc::makedev(major, minor),
                    )
                })
                .map_err(err)?;
                if replaced {
                    tree.forget(&path);
                }
                chown_at(pfd, fname, owner).map_err(err)?;
                // Opening a fifo or device to set its mode could block or act on the
                // device: set it by name (no symlink can be there: we just made the node).
                nix::sys::stat::fchmodat(
                    Some(pfd),
                    fname,
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(err)?;
                if !xattrs.is_empty() {
                    set_xattrs_path(&tree_path_of(pfd, fname), &xattrs, &name)?;
                }
                utimensat(
                    Some(pfd),
                    fname,
                    &timespec(mtime),
                    &timespec(mtime),
                    UtimensatFlags::NoFollowSymlink,
                )
                .map_err(err)?;
            }
            // Metadata-only records the tar crate has already folded into entries.
            _ => continue,
        }
        created.insert(path);
        count += 1;
    }
    // Directory modes and mtimes last: writing their contents changed the mtimes, and a
    // read-only mode would have refused the contents.
    for (path, d) in tree.pending.iter().rev() {
        let entry = path.to_string_lossy();
        let Ok(fd) = tree.resolve(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW,
        ) else {
            continue; // removed or replaced later in this layer
        };
        // A path through a symlink planted later may lead to another directory.
        if nix::sys::stat::fstat(fd.as_raw_fd()).map_or(true, |st| (st.st_dev, st.st_ino) != d.id) {
            continue;
        }
        fchmod(fd.as_raw_fd(), Mode::from_bits_truncate(d.mode))
            .map_err(|e| write_err(&entry, e))?;
        futimens(fd.as_raw_fd(), &timespec(d.mtime), &timespec(d.mtime))
            .map_err(|e| write_err(&entry, e))?;
    }
    if as_layer {
        lower.made_dirs = std::mem::take(&mut tree.made);
        lower.given_dirs = tree.pending.keys().cloned().collect();
    }
    Ok(ApplyStats {
        entries: count,
        size,
        lower,
    })
}

/// For an overlay layer, before a whiteout or opaque marker in `parent`: a parent this
/// layer does not have yet is made, and recorded as made for it.
fn whiteout_parent(
    tree: &mut Tree,
    parent: &Path,
    entry: &str,
    lower: &mut LowerRefs,
) -> Result<(), ApplyError> {
    if tree.existing_dir(parent).is_none() {
        tree.dir(parent, entry)?;
        lower
            .made_for_whiteouts
            .push((parent.to_path_buf(), tree.seq));
    }
    Ok(())
}

/// Marks directory `name` of `dir` opaque for overlayfs.
fn mark_opaque(dir: RawFd, name: &Path, entry: &str) -> Result<(), ApplyError> {
    let fd = nix::fcntl::openat(
        Some(dir),
        name,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| write_err(entry, e))?;
    // SAFETY: openat returned a new descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_xattrs_fd(
        fd.as_raw_fd(),
        &[(OVERLAY_OPAQUE.to_string(), b"y".to_vec())],
        entry,
    )
}

/// `/proc/self/fd/<dir>/<name>`: a path for calls that have no `*at` form; the kernel
/// resolves the descriptor itself, and `name` is a node this layer just made.
fn tree_path_of(dir: RawFd, name: &OsStr) -> PathBuf {
    PathBuf::from(format!("/proc/self/fd/{dir}")).join(name)
}

/// Hides everything lower layers put in `dir`: what this layer created stays, and inside
/// a directory it created (which may have merged with a lower one) only what it created
/// stays too, as containerd applies an opaque marker.
fn opaque(
    tree: &mut Tree,
    dir: &Path,
    created: &HashSet<PathBuf>,
    entry: &str,
) -> Result<(), ApplyError> {
    let Some(dfd) = tree.existing_dir(dir) else {
        return Ok(());
    };
    let names = list_dir(dfd).map_err(|e| write_err(entry, e))?;
    for n in names {
        let child_name = OsStr::from_bytes(n.as_bytes());
        let child = dir.join(child_name);
        if !created.contains(&child) {
            remove_at(dfd, child_name).map_err(|e| write_err(entry, e))?;
            tree.forget(&child);
            continue;
        }
        let is_dir = nix::sys::stat::fstatat(Some(dfd), child_name, AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| {
                SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR
            });
        if is_dir {
            opaque(tree, &child, created, entry)?;
        }
    }
    Ok(())
}
