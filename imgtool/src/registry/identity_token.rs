//! Identity tokens: the OAuth2 refresh token `docker login` stores (as `identitytoken`
//! in config.json, or behind a credential helper as user `<token>`) for registries that
//! issue one (Azure Container Registry, Docker Hub with single sign-on, ...). A refresh
//! token is not sent to the registry itself: as docker does, it is exchanged at the
//! token realm the registry names in its `WWW-Authenticate: Bearer` challenge, with
//! `POST grant_type=refresh_token`, for an access token scoped to one repository.

use std::time::Duration;

use serde::Deserialize;

use super::RegistryError;

/// What the access token must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
        }
    }
}

/// Where and for what to ask.
pub struct Exchange<'a> {
    /// "http" or "https".
    pub scheme: &'a str,
    /// The registry's `host[:port]`.
    pub host: &'a str,
    pub repository: &'a str,
    pub access: Access,
    pub verify_tls: bool,
}

#[derive(Deserialize)]
struct TokenReply {
    access_token: Option<String>,
    token: Option<String>,
}

/// The realm and service of a `Bearer` challenge.
fn bearer_challenge(header: &str) -> Option<(String, Option<String>)> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let bearer = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    let param = |name: &str| {
        bearer
            .params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.to_unescaped())
    };
    Some((param("realm")?, param("service")))
}

impl Exchange<'_> {
    /// Trades `refresh_token` for an access token.
    pub async fn access_token(&self, refresh_token: &str) -> Result<String, RegistryError> {
        let protocol = |message: String| RegistryError::Protocol {
            registry: self.host.to_string(),
            message,
        };
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(!self.verify_tls)
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|e| protocol(format!("cannot set up an HTTP client: {e}")))?;
        let unreachable = |e: reqwest::Error| RegistryError::Unreachable {
            registry: self.host.to_string(),
            message: super::retry::root_cause(&e),
        };
        let probe = client
            .get(format!("{}://{}/v2/", self.scheme, self.host))
            .send()
            .await
            .map_err(unreachable)?;
        let challenge = probe
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|h| h.to_str().ok())
            .and_then(bearer_challenge);
        let Some((realm, service)) = challenge else {
            return Err(protocol(format!(
                "the login for this registry is an identity token, but the registry asks for no bearer token (HTTP {} to /v2/)",
                probe.status().as_u16()
            )));
        };
        let scope = format!("repository:{}:{}", self.repository, self.access.actions());
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", "imgtool"),
            ("scope", scope.as_str()),
        ];
        if let Some(service) = service.as_deref() {
            form.push(("service", service));
        }
        let reply = client.post(&realm).form(&form).send().await.map_err(|e| {
            RegistryError::Unreachable {
                registry: realm.clone(),
                message: super::retry::root_cause(&e),
            }
        })?;
        let status = reply.status();
        if status == reqwest::StatusCode::UNAUTHORIZED || status == reqwest::StatusCode::FORBIDDEN {
            return Err(RegistryError::Unauthorized {
                registry: self.host.to_string(),
                repository: self.repository.to_string(),
                hint: format!(
                    "the token service {realm} rejected the identity token (log in again)"
                ),
            });
        }
        if !status.is_success() {
            return Err(protocol(format!(
                "the token service {realm} answered HTTP {} to the identity token",
                status.as_u16()
            )));
        }
        let body: TokenReply = reply.json().await.map_err(|e| {
            protocol(format!(
                "the token service {realm} sent an invalid answer: {e}"
            ))
        })?;
        body.access_token
            .or(body.token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| protocol(format!("the token service {realm} sent no access token")))
    }
}

#[cfg(test)]
mod tests {
    use super::bearer_challenge;

    #[test]
    fn reads_realm_and_service_of_a_bearer_challenge() {
        assert_eq!(
            bearer_challenge(
                r#"Bearer realm="https://auth.test/token",service="reg.test",scope="x""#
            ),
            Some(("https://auth.test/token".into(), Some("reg.test".into())))
        );
        assert_eq!(
            bearer_challenge(r#"Basic realm="r", Bearer realm="https://a/t""#),
            Some(("https://a/t".into(), None))
        );
        assert_eq!(bearer_challenge(r#"Basic realm="registry""#), None);
    }
}
