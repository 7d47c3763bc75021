//! Registry credentials from docker's `config.json`, so `docker login` (or
//! `podman login --authfile`, or a hand-written file) gives imgtool its credentials too.
//! Lookup order for the file: `--authfile` / `REGISTRY_AUTH_FILE`, then
//! `$DOCKER_CONFIG/config.json`, then `~/.docker/config.json`. For one registry, as
//! docker: its `credHelpers` entry, else its `auths` entry, else the `credsStore` helper
//! (see [`super::cred_helper`]). No file or no credentials means anonymous access.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Deserialize;

use super::wire::Creds;
use super::RegistryError;

/// A docker config.json, only the parts that matter here.
#[derive(Debug, Default, Deserialize)]
struct DockerConfig {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    /// The credential helper for every registry without a `credHelpers` entry.
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    /// Registry → credential helper.
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    /// base64 of `user:password`.
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    /// A ready-to-use bearer token for the registry.
    #[serde(default)]
    registrytoken: Option<String>,
    /// An OAuth2 refresh token, as `docker login` stores for registries that issue one.
    #[serde(default)]
    identitytoken: Option<String>,
}

/// What the file says for one registry.
#[derive(Debug, Clone)]
enum Source {
    /// Written in the file (`auths`).
    Given(Credentials),
    /// Kept by this credential helper.
    Helper(String),
}

/// The credentials for one registry.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// Usable as they are (anonymous, basic, or a registry token).
    Auth(Creds),
    /// An OAuth2 refresh token, to exchange at the registry's token realm (see
    /// [`super::wire`]).
    IdentityToken(String),
}

/// Credentials loaded from one auth file.
#[derive(Debug, Default)]
pub struct AuthFile {
    /// The file they came from (None when there was no file).
    pub path: Option<PathBuf>,
    /// Normalized registry host → where its credentials come from.
    entries: BTreeMap<String, Source>,
    /// The `credsStore` helper, for registries without an entry.
    creds_store: Option<String>,
}

impl AuthFile {
    /// Finds and reads the auth file: `explicit` (from `--authfile` or `REGISTRY_AUTH_FILE`,
    /// which must exist), else `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`
    /// (either may be absent).
    pub fn load(explicit: Option<&Path>) -> Result<Self, RegistryError> {
        if let Some(p) = explicit {
            return Self::read(p, true);
        }
        Self::read(&default_path(), false)
    }

    fn read(path: &Path, must_exist: bool) -> Result<Self, RegistryError> {
        let bad = |message: String| RegistryError::AuthFile {
            path: path.to_path_buf(),
            message,
        };
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(Self::default())
            }
            Err(e) => return Err(bad(e.to_string())),
        };
        let config: DockerConfig = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let mut entries = BTreeMap::new();
        for (key, entry) in config.auths {
            let auth = entry_auth(&entry).map_err(|m| bad(format!("auths.{key:?}: {m}")))?;
            if let Some(auth) = auth {
                entries.insert(normalize_key(&key), Source::Given(Credentials::Auth(auth)));
            } else if let Some(token) = entry.identitytoken.filter(|t| !t.is_empty()) {
                entries.insert(
                    normalize_key(&key),
                    Source::Given(Credentials::IdentityToken(token)),
                );
            }
        }
        for (key, helper) in config.cred_helpers {
            if helper.is_empty() {
                return Err(bad(format!("credHelpers.{key:?}: empty helper name")));
            }
            entries.insert(normalize_key(&key), Source::Helper(helper));
        }
        Ok(Self {
            path: Some(path.to_path_buf()),
            entries,
            creds_store: config.creds_store.filter(|s| !s.is_empty()),
        })
    }

    /// Credentials for `registry` (a `host[:port]` as in references; docker.io for Docker
    /// Hub), or anonymous; asks a credential helper when the file names one.
    pub fn credentials(&self, registry: &str) -> Result<Credentials, RegistryError> {
        let key = normalize_key(registry);
        let from_helper = |helper: &str| {
            super::cred_helper::get(helper, &key)
                .map(|c| c.unwrap_or(Credentials::Auth(Creds::Anonymous)))
                .map_err(|message| self.error(message))
        };
        match self.entries.get(&key) {
            Some(Source::Given(credentials)) => Ok(credentials.clone()),
            Some(Source::Helper(helper)) => from_helper(helper),
            None => match &self.creds_store {
                Some(store) => from_helper(store),
                None => Ok(Credentials::Auth(Creds::Anonymous)),
            },
        }
    }

    /// An error about this file.
    pub fn error(&self, message: String) -> RegistryError {
        RegistryError::AuthFile {
            path: self.path.clone().unwrap_or_default(),
            message,
        }
    }
}

