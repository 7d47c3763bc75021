//! Where `save` and `export` write: a file that appears only once complete (written to a
//! temp file beside it, synced, renamed), or stdout when it is not a terminal.

use std::io::{BufWriter, IsTerminal, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The destination of an archive.
pub struct Output {
    dest: Option<PathBuf>,
    tmp: Option<tempfile::NamedTempFile>,
    /// An existing non-regular destination (`/dev/null`, a fifo): written in place, never
    /// replaced by a rename.
    direct: Option<std::fs::File>,
}

impl Output {
    /// `None` or `-` is stdout (refused when it is a terminal: an archive would garble it).
    pub fn create(path: Option<&Path>) -> Result<Self, String> {
        match path.filter(|p| p.as_os_str() != "-") {
            None => {
                if std::io::stdout().is_terminal() {
                    return Err("refusing to write an archive to a terminal: give -o FILE or redirect stdout".into());
                }
                Ok(Self {
                    dest: None,
                    tmp: None,
                    direct: None,
                })
            }
            Some(p) => {
                if let Ok(meta) = std::fs::metadata(p) {
                    if meta.is_dir() {
                        return Err(format!("{} is a directory", p.display()));
                    }
                    if !meta.is_file() {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(p)
                            .map_err(|e| format!("cannot open {}: {e}", p.display()))?;
                        return Ok(Self {
                            dest: None,
                            tmp: None,
                            direct: Some(f),
                        });
                    }
                }
                // A symlink to a file: the file it points to is replaced, not the link.
                let p = &std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
                let dir = match p.parent() {
                    Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let tmp = tempfile::Builder::new()
                    .prefix(&format!(".{name}."))
                    .suffix(".tmp")
                    .tempfile_in(&dir)
                    .map_err(|e| format!("cannot create {}: {e}", p.display()))?;
                Ok(Self {
                    dest: Some(p.to_path_buf()),
                    tmp: Some(tmp),
                    direct: None,
                })
            }
        }
    }

    /// A buffered writer; flush it (or drop the tar builder that owns it) before `commit`.
    pub fn writer(&mut self) -> Box<dyn Write + '_> {
        if let Some(f) = &mut self.direct {
            return Box::new(BufWriter::with_capacity(1 << 17, f));
        }
        match &mut self.tmp {
            Some(t) => Box::new(BufWriter::with_capacity(1 << 17, t.as_file_mut())),
            None => Box::new(BufWriter::with_capacity(1 << 17, std::io::stdout().lock())),
        }
    }

    /// Makes a written file appear under its name (a failed write never calls this: the
    /// temp file is removed on drop and an existing file of that name is untouched).
    pub fn commit(self) -> Result<(), String> {
        if self.direct.is_some() {
            return Ok(());
        }
        let (Some(tmp), Some(dest)) = (self.tmp, self.dest) else {
            return std::io::stdout()
                .flush()
                .map_err(|e| format!("cannot write to stdout: {e}"));
        };
        let err = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(&dest).map_err(|e| err(e.error))?;
        Ok(())
    }
}
