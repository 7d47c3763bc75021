//! PATCH (runtime, see third_party/README.md): `linux.rootfsPropagation` in every spelling
//! runc accepts, with runc's meaning.
//!
//! runc maps `shared`, `slave`, `private`, `unbindable` to the propagation flag alone and
//! their `r`-prefixed forms (what containerd's CRI writes: `rshared` for Bidirectional
//! mounts, `rslave` for HostToContainer) to the flag with `MS_REC`; an empty or missing
//! value means `rslave`. The flag is applied to `/` of the new mount namespace before the
//! rootfs is set up: it decides whether mounts made later on the host reach the container
//! (and back). Any other value is refused before anything is created, with runc's text.
//!
//! `shared` and `unbindable` are also applied to the container's own root once every mount
//! is in place, as crun does and as the runtime spec words it ("sets the rootfs's mount
//! propagation"); runc 1.1 leaves the container's root private. `[r]unbindable` is not
//! applied to the namespace's `/` beforehand (runc fails there with EINVAL when the
//! rootfs is on the same mount as `/`, since an unbindable mount cannot be bind-mounted):
//! the namespace gets the default `rslave` and the container's root the asked-for flag.

use nix::mount::MsFlags;

/// The mount flags one value of `linux.rootfsPropagation` stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RootPropagation {
    /// Applied to `/` of the new mount namespace before the rootfs is set up.
    pub namespace: MsFlags,
    /// Applied to the container's `/` once its mounts are in place, if anything.
    pub container_root: Option<MsFlags>,
}

/// The default when the field is absent or empty: `rslave`, as in runc.
const DEFAULT: MsFlags = MsFlags::MS_SLAVE.union(MsFlags::MS_REC);

impl RootPropagation {
    /// Parses the field's value; `None` for a spelling runc does not accept.
    pub fn parse(value: Option<&str>) -> Option<Self> {
        let (flag, recursive) = match value.unwrap_or("") {
            "" => {
                return Some(Self {
                    namespace: DEFAULT,
                    container_root: None,
                });
            }
            "shared" => (MsFlags::MS_SHARED, false),
            "rshared" => (MsFlags::MS_SHARED, true),
            "slave" => (MsFlags::MS_SLAVE, false),
            "rslave" => (MsFlags::MS_SLAVE, true),
            "private" => (MsFlags::MS_PRIVATE, false),
            "rprivate" => (MsFlags::MS_PRIVATE, true),
            "unbindable" => (MsFlags::MS_UNBINDABLE, false),
            "runbindable" => (MsFlags::MS_UNBINDABLE, true),
            _ => return None,
        };
        let flags = if recursive {
            flag | MsFlags::MS_REC
        } else {
            flag
        };
        Some(if flag == MsFlags::MS_UNBINDABLE {
            Self {
                namespace: DEFAULT,
                container_root: Some(flags),
            }
        } else if flag == MsFlags::MS_SHARED {
            Self {
                namespace: flags,
                container_root: Some(flags),
            }
        } else {
            Self {
                namespace: flags,
                container_root: None,
            }
        })
    }

    /// Whether the value is one of the private spellings, which runc refuses without
    /// pivot_root (the container's root would be moved out of the host's view of it).
    pub fn is_private(value: Option<&str>) -> bool {
        matches!(value, Some("private" | "rprivate"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_runc_spelling_is_accepted() {
        let rec = MsFlags::MS_REC;
        let cases = [
            (None, DEFAULT, None),
            (Some(""), DEFAULT, None),
            (Some("rslave"), MsFlags::MS_SLAVE | rec, None),
            (Some("slave"), MsFlags::MS_SLAVE, None),
            (Some("private"), MsFlags::MS_PRIVATE, None),
            (Some("rprivate"), MsFlags::MS_PRIVATE | rec, None),
            (Some("shared"), MsFlags::MS_SHARED, Some(MsFlags::MS_SHARED)),
            (
                Some("rshared"),
                MsFlags::MS_SHARED | rec,
                Some(MsFlags::MS_SHARED | rec),
            ),
            (Some("unbindable"), DEFAULT, Some(MsFlags::MS_UNBINDABLE)),
            (
                Some("runbindable"),
                DEFAULT,
                Some(MsFlags::MS_UNBINDABLE | rec),
            ),
        ];
        for (value, namespace, container_root) in cases {
            assert_eq!(
                RootPropagation::parse(value),
                Some(RootPropagation {
                    namespace,
                    container_root
                }),
                "{value:?}"
            );
        }
    }

    #[test]
    fn other_spellings_are_refused() {
        for v in ["Shared", "rec", "bogus", " slave", "rshared,rslave"] {
            assert_eq!(RootPropagation::parse(Some(v)), None, "{v}");
        }
    }
}
