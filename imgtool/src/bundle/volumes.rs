//! The image's `Volumes`: each becomes a directory of the bundle (`DIR/volumes/N`) seeded
//! with what the image has at that path, as docker seeds a new anonymous volume, and
//! bind-mounted there. Writes to a volume therefore never land in the rootfs (and never
//! in a commit).

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use pathrs::flags::OpenFlags;
use pathrs::Root;

/// Creates `dir` as a copy of `path` inside `rootfs` (resolved inside it; absent means an
/// empty directory owned by root, as docker makes).
pub fn seed_volume(rootfs: &Path, path: &str, dir: &Path) -> io::Result<()> {
    let root = Root::open(rootfs).map_err(io::Error::other)?;
    let source = match root.resolve(path) {
        Ok(handle) => Some(
            handle
                .reopen(OpenFlags::O_RDONLY | OpenFlags::O_DIRECTORY)
                .map_err(io::Error::other)?,
        ),
        Err(_) => None,
    };
    match source {
        Some(src) => {
            let src_path = PathBuf::from(format!(
                "/proc/self/fd/{}",
                std::os::fd::AsRawFd::as_raw_fd(&src)
            ));
            fs::create_dir(dir)?;
            copy_metadata(&src_path, dir, &fs::metadata(&src_path)?)?;
            copy_children(&src_path, dir)
        }
        None => fs::create_dir(dir),
    }
}

/// Copies the entries of `src` into `dst` without following symlinks.
fn copy_children(src: &Path, dst: &Path) -> io::Result<()> {
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let from = src.join(entry.file_name());
        let to = dst.join(entry.file_name());
        let meta = fs::symlink_metadata(&from)?;
        let ft = meta.file_type();
        if ft.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&from)?, &to)?;
        } else if ft.is_dir() {
            fs::create_dir(&to)?;
            copy_children(&from, &to)?;
        } else if ft.is_file() {
            let mut input = fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&from)?;
            let mut output = fs::File::create(&to)?;
            io::copy(&mut input, &mut output)?;
        } else {
            continue; // devices, fifos and sockets do not belong in a volume's seed
        }
        copy_metadata(&from, &to, &meta)?;
    }
    Ok(())
}

fn copy_metadata(from: &Path, to: &Path, meta: &fs::Metadata) -> io::Result<()> {
    let c = CString::new(to.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: lchown with a NUL-terminated path we own; no memory is written.
    if unsafe { libc::lchown(c.as_ptr(), meta.uid(), meta.gid()) } != 0
        && nix::unistd::geteuid().is_root()
    {
        return Err(io::Error::last_os_error());
    }
    if !meta.file_type().is_symlink() {
        fs::set_permissions(to, fs::Permissions::from_mode(meta.mode() & 0o7777))?;
    }
    let _ = from;
    Ok(())
}
