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

/// Whether xattr `name` belongs in a layer and on an unpacked file.
pub fn portable(name: &str) -> bool {
    !(name.starts_with("trusted.overlay.")
        || name.starts_with("user.overlay.")
        || name == "security.selinux"
        || name.starts_with("system."))
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
