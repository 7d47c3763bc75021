//! Talking to registries (distribution-spec): the registries config (insecure registries,
//! mirrors), credentials from docker's config.json, building an oci-client `Client` for a
//! reference, and pulling an image into the store with parallel, verified, resumable,
//! retried blob downloads. `push` reuses [`client::connect`] and the config/auth loading.

pub mod auth;
pub mod client;
pub mod config;
pub mod cred_helper;
pub mod download;
pub mod identity_token;
pub mod login;
pub mod platform;
pub mod progress;
pub mod pull;
pub mod push;
pub mod retry;
pub mod sources;
pub mod unpack;
pub mod wire;

use std::path::PathBuf;

use crate::store::StoreError;

pub use auth::AuthFile;
pub use client::{connect, Connection};
pub use config::{Endpoint, RegistriesConfig, Transport};
pub use platform::PlatformSpec;
pub use pull::{pull_image, PullOptions, Pulled};
pub use push::{push_image, PushOptions, Pushed};

/// What can go wrong talking to a registry, worded for the user of a command line.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registries config {path}: {message}")]
    Config { path: PathBuf, message: String },
    #[error("auth file {path}: {message}")]
    AuthFile { path: PathBuf, message: String },
    #[error("cannot reach registry {registry}: {message}")]
    Unreachable { registry: String, message: String },
    #[error("registry {registry} refused access to {repository}: unauthorized; {hint}")]
    Unauthorized {
        registry: String,
        repository: String,
        hint: String,
    },
    /// `reference` is what was asked for: "image" (a tag or digest), "blob DIGEST", ….
    #[error("{reference} not found in registry {registry}")]
    NotFound { reference: String, registry: String },
    /// `what` is "blob sha256:…" or "manifest NAME".
    #[error("{what} from registry {registry} is corrupt: {message}")]
    Corrupt {
        what: String,
        registry: String,
        message: String,
    },
    #[error("no image for platform {platform} in the index (available: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant], e.g. linux/amd64")]
    BadPlatform(String),
    /// `--platform` asked for one platform and the registry's image (a single manifest,
    /// not an index) is for another: refused as docker refuses it.
    #[error("image with reference {reference} was found but does not match the specified platform: wanted {wanted}, actual: {actual}")]
    PlatformMismatch {
        reference: String,
        wanted: String,
        actual: String,
    },
    #[error("{message}")]
    BadManifest { reference: String, message: String },
    #[error("registry {registry}: {message}")]
    Protocol { registry: String, message: String },
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The registry's own failure, after its mirrors failed too.
    #[error("{error} (mirrors tried first: {mirrors})")]
    AfterMirrors {
        error: Box<RegistryError>,
        mirrors: String,
    },
}

impl RegistryError {
    /// Whether trying another endpoint (the origin after a mirror) could help.
    pub fn is_local(&self) -> bool {
        matches!(
            self,
            Self::Config { .. } | Self::AuthFile { .. } | Self::BadPlatform(_) | Self::Store(_)
        )
    }
}
