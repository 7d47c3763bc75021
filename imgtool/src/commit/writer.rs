//! Writes a changeset (image-spec layer.md) as a tar stream: entries copied from the
//! filesystem with their type, mode, owner, mtime and xattrs, hardlinks kept as links,
//! deletions as `.wh.` whiteouts and replaced directories as opaque markers.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The entries of `dir`, sorted by name so the layer's order is reproducible.
pub fn sorted_entries(dir: &Path) -> io::Result<Vec<fs::DirEntry>> {
    let mut entries = fs::read_dir(dir)?.collect::<Result<Vec<_>, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    Ok(entries)
}

/// The layer path of `name` inside the directory at layer path `rel` ("" for the root).
pub fn child_path(rel: &str, name: &str) -> String {
    if rel.is_empty() {
        name.to_string()
    } else {
        format!("{rel}/{name}")
    }
}

pub use crate::layer::xattrs::read_portable as portable_xattrs;

/// The tar stream of one changeset, written entry by entry.
pub struct ChangeWriter<W: Write> {
    tar: tar::Builder<W>,
    /// (dev, ino) of files already written, for hardlinks within the layer.
    links: HashMap<(u64, u64), String>,
    pub entries: usize,
}

impl<W: Write> ChangeWriter<W> {
    pub fn new(out: W) -> Self {
        let mut tar = tar::Builder::new(out);
        tar.mode(tar::HeaderMode::Complete);
        Self {
            tar,
            links: HashMap::new(),
            entries: 0,
        }
    }

    fn header(meta: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(kind);
        h.set_mode(meta.mode() & 0o7777);
        h.set_uid(meta.uid() as u64);
        h.set_gid(meta.gid() as u64);
        h.set_mtime(meta.mtime().max(0) as u64);
        h.set_size(0);
        h
    }

    fn pax_xattrs(&mut self, path: &Path) -> io::Result<()> {
        let attrs: Vec<(String, Vec<u8>)> = portable_xattrs(path)
            .into_iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v))
            .collect();
        if !attrs.is_empty() {
            self.tar
                .append_pax_extensions(attrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))?;
        }
        Ok(())
    }

    /// Adds the filesystem object at `source` as `name` (relative, no leading `/`).
    pub fn add(&mut self, name: &str, source: &Path, meta: &fs::Metadata) -> io::Result<()> {
        let ft = meta.file_type();
        if ft.is_file() && meta.nlink() > 1 {
            if let Some(first) = self.links.get(&(meta.dev(), meta.ino())) {
                let mut h = Self::header(meta, tar::EntryType::Link);
                let first = first.clone();
                self.tar.append_link(&mut h, name, &first)?;
                self.entries += 1;
                return Ok(());
            }
            self.links
                .insert((meta.dev(), meta.ino()), name.to_string());
        }
        if !ft.is_symlink() {
            self.pax_xattrs(source)?;
        }
        if ft.is_dir() {
            let mut h = Self::header(meta, tar::EntryType::Directory);
            self.tar
                .append_data(&mut h, format!("{name}/"), io::empty())?;
        } else if ft.is_file() {
            let mut h = Self::header(meta, tar::EntryType::Regular);
            h.set_size(meta.len());
            let file = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(source)?;
            self.tar
                .append_data(&mut h, name, io::BufReader::new(file))?;
        } else if ft.is_symlink() {
            let mut h = Self::header(meta, tar::EntryType::Symlink);
            let target = fs::read_link(source)?;
            self.tar.append_link(&mut h, name, target)?;
        } else if ft.is_fifo() {
            let mut h = Self::header(meta, tar::EntryType::Fifo);
            self.tar.append_data(&mut h, name, io::empty())?;
        } else if ft.is_char_device() || ft.is_block_device() {
            let kind = if ft.is_char_device() {
                tar::EntryType::Char
            } else {
                tar::EntryType::Block
            };
            let mut h = Self::header(meta, kind);
            let dev = meta.rdev();
            h.set_device_major(libc::major(dev))?;
            h.set_device_minor(libc::minor(dev))?;
            self.tar.append_data(&mut h, name, io::empty())?;
        } else {
            return Ok(()); // sockets are not part of an image
        }
        self.entries += 1;
        Ok(())
    }

    fn marker(&mut self, name: &str) -> io::Result<()> {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(0);
        h.set_mtime(0);
        self.tar.append_data(&mut h, name, io::empty())?;
        self.entries += 1;
        Ok(())
    }

    /// Records the deletion of `name` (a path relative to the root).
    pub fn whiteout(&mut self, name: &str) -> io::Result<()> {
        let wh = match name.rsplit_once('/') {
            Some((dir, base)) => format!("{dir}/.wh.{base}"),
            None => format!(".wh.{name}"),
        };
        self.marker(&wh)
    }

    /// Records that directory `name` hides everything lower layers had in it.
    pub fn opaque(&mut self, name: &str) -> io::Result<()> {
        self.marker(&format!("{name}/.wh..wh..opq"))
    }

    /// Ends the archive and returns the sink.
    pub fn finish(self) -> io::Result<W> {
        self.tar.into_inner()
    }
}
