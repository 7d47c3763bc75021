//! Building an oci-client [`Client`] and its credentials for one endpoint of a reference,
//! honouring the registries config (insecure, mirrors) and the auth file. Shared by pull
//! and push.

use std::path::PathBuf;
use std::time::Duration;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;

use super::auth::{AuthFile, Credentials};
use super::config::{Endpoint, Transport};
use super::identity_token::{Access, Exchange};
use super::RegistryError;
use crate::reference::Reference;

/// How long a connection may stay silent (no byte of a response arriving) before the
/// attempt counts as failed and is retried.
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(60);

/// How many blobs one client fetches at once.
pub const PARALLEL_DOWNLOADS: usize = 4;

/// Makes ring rustls' process-wide crypto provider, once, before any HTTP client is built
/// (reqwest is built without one, see imgtool/Cargo.toml for why).
fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // An error means a provider is already installed, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// A client ready to talk to one endpoint about one reference.
pub struct Connection {
    pub client: Client,
    pub auth: RegistryAuth,
    /// The reference to pass to `client`: for a mirror it carries the mirror as its
    /// resolved registry, so requests go there (with `?ns=` naming the origin).
    pub reference: Reference,
    pub endpoint: Endpoint,
    /// Where the credentials came from, for error hints.
    pub auth_source: Option<PathBuf>,
    /// The scheme finally used ("http" or "https").
    pub scheme: &'static str,
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
        if !matches!(self.auth, RegistryAuth::Anonymous) {
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
    let config = ClientConfig {
        protocol: if scheme == "http" {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        accept_invalid_certificates: !verify_tls,
        platform_resolver: None,
        max_concurrent_download: PARALLEL_DOWNLOADS,
        connect_timeout: Some(Duration::from_secs(10)),
        read_timeout: Some(read_timeout.unwrap_or(DEFAULT_READ_TIMEOUT)),
        ..ClientConfig::default()
    };
    let client = Client::try_from(config).map_err(|e| RegistryError::Protocol {
        registry: endpoint.host.clone(),
        message: format!("cannot set up an HTTP client: {e}"),
    })?;
    let mut target = reference.clone();
    let key = if endpoint.is_mirror {
        target.set_mirror_registry(endpoint.host.clone());
        endpoint.host.as_str()
    } else {
        reference.registry()
    };
    let auth = match auth_file.credentials(key)? {
        Credentials::Auth(auth) => auth,
        Credentials::IdentityToken(refresh) => {
            let exchange = Exchange {
                scheme,
                host: &endpoint.host,
                repository: reference.repository(),
                access,
                verify_tls,
            };
            RegistryAuth::Bearer(exchange.access_token(&refresh).await?)
        }
    };
    Ok(Connection {
        client,
        auth,
        auth_source: auth_file.path.clone(),
        reference: target,
        endpoint: endpoint.clone(),
        scheme,
    })
}

/// "https" when `host` answers TLS (certificate not checked), else "http". A host that
/// does not answer at all gets "http" and the real request reports the failure.
async fn probe_scheme(host: &str) -> &'static str {
    let client = match reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(_) => return "http",
    };
    match client.get(format!("https://{host}/v2/")).send().await {
        Ok(_) => "https",
        Err(_) => "http",
    }
}
