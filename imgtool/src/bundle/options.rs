//! What a user may change about a bundle, in docker's words (`-e`, `-v`, `-w`, `-u`,
//! `--hostname`, `-t`, `--entrypoint`, `-- ARGS`).

use std::path::PathBuf;

use super::network::NetworkOptions;
use super::resources::ResourceOptions;
use super::security::SecurityOptions;

/// A `-v HOST:CTR[:ro]` bind mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    pub host: PathBuf,
    pub container: String,
    pub read_only: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum OptionError {
    #[error("-v {0:?}: expected HOST:CONTAINER[:ro|rw] with absolute paths")]
    BadVolume(String),
    #[error("-v {spec:?}: host path {host} does not exist")]
    MissingHostPath { spec: String, host: String },
    #[error("-e {0:?}: expected NAME=VALUE (or NAME to copy it from this environment)")]
    BadEnv(String),
}

impl BindMount {
    /// Parses docker's `-v HOST:CTR[:ro|rw]` (both paths absolute; the host path must exist).
    pub fn parse(spec: &str) -> Result<Self, OptionError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let (host, container, read_only) = match parts.as_slice() {
            [h, c] => (*h, *c, false),
            [h, c, "ro"] => (*h, *c, true),
            [h, c, "rw"] => (*h, *c, false),
            _ => return Err(OptionError::BadVolume(spec.to_string())),
        };
        if !host.starts_with('/') || !container.starts_with('/') {
            return Err(OptionError::BadVolume(spec.to_string()));
        }
        let host_path = PathBuf::from(host);
        if !host_path.exists() {
            return Err(OptionError::MissingHostPath {
                spec: spec.to_string(),
                host: host.to_string(),
            });
        }
        Ok(Self {
            host: host_path,
            container: container.to_string(),
            read_only,
        })
    }
}

/// Parses `-e NAME=VALUE`; a bare `NAME` takes its value from our environment (and is
/// dropped when unset), as docker does.
pub fn parse_env(spec: &str) -> Result<Option<String>, OptionError> {
    match spec.split_once('=') {
        Some((name, _)) if !name.is_empty() => Ok(Some(spec.to_string())),
        Some(_) => Err(OptionError::BadEnv(spec.to_string())),
        None if spec.is_empty() => Err(OptionError::BadEnv(spec.to_string())),
        None => Ok(std::env::var(spec).ok().map(|v| format!("{spec}={v}"))),
    }
}

/// Everything `imgtool bundle` can change on top of the image's config.
#[derive(Debug, Clone, Default)]
pub struct BundleOptions {
    /// `NAME=VALUE` entries, overriding the image's.
    pub env: Vec<String>,
    pub binds: Vec<BindMount>,
    pub workdir: Option<String>,
    pub user: Option<String>,
    pub hostname: Option<String>,
    pub tty: bool,
    /// A user namespace mapping the caller to root, as `runtime spec --rootless`.
    pub rootless: bool,
    /// Replaces the image's Entrypoint (docker's `--entrypoint`; an empty string clears it).
    pub entrypoint: Option<String>,
    /// Replaces the image's Cmd.
    pub args: Vec<String>,
    /// A plain directory instead of an overlay mount.
    pub copy: bool,
    /// `--network`, `-p`, `--add-host`, `--dns`.
    pub network: NetworkOptions,
    /// `--cap-add`, `--cap-drop`, `--security-opt`, `--read-only`.
    pub security: SecurityOptions,
    /// `--memory`, `--cpus`, `--pids-limit`.
    pub resources: ResourceOptions,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_forms() {
        let b = BindMount::parse("/tmp:/data:ro").unwrap();
        assert_eq!((b.container.as_str(), b.read_only), ("/data", true));
        assert!(!BindMount::parse("/tmp:/data").unwrap().read_only);
        assert!(BindMount::parse("tmp:/data").is_err());
        assert!(BindMount::parse("/tmp:data").is_err());
        assert!(BindMount::parse("/tmp:/data:zz").is_err());
        assert!(matches!(
            BindMount::parse("/does/not/exist:/data"),
            Err(OptionError::MissingHostPath { .. })
        ));
    }

    #[test]
    fn env_forms() {
        assert_eq!(parse_env("A=1").unwrap().as_deref(), Some("A=1"));
        assert_eq!(parse_env("A=").unwrap().as_deref(), Some("A="));
        assert!(parse_env("=1").is_err());
        assert_eq!(parse_env("IMGTOOL_SURELY_UNSET_VAR").unwrap(), None);
    }
}
