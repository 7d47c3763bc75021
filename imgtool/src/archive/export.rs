//! The flattened root filesystem of a bundle as one tar (`export`): every entry with its
//! numeric owner, mode, mtime and xattrs; symlinks as links (never followed); files with
//! several names as one file plus hardlinks; device nodes and fifos. A directory on another
//! file system (proc, a bind mount) is recorded but not descended into, so an overlay
//! rootfs is read as its merged tree and nothing mounted over it leaks in.

use std::collections::HashMap;
use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use tar::{EntryType, Header};

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the tar: {0}")]
    Write(std::io::Error),
}

/// What an export wrote.
#[derive(Debug, Default, Clone, Copy)]
pub struct ExportStats {
    pub entries: u64,
    /// Sockets have no tar representation and are left out.
    pub skipped_sockets: u64,
}

/// xattrs that describe the host rather than the file, never exported: the one policy
/// of [`crate::layer::xattrs`], shared with layer application and commit.
fn host_only_xattr(name: &[u8]) -> bool {
    !crate::layer::xattrs::portable(&String::from_utf8_lossy(name))
}

/// The xattrs of `path` (not following a symlink), as `SCHILY.xattr.` pax records.
fn xattrs(path: &Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: llistxattr with a NULL buffer only returns the needed size.
    let size = unsafe { libc::llistxattr(c.as_ptr(), std::ptr::null_mut(), 0) };
    if size < 0 {
        let e = std::io::Error::last_os_error();
        return match e.raw_os_error() {
            Some(libc::ENOTSUP) => Ok(Vec::new()),
            _ => Err(e),
        };
    }
    if size == 0 {
        return Ok(Vec::new());
    }
    let mut names = vec![0u8; size as usize];
    // SAFETY: the buffer is `names.len()` bytes long and owned by us.
    let size = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if size < 0 {
        return Err(std::io::Error::last_os_error());
    }
    names.truncate(size as usize);
    let mut out = Vec::new();
    for name in names.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        if host_only_xattr(name) {
            continue;
        }
        let cname = CString::new(name)?;
        // SAFETY: size query with a NULL buffer.
        let len = unsafe { libc::lgetxattr(c.as_ptr(), cname.as_ptr(), std::ptr::null_mut(), 0) };
        if len < 0 {
            continue; // removed meanwhile
        }
        let mut value = vec![0u8; len as usize];
        // SAFETY: the buffer is `value.len()` bytes long and owned by us.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len < 0 {
            continue;
        }
        value.truncate(len as usize);
        out.push((
            format!("SCHILY.xattr.{}", String::from_utf8_lossy(name)),
            value,
        ));
    }
    Ok(out)
}

struct Exporter<W: Write> {
    tar: tar::Builder<W>,
    root_dev: u64,
    /// (dev, ino) of files with several links → the first name written.
    links: HashMap<(u64, u64), PathBuf>,
    stats: ExportStats,
}

impl<W: Write> Exporter<W> {
    fn header(meta: &Metadata, kind: EntryType) -> Header {
        let mut h = Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn entry(&mut self, abs: &Path, rel: &Path) -> Result<(), ExportError> {
        let read_err = |source| ExportError::Read {
            path: abs.to_path_buf(),
            source,
        };
        let w = ExportError::Write;
        let meta = std::fs::symlink_metadata(abs).map_err(read_err)?;
        let ft = meta.file_type();
        use std::os::unix::fs::FileTypeExt;
        if ft.is_socket() {
            self.stats.skipped_sockets += 1;
            return Ok(());
        }
        if !ft.is_dir() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                let mut h = Self::header(&meta, EntryType::Link);
                let first = first.clone();
                self.tar.append_link(&mut h, rel, first).map_err(w)?;
                self.stats.entries += 1;
                return Ok(());
            }
            self.links
                .insert((meta.dev(), meta.ino()), rel.to_path_buf());
        }
        let pax = xattrs(abs).map_err(read_err)?;
        if !pax.is_empty() {
            self.tar
                .append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                .map_err(w)?;
        }
        if ft.is_dir() {
            let mut h = Self::header(&meta, EntryType::Directory);
            let mut name = rel.as_os_str().to_owned();
            name.push("/");
            self.tar
                .append_data(&mut h, Path::new(&name), std::io::empty())
                .map_err(w)?;
            self.stats.entries += 1;
            if meta.dev() == self.root_dev {
                self.dir(abs, rel)?;
            }
        } else if ft.is_file() {
            let mut h = Self::header(&meta, EntryType::Regular);
            h.set_size(meta.len());
            let file = File::options()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(abs)
                .map_err(read_err)?;
            // A file that shrinks while read would end the tar early: read exactly its size.
            let reader =
                std::io::Read::chain(std::io::Read::take(file, meta.len()), std::io::repeat(0));
            self.tar
                .append_data(&mut h, rel, std::io::Read::take(reader, meta.len()))
                .map_err(w)?;
            self.stats.entries += 1;
        } else if ft.is_symlink() {
            let target = std::fs::read_link(abs).map_err(read_err)?;
            let mut h = Self::header(&meta, EntryType::Symlink);
            self.tar.append_link(&mut h, rel, target).map_err(w)?;
            self.stats.entries += 1;
        } else {
            let kind = if ft.is_char_device() {
                EntryType::Char
            } else if ft.is_block_device() {
                EntryType::Block
            } else {
                EntryType::Fifo
            };
            let mut h = Self::header(&meta, kind);
            if kind != EntryType::Fifo {
                let rdev = meta.rdev();
                h.set_device_major(libc::major(rdev)).map_err(w)?;
                h.set_device_minor(libc::minor(rdev)).map_err(w)?;
            }
            self.tar
                .append_data(&mut h, rel, std::io::empty())
                .map_err(w)?;
            self.stats.entries += 1;
        }
        Ok(())
    }

    fn dir(&mut self, abs: &Path, rel: &Path) -> Result<(), ExportError> {
        let mut names: Vec<std::ffi::OsString> = std::fs::read_dir(abs)
            .map_err(|source| ExportError::Read {
                path: abs.to_path_buf(),
                source,
            })?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<_, _>>()
            .map_err(|source| ExportError::Read {
                path: abs.to_path_buf(),
                source,
            })?;
        names.sort();
        for n in names {
            let name: &OsStr = &n;
            self.entry(&abs.join(name), &rel.join(name))?;
        }
        Ok(())
    }
}

/// Writes the tree under `rootfs` (not the root itself) as a tar to `out`.
pub fn write_rootfs_tar(rootfs: &Path, out: impl Write) -> Result<ExportStats, ExportError> {
    let meta = std::fs::metadata(rootfs).map_err(|source| ExportError::Read {
        path: rootfs.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(ExportError::Read {
            path: rootfs.to_path_buf(),
            source: std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
        });
    }
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    let mut ex = Exporter {
        tar,
        root_dev: meta.dev(),
        links: HashMap::new(),
        stats: ExportStats::default(),
    };
    ex.dir(rootfs, Path::new(""))?;
    let stats = ex.stats;
    ex.tar
        .into_inner()
        .map_err(ExportError::Write)?
        .flush()
        .map_err(ExportError::Write)?;
    Ok(stats)
}
