//! Random access to the members of an image archive (a tar file): one pass records where
//! each member's bytes are, then blobs are read by name in any order, however large,
//! without unpacking the archive anywhere.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;

use tar::EntryType;

use super::ArchiveError;

/// Where a member's bytes are, or which member it links to.
#[derive(Debug, Clone)]
enum Member {
    Data { offset: u64, size: u64 },
    Link(String),
}

/// An indexed archive.
pub struct ArchiveReader {
    file: File,
    members: HashMap<String, Member>,
}

/// Biggest JSON member (manifest.json, index.json, configs, manifests) read into memory.
const MAX_JSON: u64 = 64 << 20;

/// `./a//b/../c` → `a/c`: how members are named whatever way the archive spelled them.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for p in path.split('/') {
        match p {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    parts.join("/")
}

impl ArchiveReader {
    /// Indexes every member of the tar in `file`. A member whose bytes run past the end
    /// of the file means the archive was truncated.
    pub fn index(mut file: File) -> Result<Self, ArchiveError> {
        let len = file
            .metadata()
            .map_err(|e| ArchiveError::Io(format!("cannot stat the archive: {e}")))?
            .len();
        if len == 0 {
            return Err(ArchiveError::NotAnArchive("the file is empty".into()));
        }
        file.seek(SeekFrom::Start(0))
            .map_err(|e| ArchiveError::Io(e.to_string()))?;
        let mut members = HashMap::new();
        {
            let mut archive = tar::Archive::new(&file);
            let entries = archive
                .entries_with_seek()
                .map_err(|_| ArchiveError::NotAnArchive("it is not a tar file".into()))?;
            for entry in entries {
                // The tar crate's messages quote the raw header bytes: not for a terminal.
                let entry = entry.map_err(|_| {
                    if members.is_empty() {
                        ArchiveError::NotAnArchive("it is not a tar file".into())
                    } else {
                        ArchiveError::Corrupt(format!(
                            "a bad tar header after {} members",
                            members.len()
                        ))
                    }
                })?;
                let raw = entry.path_bytes();
                let name = clean(&String::from_utf8_lossy(&raw));
                let header = entry.header();
                match header.entry_type() {
                    EntryType::Regular | EntryType::Continuous => {
                        let offset = entry.raw_file_position();
                        let size = entry.size();
                        if offset.saturating_add(size) > len {
                            return Err(ArchiveError::Truncated(format!(
                                "member {name} needs {size} bytes at offset {offset}, but the file has {len}"
                            )));
                        }
                        members.insert(name, Member::Data { offset, size });
                    }
                    EntryType::Symlink => {
                        if let Some(target) = entry.link_name_bytes() {
                            let target = String::from_utf8_lossy(&target).into_owned();
                            let resolved = if target.starts_with('/') {
                                clean(&target)
                            } else {
                                let parent = name.rsplit_once('/').map_or("", |(p, _)| p);
                                clean(&format!("{parent}/{target}"))
                            };
                            members.insert(name, Member::Link(resolved));
                        }
                    }
                    EntryType::Link => {
                        if let Some(target) = entry.link_name_bytes() {
                            members.insert(
                                name,
                                Member::Link(clean(&String::from_utf8_lossy(&target))),
                            );
                        }
                    }
                    _ => {}
                }
            }
        }
        if members.is_empty() {
            return Err(ArchiveError::NotAnArchive("no files in it".into()));
        }
        Ok(Self { file, members })
    }

    fn locate(&self, name: &str) -> Option<(u64, u64)> {
        let mut name = clean(name);
        for _ in 0..16 {
            match self.members.get(&name)? {
                Member::Data { offset, size } => return Some((*offset, *size)),
                Member::Link(target) => name = target.clone(),
            }
        }
        None
    }

    /// Whether the archive has a member of this name (following links).
    pub fn has(&self, name: &str) -> bool {
        self.locate(name).is_some()
    }

    /// The size of a member.
    pub fn size(&self, name: &str) -> Result<u64, ArchiveError> {
        self.locate(name)
            .map(|(_, s)| s)
            .ok_or_else(|| ArchiveError::Missing(name.to_string()))
    }

    /// A reader of one member's bytes.
    pub fn open(&self, name: &str) -> Result<MemberReader<'_>, ArchiveError> {
        let (offset, size) = self
            .locate(name)
            .ok_or_else(|| ArchiveError::Missing(name.to_string()))?;
        Ok(MemberReader {
            file: &self.file,
            pos: offset,
            end: offset + size,
        })
    }

    /// A small member (JSON) read whole.
    pub fn read_json_bytes(&self, name: &str) -> Result<Vec<u8>, ArchiveError> {
        let size = self.size(name)?;
        if size > MAX_JSON {
            return Err(ArchiveError::Corrupt(format!(
                "{name} is {size} bytes, too big for a JSON document"
            )));
        }
        let mut out = Vec::with_capacity(size as usize);
        self.open(name)?
            .read_to_end(&mut out)
            .map_err(|e| ArchiveError::Io(format!("cannot read {name}: {e}")))?;
        Ok(out)
    }

    /// The first bytes of a member (to sniff its compression).
    pub fn head(&self, name: &str, n: usize) -> Result<Vec<u8>, ArchiveError> {
        let mut out = Vec::with_capacity(n);
        self.open(name)?
            .take(n as u64)
            .read_to_end(&mut out)
            .map_err(|e| ArchiveError::Io(format!("cannot read {name}: {e}")))?;
        Ok(out)
    }
}

/// Reads one member with positioned reads (several may be open at once).
pub struct MemberReader<'a> {
    file: &'a File,
    pos: u64,
    end: u64,
}

impl Read for MemberReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let left = self.end - self.pos;
        if left == 0 {
            return Ok(0);
        }
        let want = buf.len().min(left.min(usize::MAX as u64) as usize);
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the archive ends inside a member",
            ));
        }
        self.pos += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::clean;

    #[test]
    fn member_names_are_cleaned() {
        assert_eq!(clean("./manifest.json"), "manifest.json");
        assert_eq!(clean("/blobs//sha256/./x"), "blobs/sha256/x");
        assert_eq!(clean("abc/../def.tar"), "def.tar");
    }
}
