//! `login` and `logout` as docker does them: the credentials are checked against the
//! registry first (`GET /v2/`, answering its basic or bearer-token challenge), then
//! written to docker's config.json (or the `--authfile`): base64 `user:password` under
//! `auths`, keyed `https://index.docker.io/v1/` for Docker Hub and `host[:port]`
//! otherwise, or handed to the credential helper the file names (`credHelpers` for the
//! registry, else `credsStore`), as docker does. Every other key of the file is kept; the
//! file is written atomically with mode 0600.

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde_json::{json, Value};

use super::client::install_crypto_provider;
use super::config::{RegistriesConfig, Transport};
use super::identity_token::Access;
use super::retry::classify;
use super::wire::{Creds, Wire, WireConfig};
use super::{auth, cred_helper, RegistryError};

/// Where credentials go: the explicit file, else docker's own config.json.
pub fn auth_file_path(explicit: Option<&Path>) -> PathBuf {
    explicit
        .map(Path::to_path_buf)
        .unwrap_or_else(auth::default_path)
}

/// The key docker writes for `registry` in `auths`.
fn docker_key(registry: &str) -> String {
    cred_helper::server_url(registry)
}

/// Checks `user`/`password` against `registry` (`host[:port]`, docker.io for Docker Hub).
pub async fn check(
    registry: &str,
    user: &str,
    password: &str,
    config: &RegistriesConfig,
    insecure: bool,
    timeout: Duration,
) -> Result<(), RegistryError> {
    install_crypto_provider();
    let endpoint = config
        .endpoints(registry, insecure)
        .into_iter()
        .rfind(|e| !e.is_mirror)
        .ok_or_else(|| RegistryError::Protocol {
            registry: registry.to_string(),
            message: "no endpoint".into(),
        })?;
    let (scheme, verify_tls) = match endpoint.transport {
        Transport::Https => ("https", true),
        Transport::Http => ("http", false),
        Transport::Insecure => (super::client::probe_scheme(&endpoint.host).await, false),
    };
    let api_host = if registry == "docker.io" {
        "registry-1.docker.io".to_string()
    } else {
        registry.to_string()
    };
    let wire = Wire::new(WireConfig {
        scheme,
        api_host,
        repository: String::new(),
        ns: None,
        creds: Creds::Basic {
            user: user.to_string(),
            password: password.to_string(),
        },
        access: Access::Pull,
        verify_tls,
        idle: timeout,
    })
    .map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        message: e.to_string(),
    })?;
    wire.check_login().await.map_err(|e| {
        classify(
            &e,
            registry,
            "",
            "the registry's API (/v2/)",
            &format!("it rejected the credentials of user {user}"),
        )
    })
}

fn read_config(path: &Path) -> Result<Value, RegistryError> {
    let bad = |message: String| RegistryError::AuthFile {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => {
            let v: Value = serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
            if !v.is_object() {
                return Err(bad("is not a JSON object".into()));
            }
            Ok(v)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(json!({})),
        Err(e) => Err(bad(e.to_string())),
    }
}

fn write_config(path: &Path, v: &Value) -> Result<(), RegistryError> {
    use std::io::Write as _;
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let bad = |message: String| RegistryError::AuthFile {
        path: path.to_path_buf(),
        message,
    };
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| bad(e.to_string()))?;
    let text = serde_json::to_vec_pretty(v).map_err(|e| bad(e.to_string()))?;
    let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| bad(e.to_string()))?;
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o600))
        .map_err(|e| bad(e.to_string()))?;
    tmp.as_file()
        .write_all(&text)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| bad(e.to_string()))?;
    // A symlinked config.json (dotfile managers) keeps its link: write its target.
    let dest = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    tmp.persist(&dest).map_err(|e| bad(e.error.to_string()))?;
    Ok(())
}

/// The helper that keeps `registry`'s credentials per the file, if any.
fn helper_for(config: &Value, registry: &str) -> Option<String> {
    let per_registry = config["credHelpers"].as_object().and_then(|h| {
        h.iter()
            .find(|(k, _)| auth::normalize_key(k) == registry)
            .and_then(|(_, v)| v.as_str())
            .map(String::from)
    });
    per_registry
        .or_else(|| config["credsStore"].as_str().map(String::from))
        .filter(|s| !s.is_empty())
}

/// Saves the credentials of `registry` in the file at `path` (or its helper). Returns
/// where they went, for the user.
pub fn save(
    path: &Path,
    registry: &str,
    user: &str,
    password: &str,
) -> Result<String, RegistryError> {
    let mut config = read_config(path)?;
    let key = docker_key(registry);
    let auths = config
        .as_object_mut()
        .and_then(|o| {
            o.entry("auths")
                .or_insert_with(|| json!({}))
                .as_object_mut()
        })
        .ok_or_else(|| RegistryError::AuthFile {
            path: path.to_path_buf(),
            message: "\"auths\" is not an object".into(),
        })?;
    // Older spellings of the same registry go: one entry per registry.
    auths.retain(|k, _| auth::normalize_key(k) != registry);
    let place = match helper_for(&config, registry) {
        Some(helper) => {
            cred_helper::store(&helper, registry, user, password).map_err(|m| {
                RegistryError::AuthFile {
                    path: path.to_path_buf(),
                    message: m,
                }
            })?;
            if let Some(a) = config["auths"].as_object_mut() {
                a.insert(key, json!({}));
            }
            format!("credential helper docker-credential-{helper}")
        }
        None => {
            let b64 =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            if let Some(a) = config["auths"].as_object_mut() {
                a.insert(key, json!({ "auth": b64 }));
            }
            path.display().to_string()
        }
    };
    write_config(path, &config)?;
    Ok(place)
}

/// Removes the credentials of `registry` from the file (and its helper). False when
/// there were none.
pub fn remove(path: &Path, registry: &str) -> Result<bool, RegistryError> {
    let mut config = read_config(path)?;
    let mut found = false;
    if let Some(auths) = config["auths"].as_object_mut() {
        let before = auths.len();
        auths.retain(|k, _| auth::normalize_key(k) != registry);
        found = auths.len() != before;
    }
    if let Some(helper) = helper_for(&config, registry) {
        cred_helper::erase(&helper, registry).map_err(|m| RegistryError::AuthFile {
            path: path.to_path_buf(),
            message: m,
        })?;
    }
    if found {
        write_config(path, &config)?;
    }
    Ok(found)
}
