//! The one xattr policy of imgtool, for every path between a tar and a filesystem:
//! applying a layer, committing a bundle's changes and exporting a rootfs. Extended
//! attributes describing the file travel (`user.*`, `trusted.*`, `security.capability`,
//! `security.ima`, …); those describing the host or the mechanics of the filesystem do
//! not, in either direction:
//!
//! - `trusted.overlay.*` and `user.overlay.*`: overlayfs's own metadata (opaque
//!   directories, redirects, origins, metacopy). A layer carrying them would, once its
//!   directory serves as an overlay layer, make overlayfs hide or redirect paths outside
//!   the OCI whiteout rules; a bundle's upper directory carries them for overlayfs's own
//!   bookkeeping, which commit turns into OCI whiteouts instead.
//! - `security.selinux`: a label of the host that wrote the file; a container's files
//!   get theirs from its mount options.
//! - `system.*`: POSIX ACLs and NFSv4 ACLs, in the kernel's binary formats, which mean
//!   the host's users and are not part of the OCI layer format.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Whether xattr `name` belongs in a layer and on an unpacked file.
pub fn portable(name: &str) -> bool {
    !(name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == "security.selinux"
        || name.starts_with("system."))
}

/// Sets xattr `key` of the node at `path` itself (`lsetxattr`: a symlink there is not
/// followed).
pub fn set(path: &Path, key: &str, value: &[u8]) -> std::io::Result<()> {
    let p = CString::new(path.as_os_str().as_bytes())?;
    let k = CString::new(key)?;
    // SAFETY: lsetxattr reads `value.len()` bytes from the slice and two C strings.
    let rc = unsafe {
        libc::lsetxattr(
            p.as_ptr(),
            k.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// A path's extended attributes that belong in a layer ([`portable`]), not following a
/// symlink; none when they cannot be read.
pub fn read_portable(path: &Path) -> Vec<(String, Vec<u8>)> {
    read(path)
        .into_iter()
        .filter(|(k, _)| portable(k))
        .collect()
}

/// A path's extended attributes (names and values), not following a symlink.
pub fn read(path: &Path) -> Vec<(String, Vec<u8>)> {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return vec![];
    };
    let mut names = vec![0u8; 64 * 1024];
    // SAFETY: llistxattr writes at most names.len() bytes into our buffer.
    let n = unsafe { libc::llistxattr(c.as_ptr(), names.as_mut_ptr().cast(), names.len()) };
    if n <= 0 {
        return vec![];
    }
    let mut out = Vec::new();
    for name in names[..n as usize]
        .split(|b| *b == 0)
        .filter(|n| !n.is_empty())
    {
        let Ok(cname) = CString::new(name) else {
            continue;
        };
        let mut value = vec![0u8; 64 * 1024];
        // SAFETY: lgetxattr writes at most value.len() bytes into our buffer.
        let len = unsafe {
            libc::lgetxattr(
                c.as_ptr(),
                cname.as_ptr(),
                value.as_mut_ptr().cast(),
                value.len(),
            )
        };
        if len >= 0 {
            value.truncate(len as usize);
            out.push((String::from_utf8_lossy(name).into_owned(), value));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::portable;

    #[test]
    fn policy() {
        for kept in [
            "user.test",
            "trusted.x",
            "security.capability",
            "security.ima",
            "user.overlayish",
        ] {
            assert!(portable(kept), "{kept}");
        }
        for dropped in [
            "trusted.overlay.opaque",
            "trusted.overlay.redirect",
            "trusted.overlay.overlay.x",
            "user.overlay.opaque",
            "security.selinux",
            "system.posix_acl_access",
            "system.nfs4_acl",
        ] {
            assert!(!portable(dropped), "{dropped}");
        }
    }
}
