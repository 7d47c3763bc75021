//! What a registry token must allow, and identity tokens: the OAuth2 refresh token
//! `docker login` stores (as `identitytoken` in config.json, or behind a credential helper
//! as user `<token>`) for registries that issue one (Azure Container Registry, Docker Hub
//! with single sign-on, ...). A refresh token is never sent to the registry itself: as
//! docker does, it is exchanged at the token realm the registry names in its
//! `WWW-Authenticate: Bearer` challenge, with `POST grant_type=refresh_token`, for an
//! access token scoped to the repository ([`super::wire`] does the exchange).

/// What the access token must allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Pull,
    Push,
}

impl Access {
    /// The actions of a token scope (`repository:NAME:<actions>`).
    pub fn actions(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Push => "pull,push",
        }
    }
}
