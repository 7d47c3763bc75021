//! Connecting to one endpoint of a reference: the scheme (probing an insecure registry
//! for TLS, as docker does), TLS verification, and the credentials for the endpoint's
//! host, ready as a [`Wire`] for the reference's repository. Shared by pull and push.

use std::path::PathBuf;
use std::time::Duration;

use super::auth::{AuthFile, Credentials};
use super::config::{Endpoint, Transport};
use super::identity_token::Access;
use super::wire::{http_client, Creds, Wire, WireConfig};
use super::RegistryError;
use crate::reference::Reference;

/// How long a connection may stay silent (no byte of a response arriving) before the
/// attempt counts as failed and is retried.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How many blobs one client fetches at once.
pub const PARALLEL_DOWNLOADS: usize = 4;

/// Makes ring rustls' process-wide crypto provider, once, before any HTTP client is built
/// (reqwest is built without one, see imgtool/Cargo.toml for why).
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client ready to talk to one endpoint about one reference.
pub struct Connection {
    /// Requests to the reference's repository at the endpoint.
    pub wire: Wire,
    /// The reference being pulled or pushed (for a mirror, with the mirror as registry).
    pub reference: Reference,
    pub endpoint: Endpoint,
    /// Where the credentials came from, for error hints.
    pub auth_source: Option<PathBuf>,
    /// The scheme finally used ("http" or "https").
    pub scheme: &'static str,
    /// True when no credentials were found for the endpoint.
    pub anonymous: bool,
}

impl Connection {
    /// The endpoint's `host[:port]`, as errors name it.
    pub fn host(&self) -> &str {
        &self.endpoint.host
    }

    /// What to tell a user who got "unauthorized" here.
    pub fn unauthorized_hint(&self) -> String {
        let file = self
            .auth_source
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "no auth file".to_string());
        if !self.anonymous {
            format!(
                "the credentials for {} in {file} were rejected",
                self.credentials_key()
            )
        } else {
            format!(
                "no credentials for {} ({file}); give them with --authfile FILE or REGISTRY_AUTH_FILE (docker config.json format) or in ~/.docker/config.json",
                self.credentials_key()
            )
        }
    }

    fn credentials_key(&self) -> &str {
        if self.endpoint.is_mirror {
            &self.endpoint.host
        } else {
            self.reference.registry()
        }
    }
}

/// Connects to `endpoint` for `reference`: decides the scheme (probing an insecure
/// registry for TLS, as docker does), and picks the credentials for the endpoint's host.
/// `access` is what an identity token is exchanged for; `read_timeout` bounds the
/// silence within a response (None: [`DEFAULT_READ_TIMEOUT`]).
pub async fn connect(
    reference: &Reference,
    endpoint: &Endpoint,
    auth_file: &AuthFile,
    access: Access,
    read_timeout: Option<Duration>,
) -> Result<Connection, RegistryError> {
    install_crypto_provider();
    let (scheme, verify_tls) = match endpoint.transport {
        Transport::Https => ("https", true),
        Transport::Http => ("http", false),
        Transport::Insecure => (probe_scheme(&endpoint.host).await, false),
    };
    let mut target = reference.clone();
    let key = if endpoint.is_mirror {
        target.set_mirror_registry(endpoint.host.clone());
        endpoint.host.as_str()
    } else {
        reference.registry()
    };
    let creds = match auth_file.credentials(key)? {
        Credentials::Auth(creds) => creds,
        Credentials::IdentityToken(refresh) => Creds::Refresh(refresh),
    };
    let anonymous = creds.is_anonymous();
    let wire = Wire::new(WireConfig {
        scheme,
        // docker.io's API is served by registry-1.docker.io (index.docker.io answers too).
        api_host: if endpoint.is_mirror {
            endpoint.host.clone()
        } else {
            reference.resolve_registry().to_string()
        },
        repository: reference.repository().to_string(),
        ns: endpoint.is_mirror.then(|| reference.registry().to_string()),
        creds,
        access,
        verify_tls,
        idle: read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT),
    })
    .map_err(|e| RegistryError::Protocol {
        registry: endpoint.host.clone(),
        message: e.to_string(),
    })?;
    Ok(Connection {
        wire,
        auth_source: auth_file.path.clone(),
        reference: target,
        endpoint: endpoint.clone(),
        scheme,
        anonymous,
    })
}

/// "https" when `host` answers TLS (certificate not checked), else "http". A host that
/// does not answer at all gets "http" and the real request reports the failure.
pub async fn probe_scheme(host: &str) -> &'static str {
    let Ok(client) = http_client(false, Duration::from_secs(10)) else {
        return "http";
    };
    let probe = client.get(format!("https://{host}/v2/")).send();
    match tokio::time::timeout(Duration::from_secs(10), probe).await {
        Ok(Ok(_)) => "https",
        _ => "http",
    }
}
