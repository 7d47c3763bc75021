//! Resolving an image's `Config.User` (`user`, `uid`, `user:group`, `uid:gid`, and mixes)
//! through the rootfs's own /etc/passwd and /etc/group, read inside the root (a symlinked
//! /etc/passwd cannot make us read the host's).

use std::io::Read;
use std::path::Path;

use pathrs::flags::OpenFlags;
use pathrs::Root;

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("user {0:?} does not exist in the image's /etc/passwd")]
    UnknownUser(String),
    #[error("group {0:?} does not exist in the image's /etc/group")]
    UnknownGroup(String),
    #[error("cannot read {file} in the rootfs: {message}")]
    Read { file: &'static str, message: String },
}

/// Who the container process runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    pub uid: u32,
    pub gid: u32,
    /// Supplementary groups, set only when a user name was given without a group.
    pub additional_gids: Option<Vec<u32>>,
    /// The user's home from /etc/passwd, when known.
    pub home: Option<String>,
}

/// Reads a file of the rootfs, resolved inside it; absent means empty.
fn read_in_root(root: &Root, file: &'static str) -> Result<String, UserError> {
    let handle = match root.resolve(file) {
        Ok(h) => h,
        Err(e)
            if matches!(
                e.kind(),
                pathrs::error::ErrorKind::OsError(Some(libc::ENOENT))
            ) =>
        {
            return Ok(String::new())
        }
        Err(e) => {
            return Err(UserError::Read {
                file,
                message: e.to_string(),
            })
        }
    };
    let mut text = String::new();
    handle
        .reopen(OpenFlags::O_RDONLY)
        .map_err(|e| UserError::Read {
            file,
            message: e.to_string(),
        })?
        .read_to_string(&mut text)
        .map_err(|e| UserError::Read {
            file,
            message: e.to_string(),
        })?;
    Ok(text)
}

struct PasswdEntry {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

fn passwd_entries(text: &str) -> Vec<PasswdEntry> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 6 {
                return None;
            }
            Some(PasswdEntry {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .collect()
}

/// (name, gid, members) of every group.
fn group_entries(text: &str) -> Vec<(String, u32, Vec<String>)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            if f.len() < 4 {
                return None;
            }
            let members = f[3]
                .split(',')
                .filter(|m| !m.is_empty())
                .map(str::to_string)
                .collect();
            Some((f[0].to_string(), f[2].parse().ok()?, members))
        })
        .collect()
}

/// Resolves `Config.User` in `rootfs`. An empty string means root.
pub fn resolve(rootfs: &Path, spec: &str) -> Result<ResolvedUser, UserError> {
    let root = Root::open(rootfs).map_err(|e| UserError::Read {
        file: "/",
        message: e.to_string(),
    })?;
    let passwd = passwd_entries(&read_in_root(&root, "/etc/passwd")?);
    let (user, group) = match spec.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (spec, None),
    };
    let user = if user.is_empty() { "0" } else { user };
    let (uid, mut gid, name, home) = match user.parse::<u32>() {
        Ok(uid) => {
            let entry = passwd.iter().find(|e| e.uid == uid);
            (
                uid,
                entry.map_or(0, |e| e.gid),
                entry.map(|e| e.name.clone()),
                entry.map(|e| e.home.clone()),
            )
        }
        Err(_) => {
            let e = passwd
                .iter()
                .find(|e| e.name == user)
                .ok_or_else(|| UserError::UnknownUser(user.to_string()))?;
            (e.uid, e.gid, Some(e.name.clone()), Some(e.home.clone()))
        }
    };
    let mut additional_gids = None;
    let groups = || read_in_root(&root, "/etc/group").map(|t| group_entries(&t));
    match group {
        Some(g) if !g.is_empty() => {
            gid = match g.parse::<u32>() {
                Ok(n) => n,
                Err(_) => groups()?
                    .into_iter()
                    .find(|(n, _, _)| n == g)
                    .map(|(_, gid, _)| gid)
                    .ok_or_else(|| UserError::UnknownGroup(g.to_string()))?,
            };
        }
        _ => {
            // conversion.md: supplementary groups only for a user given by name.
            if user.parse::<u32>().is_err() {
                if let Some(name) = &name {
                    let mut gids: Vec<u32> = groups()?
                        .into_iter()
                        .filter(|(_, g, members)| members.contains(name) && *g != gid)
                        .map(|(_, g, _)| g)
                        .collect();
                    gids.sort_unstable();
                    gids.dedup();
                    additional_gids = Some(gids);
                }
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}