fn entry_auth(e: &AuthEntry) -> Result<Option<Creds>, String> {
    if let Some(token) = e.registrytoken.as_deref().filter(|t| !t.is_empty()) {
        return Ok(Some(Creds::Bearer(token.to_string())));
    }
    if let Some(b64) = e.auth.as_deref().filter(|a| !a.is_empty()) {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|err| format!("\"auth\" is not base64: {err}"))?;
        let text = String::from_utf8(raw).map_err(|_| "\"auth\" is not UTF-8".to_string())?;
        let (user, pass) = text
            .split_once(':')
            .ok_or_else(|| "\"auth\" is not base64 of user:password".to_string())?;
        return Ok(Some(Creds::Basic {
            user: user.to_string(),
            password: pass.to_string(),
        }));
    }
    match (&e.username, &e.password) {
        (Some(u), Some(p)) if !u.is_empty() => Ok(Some(Creds::Basic {
            user: u.clone(),
            password: p.clone(),
        })),
        _ => Ok(None),
    }
}

/// docker's own config.json: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_path() -> PathBuf {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => PathBuf::from(dir).join("config.json"),
        None => std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/"))
            .join(".docker/config.json"),
    }
}

/// Docker's key normalization: drop the scheme and any path, and treat Docker Hub's
/// historical names (`https://index.docker.io/v1/`, `registry-1.docker.io`) as docker.io.
pub fn normalize_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = k.split('/').next().unwrap_or(k);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".to_string()
        }
        h => h.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(c: &Credentials) -> Option<(String, String)> {
        match c {
            Credentials::Auth(Creds::Basic { user, password }) => {
                Some((user.clone(), password.clone()))
            }
            _ => None,
        }
    }

    #[test]
    fn docker_keys_and_forms() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{
              "https://index.docker.io/v1/":{"auth":"YWxpY2U6czNjcmV0"},
              "127.0.0.1:5000":{"username":"bob","password":"pw"},
              "http://reg.test:5001/v2/":{"auth":"Y2Fyb2w6eDp5"},
              "tok.test":{"registrytoken":"abc"},
              "empty.test":{}
            }}"#,
        )
        .unwrap();
        let f = AuthFile::load(Some(&p)).unwrap();
        assert_eq!(
            basic(&f.credentials("docker.io").unwrap()),
            Some(("alice".into(), "s3cret".into()))
        );
        assert_eq!(
            basic(&f.credentials("127.0.0.1:5000").unwrap()),
            Some(("bob".into(), "pw".into()))
        );
        assert_eq!(
            basic(&f.credentials("reg.test:5001").unwrap()),
            Some(("carol".into(), "x:y".into()))
        );
        assert!(
            matches!(f.credentials("tok.test").unwrap(), Credentials::Auth(Creds::Bearer(t)) if t == "abc")
        );
        assert!(matches!(
            f.credentials("empty.test").unwrap(),
            Credentials::Auth(Creds::Anonymous)
        ));
        assert!(matches!(
            f.credentials("other:1").unwrap(),
            Credentials::Auth(Creds::Anonymous)
        ));
    }

    #[test]
    fn identity_tokens_and_missing_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.json");
        std::fs::write(
            &p,
            r#"{"auths":{"id.test":{"identitytoken":"refresh"},"plain.test":{"auth":"YTpi"}},
                "credHelpers":{"helped.test":"imgtool-test-no-such-helper"},
                "credsStore":"imgtool-test-no-such-store"}"#,
        )
        .unwrap();
        let f = AuthFile::load(Some(&p)).unwrap();
        assert!(
            matches!(f.credentials("id.test").unwrap(), Credentials::IdentityToken(t) if t == "refresh")
        );
        let msg = f.credentials("helped.test").unwrap_err().to_string();
        assert!(
            msg.contains("docker-credential-imgtool-test-no-such-helper is not in PATH")
                && msg.contains("config.json"),
            "{msg}"
        );
        // An auths entry wins over credsStore; other registries go to the store.
        assert!(matches!(
            f.credentials("plain.test").unwrap(),
            Credentials::Auth(Creds::Basic { .. })
        ));
        let msg = f.credentials("other.test").unwrap_err().to_string();
        assert!(
            msg.contains("docker-credential-imgtool-test-no-such-store"),
            "{msg}"
        );
    }

    #[test]
    fn explicit_file_must_exist_and_parse() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("nope.json");
        assert!(AuthFile::load(Some(&p))
            .unwrap_err()
            .to_string()
            .contains("nope.json"));
        std::fs::write(&p, r#"{"auths":{"x":{"auth":"!!"}}}"#).unwrap();
        let msg = AuthFile::load(Some(&p)).unwrap_err().to_string();
        assert!(msg.contains("nope.json") && msg.contains("base64"), "{msg}");
    }
}
