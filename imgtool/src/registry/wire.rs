//! The distribution-spec HTTP API, spoken to one repository of one endpoint, with every
//! read a registry controls bounded in size and time: a hostile or broken registry can
//! neither grow imgtool's memory without limit nor hold a command forever by trickling
//! bytes just fast enough to dodge an idle timeout.
//!
//! - Bodies read into memory have a size limit: manifests and indexes
//!   [`MAX_MANIFEST`] (docker's and containers/image's 4 MiB), bearer-token replies
//!   [`MAX_TOKEN`]; a longer `Content-Length` is refused before reading, a longer body when
//!   it gets there. Error bodies are read up to [`MAX_ERROR_BODY`] and the rest is dropped.
//! - Time: the response head of every request, and the whole of every body read into
//!   memory, must arrive within the idle timeout (`--timeout`). A blob's body may not go
//!   silent for that long, and one attempt at it must average at least [`MIN_BLOB_RATE`]
//!   after that allowance.
//! - Authentication as docker does it: a request answered 401 is authenticated from its
//!   `WWW-Authenticate` challenge (HTTP basic with the user's credentials, or a bearer
//!   token from the challenge's realm for the union of the scopes asked so far: the
//!   repository's, and the `from` repository a cross-repository mount needs), then sent
//!   once more. An identity token (OAuth2 refresh token) is exchanged at the realm.
//! - Uploads are monolithic (`POST` a session, then one `PUT ?digest=` carrying the whole
//!   blob, streamed): one request per blob instead of one per chunk.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;

use super::identity_token::Access;

/// The largest manifest or index read (docker's and containers/image's limit).
pub const MAX_MANIFEST: usize = 4 << 20;
/// The largest image config accepted (containers/image's limit for configs).
pub const MAX_CONFIG: u64 = 4 << 20;
/// The largest bearer-token reply read.
pub const MAX_TOKEN: usize = 1 << 20;
/// How much of an error response's body is read (for its message); the rest is dropped.
pub const MAX_ERROR_BODY: usize = 64 << 10;
/// The slowest average a blob download may keep up (bytes per second), after the idle
/// timeout's allowance: a trickle that dodges the idle timeout still ends.
pub const MIN_BLOB_RATE: u64 = 64 << 10;
/// The longest a `Retry-After` is honoured.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// The credentials to answer a registry's challenge with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Creds {
    Anonymous,
    Basic {
        user: String,
        password: String,
    },
    /// A ready bearer token (`registrytoken` in config.json), sent on every request.
    Bearer(String),
    /// An OAuth2 refresh token, exchanged at the token realm for an access token.
    Refresh(String),
}

impl Creds {
    pub fn is_anonymous(&self) -> bool {
        matches!(self, Self::Anonymous)
    }
}

/// What went wrong with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// The connection failed, timed out or broke off (worth retrying).
    Transport { message: String },
    /// The registry answered an error status.
    Status {
        status: u16,
        /// The distribution error codes of the body (`MANIFEST_UNKNOWN`, …).
        codes: Vec<String>,
        /// What the registry said, printable and short.
        message: String,
        retry_after: Option<Duration>,
    },
    /// A body bigger than imgtool reads.
    TooLarge { what: String, limit: u64 },
    /// A body that did not arrive in time.
    TooSlow { what: String, limit: Duration },
    /// The token service refused the credentials (`identity`: an identity token).
    TokenRefused { realm: String, identity: bool },
    /// The registry broke the protocol (no Location, a token reply that is not JSON, …).
    Protocol { message: String },
    /// Reading what was being sent failed on this side (a store blob).
    Local { message: String },
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Transport { message } | Self::Protocol { message } | Self::Local { message } => {
                f.write_str(message)
            }
            Self::Status {
                status, message, ..
            } => {
                if message.is_empty() {
                    write!(f, "HTTP {status}")
                } else {
                    write!(f, "HTTP {status}: {message}")
                }
            }
            Self::TooLarge { what, limit } => write!(
                f,
                "{what} is larger than {} (the most imgtool reads): refused",
                human_limit(*limit)
            ),
            Self::TooSlow { what, limit } => write!(
                f,
                "{what} did not arrive within {} s",
                limit.as_secs_f64().ceil() as u64
            ),
            Self::TokenRefused { realm, .. } => write!(f, "the token service {realm} refused"),
        }
    }
}

fn human_limit(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes % (1 << 20) == 0 {
        format!("{} MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes % (1 << 10) == 0 {
        format!("{} KiB", bytes >> 10)
    } else {
        format!("{bytes} bytes")
    }
}

impl WireError {
    /// Some(throttled) when another attempt could succeed.
    pub fn transient(&self) -> Option<bool> {
        match self {
            Self::Transport { .. } | Self::TooSlow { .. } => Some(false),
            Self::Status { status: 429, .. } => Some(true),
            Self::Status { codes, .. } if codes.iter().any(|c| c == "TOOMANYREQUESTS") => {
                Some(true)
            }
            Self::Status { status, .. } if *status >= 500 => Some(false),
            _ => None,
        }
    }

    /// How long the registry asked to wait before the next attempt.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// The innermost cause of an error ("Connection refused" rather than "error sending
/// request for url (…)"), lower-cased as io errors read in a sentence.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = cur.to_string();
    match msg.strip_suffix(" (os error 111)") {
        Some(m) => m.to_lowercase(),
        None => msg,
    }
}

fn transport(e: reqwest::Error) -> WireError {
    let message = if e.is_timeout() {
        "the connection timed out".to_string()
    } else {
        root_cause(&e)
    };
    WireError::Transport { message }
}

/// Makes text from a registry safe to print on one line: control characters and
/// invalid UTF-8 escaped, at most 200 characters.
pub fn printable(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    let mut out = String::new();
    for c in text.trim().chars() {
        if out.chars().count() >= 200 {
            out.push('…');
            break;
        }
        if c.is_control() || c == '\u{fffd}' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A manifest (or index) as served.
#[derive(Debug, Clone)]
pub struct ServedManifest {
    pub bytes: Vec<u8>,
    /// The `Content-Type` the registry gave it.
    pub content_type: Option<String>,
    /// The `Docker-Content-Digest` header, if any.
    pub digest_header: Option<String>,
}

/// A blob's body being received.
pub struct BlobBody {
    response: Response,
    /// True for a 206 answer to a Range request: the body starts at the offset asked for.
    pub partial: bool,
    idle: Duration,
    deadline: Instant,
    allowed: Duration,
    what: String,
}

impl BlobBody {
    /// The next piece of the body, None at its end. Fails when the body stays silent for
    /// the idle timeout or the attempt overruns its deadline.
    pub async fn next(&mut self) -> Result<Option<Bytes>, WireError> {
        let now = Instant::now();
        if now >= self.deadline {
            return Err(self.too_slow());
        }
        let wait = self.idle.min(self.deadline - now);
        match tokio::time::timeout(wait, self.response.chunk()).await {
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(transport(e)),
            Err(_) if Instant::now() >= self.deadline => Err(self.too_slow()),
            Err(_) => Err(WireError::Transport {
                message: format!(
                    "{} sent nothing for {} s",
                    self.what,
                    self.idle.as_secs_f64().ceil() as u64
                ),
            }),
        }
    }

    fn too_slow(&self) -> WireError {
        WireError::TooSlow {
            what: format!(
                "{} (at {} KiB/s or more, after the idle timeout's allowance)",
                self.what,
                MIN_BLOB_RATE >> 10
            ),
            limit: self.allowed,
        }
    }
}

/// What a cross-repository mount did.
pub enum Mount {
    Mounted,
    /// Not mounted; the registry opened an upload session at this location instead.
    Session(Url),
}

/// The current `Authorization` header and what it was obtained for.
#[derive(Default)]
struct AuthState {
    header: Option<HeaderValue>,
    /// Bumped whenever `header` changes, so a request that failed with an older header
    /// retries with the new one instead of fetching a token again.
    generation: u64,
    /// Every scope asked for so far; a new token covers them all.
    scopes: BTreeSet<String>,
}

/// One repository of one endpoint; see the module docs.
pub struct Wire {
    http: reqwest::Client,
    /// `scheme://api-host`, e.g. `https://registry-1.docker.io`.
    base: Url,
    repository: String,
    /// The origin registry, for a mirror (`?ns=`, as containerd sends).
    ns: Option<String>,
    creds: Creds,
    access: Access,
    idle: Duration,
    auth: std::sync::Mutex<AuthState>,
    /// Serializes token fetches: concurrent 401s make one.
    authenticating: tokio::sync::Mutex<()>,
}

/// How to reach one repository.
pub struct WireConfig {
    /// `http` or `https`.
    pub scheme: &'static str,
    /// The host requests go to (`host[:port]`).
    pub api_host: String,
    pub repository: String,
    pub ns: Option<String>,
    pub creds: Creds,
    pub access: Access,
    pub verify_tls: bool,
    /// The idle timeout (see the module docs).
    pub idle: Duration,
}

/// The HTTP client every registry request goes through.
pub fn http_client(verify_tls: bool, idle: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .danger_accept_invalid_certs(!verify_tls)
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(idle)
        .tcp_nodelay(true)
        .user_agent(concat!("imgtool/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("cannot set up an HTTP client: {}", root_cause(&e)))
}

impl Wire {
    pub fn new(c: WireConfig) -> Result<Self, WireError> {
        let base = Url::parse(&format!("{}://{}/", c.scheme, c.api_host)).map_err(|e| {
            WireError::Protocol {
                message: format!("invalid registry address {}: {e}", c.api_host),
            }
        })?;
        let http =
            http_client(c.verify_tls, c.idle).map_err(|message| WireError::Protocol { message })?;
        let mut state = AuthState::default();
        if let Creds::Bearer(token) = &c.creds {
            state.header = HeaderValue::from_str(&format!("Bearer {token}")).ok();
        }
        if !c.repository.is_empty() {
            state.scopes.insert(format!(
                "repository:{}:{}",
                c.repository,
                c.access.actions()
            ));
        }
        Ok(Self {
            http,
            base,
            repository: c.repository,
            ns: c.ns,
            creds: c.creds,
            access: c.access,
            idle: c.idle,
            auth: std::sync::Mutex::new(state),
            authenticating: tokio::sync::Mutex::new(()),
        })
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn idle_timeout(&self) -> Duration {
        self.idle
    }

    fn url(&self, tail: &str, ns: bool) -> Result<Url, WireError> {
        let mut url = self
            .base
            .join(&format!("v2/{}/{tail}", self.repository))
            .map_err(|e| WireError::Protocol {
                message: format!("cannot make a URL for {tail}: {e}"),
            })?;
        if let (true, Some(ns)) = (ns, &self.ns) {
            url.query_pairs_mut().append_pair("ns", ns);
        }
        Ok(url)
    }

    fn current_auth(&self) -> (u64, Option<HeaderValue>) {
        let s = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        (s.generation, s.header.clone())
    }

    /// Sends a request made by `make`; a 401 is answered by authenticating from its
    /// challenge and sending once more. The response head must arrive within the idle
    /// timeout.
    async fn send(
        &self,
        what: &str,
        make: impl Fn() -> RequestBuilder,
    ) -> Result<Response, WireError> {
        for round in 0..2 {
            let (generation, header) = self.current_auth();
            let mut req = make();
            if let Some(h) = header {
                req = req.header(AUTHORIZATION, h);
            }
            let resp = tokio::time::timeout(self.idle, req.send())
                .await
                .map_err(|_| WireError::TooSlow {
                    what: format!("the registry's answer to the request for {what}"),
                    limit: self.idle,
                })?
                .map_err(transport)?;
            if resp.status() != StatusCode::UNAUTHORIZED || round == 1 {
                return Ok(resp);
            }
            let challenge: Vec<String> = resp
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(String::from))
                .collect();
            drop(resp);
            if !self.authenticate(generation, &challenge).await? {
                return Err(WireError::Status {
                    status: 401,
                    codes: vec!["UNAUTHORIZED".into()],
                    message: String::new(),
                    retry_after: None,
                });
            }
        }
        unreachable!("the loop returns in its second round")
    }

    /// Answers a challenge: false when there is nothing to answer it with.
    async fn authenticate(&self, failed: u64, challenges: &[String]) -> Result<bool, WireError> {
        let _one = self.authenticating.lock().await;
        if self.current_auth().0 != failed {
            return Ok(true); // another request authenticated meanwhile: use its header
        }
        let parsed: Vec<Challenge> = challenges
            .iter()
            .flat_map(|h| parse_challenges(h))
            .collect();
        let bearer = parsed.iter().find(|c| c.scheme == "bearer");
        let header = match (bearer, &self.creds) {
            (Some(b), creds) if !matches!(creds, Creds::Bearer(_)) => {
                let Some(realm) = &b.realm else {
                    return Err(WireError::Protocol {
                        message: "the registry asks for a bearer token but names no realm".into(),
                    });
                };
                let scopes: Vec<String> = {
                    let mut s = self.auth.lock().unwrap_or_else(|p| p.into_inner());
                    s.scopes.extend(b.scope.iter().flat_map(|sc| {
                        sc.split(' ')
                            .filter(|x| !x.is_empty())
                            .map(String::from)
                            .collect::<Vec<_>>()
                    }));
                    merge_scopes(s.scopes.iter())
                };
                let token = self.fetch_token(realm, b.service.as_deref(), &scopes).await?;
                format!("Bearer {token}")
            }
            (_, Creds::Basic { user, password })
                if parsed.iter().any(|c| c.scheme == "basic") =>
            {
                use base64::Engine as _;
                let pair = format!("{user}:{password}");
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                )
            }
            (_, Creds::Refresh(_)) => {
                return Err(WireError::Protocol {
                    message: "the login for this registry is an identity token, but the registry asks for no bearer token".into(),
                })
            }
            _ => return Ok(false),
        };
        let value = HeaderValue::from_str(&header).map_err(|_| WireError::Protocol {
            message: "the token service sent a token that cannot be an HTTP header".into(),
        })?;
        let mut s = self.auth.lock().unwrap_or_else(|p| p.into_inner());
        s.header = Some(value);
        s.generation += 1;
        Ok(true)
    }

    /// Gets a bearer token for `scopes` from `realm` (a refresh-token exchange for an
    /// identity token, else a GET with the basic credentials, if any).
    async fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scopes: &[String],
    ) -> Result<String, WireError> {
        let url = Url::parse(realm)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .ok_or_else(|| WireError::Protocol {
                message: format!(
                    "the token realm {:?} is not an http(s) URL",
                    printable(realm.as_bytes())
                ),
            })?;
        let req = match &self.creds {
            Creds::Refresh(refresh) => {
                let scope = scopes.join(" ");
                let mut form = vec![
                    ("grant_type", "refresh_token"),
                    ("refresh_token", refresh.as_str()),
                    ("client_id", "imgtool"),
                    ("scope", scope.as_str()),
                ];
                if let Some(s) = service {
                    form.push(("service", s));
                }
                self.http.post(url.clone()).form(&form)
            }
            creds => {
                let mut query: Vec<(&str, &str)> = Vec::new();
                if let Some(s) = service {
                    query.push(("service", s));
                }
                for s in scopes {
                    query.push(("scope", s));
                }
                let mut req = self.http.get(url.clone());
                if let Creds::Basic { user, password } = creds {
                    query.push(("account", user));
                    req = req.basic_auth(user, Some(password));
                }
                req.query(&query)
            }
        };
        let resp = tokio::time::timeout(self.idle, req.send())
            .await
            .map_err(|_| WireError::TooSlow {
                what: format!("the token service {realm}'s answer"),
                limit: self.idle,
            })?
            .map_err(transport)?;
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(WireError::TokenRefused {
                realm: realm.to_string(),
                identity: matches!(self.creds, Creds::Refresh(_)),
            });
        }
        if !status.is_success() {
            let err = self.error_of(resp).await;
            return Err(WireError::Protocol {
                message: format!("the token service {realm} answered {err}"),
            });
        }
        let body = read_bounded(
            resp,
            MAX_TOKEN,
            self.idle,
            &format!("the token from {realm}"),
        )
        .await?;
        #[derive(Deserialize)]
        struct Reply {
            token: Option<String>,
            access_token: Option<String>,
        }
        let reply: Reply = serde_json::from_slice(&body).map_err(|e| WireError::Protocol {
            message: format!("the token service {realm} sent an invalid answer: {e}"),
        })?;
        reply
            .token
            .filter(|t| !t.is_empty())
            .or(reply.access_token.filter(|t| !t.is_empty()))
            .ok_or_else(|| WireError::Protocol {
                message: format!("the token service {realm} sent no token"),
            })
    }

    /// Turns an unexpected response into an error, reading at most [`MAX_ERROR_BODY`]
    /// of its body (within the idle timeout) for the registry's message.
    async fn error_of(&self, resp: Response) -> WireError {
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(|s| Duration::from_secs(s).min(MAX_RETRY_AFTER));
        let body = read_prefix(resp, MAX_ERROR_BODY, self.idle).await;
        let (codes, message) = error_message(&body);
        WireError::Status {
            status,
            codes,
            message,
            retry_after,
        }
    }

    /// GET a manifest or index by tag or digest.
    pub async fn get_manifest(
        &self,
        reference: &str,
        accept: &[&str],
    ) -> Result<ServedManifest, WireError> {
        let url = self.url(&format!("manifests/{reference}"), true)?;
        let accept = accept.join(", ");
        let what = format!("manifest {reference}");
        let resp = self
            .send(&what, || {
                self.http
                    .get(url.clone())
                    .header(reqwest::header::ACCEPT, accept.as_str())
            })
            .await?;
        if resp.status() != StatusCode::OK {
            return Err(self.error_of(resp).await);
        }
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(|s| s.split(';').next().unwrap_or(s).trim().to_string())
        };
        let content_type = header("content-type");
        let digest_header = header("docker-content-digest");
        let bytes = read_bounded(resp, MAX_MANIFEST, self.idle, &format!("the {what}")).await?;
        Ok(ServedManifest {
            bytes,
            content_type,
            digest_header,
        })
    }

    /// GET a blob from byte `offset` (a Range request when not 0); `remaining` is how
    /// many bytes are still expected (for the attempt's deadline).
    pub async fn get_blob(
        &self,
        digest: &str,
        offset: u64,
        remaining: u64,
    ) -> Result<BlobBody, WireError> {
        let url = self.url(&format!("blobs/{digest}"), true)?;
        let what = format!("blob {digest}");
        let resp = self
            .send(&what, || {
                let req = self.http.get(url.clone());
                if offset > 0 {
                    req.header(reqwest::header::RANGE, format!("bytes={offset}-"))
                } else {
                    req
                }
            })
            .await?;
        let partial = match resp.status() {
            StatusCode::OK => false,
            StatusCode::PARTIAL_CONTENT if offset > 0 => {
                let start = resp
                    .headers()
                    .get(reqwest::header::CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.strip_prefix("bytes "))
                    .and_then(|v| v.split('-').next())
                    .and_then(|v| v.trim().parse::<u64>().ok());
                if start != Some(offset) {
                    return Err(WireError::Protocol {
                        message: format!(
                            "the registry answered a request for {what} from byte {offset} with another range"
                        ),
                    });
                }
                true
            }
            _ => return Err(self.error_of(resp).await),
        };
        let allowed = self.idle + Duration::from_secs(remaining / MIN_BLOB_RATE);
        Ok(BlobBody {
            response: resp,
            partial,
            idle: self.idle,
            deadline: Instant::now() + allowed,
            allowed,
            what,
        })
    }

    /// Whether the repository has blob `digest` (HEAD).
    pub async fn blob_exists(&self, digest: &str) -> Result<bool, WireError> {
        let url = self.url(&format!("blobs/{digest}"), false)?;
        let what = format!("blob {digest}");
        let resp = self.send(&what, || self.http.head(url.clone())).await?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            _ => Err(self.error_of(resp).await),
        }
    }

    /// Asks the registry to mount blob `digest` from repository `from` of the same
    /// registry (the token then needs pull access there too, which the registry's
    /// challenge asks for).
    pub async fn mount_blob(&self, digest: &str, from: &str) -> Result<Mount, WireError> {
        let mut url = self.url("blobs/uploads/", false)?;
        url.query_pairs_mut()
            .append_pair("mount", digest)
            .append_pair("from", from);
        let what = format!("a mount of blob {digest}");
        let resp = self
            .send(&what, || {
                self.http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED => Ok(Mount::Mounted),
            StatusCode::ACCEPTED => Ok(Mount::Session(self.location(&resp)?)),
            _ => Err(self.error_of(resp).await),
        }
    }

    /// Opens an upload session (POST); returns its location.
    pub async fn start_upload(&self, digest: &str) -> Result<Url, WireError> {
        let url = self.url("blobs/uploads/", false)?;
        let what = format!("an upload of blob {digest}");
        let resp = self
            .send(&what, || {
                self.http
                    .post(url.clone())
                    .header(reqwest::header::CONTENT_LENGTH, 0)
            })
            .await?;
        if resp.status() != StatusCode::ACCEPTED {
            return Err(self.error_of(resp).await);
        }
        self.location(&resp)
    }

    /// Completes the upload session at `location` with the whole blob in one `PUT
    /// ?digest=`, its body made by `body` (called again if the PUT must be re-sent after
    /// authenticating).
    pub async fn finish_upload(
        &self,
        location: &Url,
        digest: &str,
        size: u64,
        body: impl Fn() -> reqwest::Body,
    ) -> Result<(), WireError> {
        let mut url = location.clone();
        url.query_pairs_mut().append_pair("digest", digest);
        let what = format!("the upload of blob {digest}");
        let resp = self
            .send(&what, || {
                self.http
                    .request(Method::PUT, url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(body())
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
            _ => Err(self.error_of(resp).await),
        }
    }

    /// PUT a manifest (or index) under `reference` (a tag or its digest).
    pub async fn put_manifest(
        &self,
        reference: &str,
        media_type: &str,
        bytes: &Bytes,
    ) -> Result<(), WireError> {
        let url = self.url(&format!("manifests/{reference}"), false)?;
        let what = format!("manifest {reference}");
        let resp = self
            .send(&what, || {
                self.http
                    .put(url.clone())
                    .header(CONTENT_TYPE, media_type)
                    .body(bytes.clone())
            })
            .await?;
        match resp.status() {
            StatusCode::CREATED | StatusCode::OK | StatusCode::ACCEPTED => Ok(()),
            _ => Err(self.error_of(resp).await),
        }
    }

    /// The upload location a response names, resolved against the registry's address.
    fn location(&self, resp: &Response) -> Result<Url, WireError> {
        let raw = resp
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| WireError::Protocol {
                message: format!(
                    "the registry answered HTTP {} without a Location for the upload",
                    resp.status().as_u16()
                ),
            })?;
        self.base.join(raw).map_err(|e| WireError::Protocol {
            message: format!(
                "the upload location {:?} is not a URL: {e}",
                printable(raw.as_bytes())
            ),
        })
    }

    /// `GET /v2/` with the credentials (a login check): Ok when the registry accepts
    /// them, or needs none.
    pub async fn check_login(&self) -> Result<(), WireError> {
        let url = self.base.join("v2/").map_err(|e| WireError::Protocol {
            message: format!("cannot make the /v2/ URL: {e}"),
        })?;
        let what = "the login check";
        let resp = self.send(what, || self.http.get(url.clone())).await?;
        if resp.status().is_success() {
            return Ok(());
        }
        Err(self.error_of(resp).await)
    }

    /// The access this wire authenticates for.
    pub fn access(&self) -> Access {
        self.access
    }
}

/// Reads a whole body of at most `limit` bytes within `within`.
async fn read_bounded(
    mut resp: Response,
    limit: usize,
    within: Duration,
    what: &str,
) -> Result<Vec<u8>, WireError> {
    let too_large = || WireError::TooLarge {
        what: what.to_string(),
        limit: limit as u64,
    };
    if resp.content_length().is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    loop {
        let chunk = tokio::time::timeout_at(deadline, resp.chunk())
            .await
            .map_err(|_| WireError::TooSlow {
                what: what.to_string(),
                limit: within,
            })?
            .map_err(transport)?;
        match chunk {
            None => return Ok(out),
            Some(c) => {
                if out.len() + c.len() > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(&c);
            }
        }
    }
}

/// The first `limit` bytes of a body (less if it ends or stalls first); never fails.
async fn read_prefix(mut resp: Response, limit: usize, within: Duration) -> Vec<u8> {
    let deadline = tokio::time::Instant::now() + within;
    let mut out = Vec::new();
    while out.len() < limit {
        match tokio::time::timeout_at(deadline, resp.chunk()).await {
            Ok(Ok(Some(c))) => {
                let take = c.len().min(limit - out.len());
                out.extend_from_slice(&c[..take]);
            }
            _ => break,
        }
    }
    out
}

/// The error codes and a one-line message from a distribution error body
/// (`{"errors":[{"code":…,"message":…}]}`), or the body's first line.
fn error_message(body: &[u8]) -> (Vec<String>, String) {
    #[derive(Deserialize)]
    struct Envelope {
        errors: Vec<Entry>,
    }
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    if let Ok(env) = serde_json::from_slice::<Envelope>(body) {
        let codes = env
            .errors
            .iter()
            .map(|e| e.code.to_ascii_uppercase())
            .collect();
        let msgs: Vec<String> = env
            .errors
            .iter()
            .map(|e| {
                let m = printable(e.message.as_bytes());
                let c = printable(e.code.as_bytes());
                match (c.is_empty(), m.is_empty()) {
                    (false, false) => format!("{c}: {m}"),
                    (false, true) => c,
                    _ => m,
                }
            })
            .collect();
        return (codes, printable(msgs.join("; ").as_bytes()));
    }
    let first = body.split(|b| *b == b'\n').next().unwrap_or(&[]);
    // An HTML error page says nothing useful on one line.
    if first.trim_ascii_start().starts_with(b"<") {
        return (Vec::new(), String::new());
    }
    (Vec::new(), printable(first))
}

/// Token scopes (`type:name:actions`) with the actions of each resource merged:
/// `repository:a:pull` and `repository:a:pull,push` ask for `repository:a:pull,push`.
fn merge_scopes<'a>(scopes: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut merged: std::collections::BTreeMap<&str, BTreeSet<&str>> = Default::default();
    for scope in scopes {
        match scope.rsplit_once(':') {
            Some((resource, actions)) if resource.contains(':') => {
                merged
                    .entry(resource)
                    .or_default()
                    .extend(actions.split(',').filter(|a| !a.is_empty()));
            }
            _ => {
                merged.entry(scope.as_str()).or_default();
            }
        }
    }
    merged
        .into_iter()
        .map(|(resource, actions)| {
            if actions.is_empty() {
                return resource.to_string();
            }
            // "pull,push" as docker writes it: pull first, then push, then the rest.
            let rank = |a: &&str| match *a {
                "pull" => 0,
                "push" => 1,
                _ => 2,
            };
            let mut list: Vec<&str> = actions.into_iter().collect();
            list.sort_by_key(|a| (rank(a), *a));
            format!("{resource}:{}", list.join(","))
        })
        .collect()
}

/// One challenge of a `WWW-Authenticate` header.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Challenge {
    /// Lower-cased.
    scheme: String,
    realm: Option<String>,
    service: Option<String>,
    scope: Option<String>,
}

fn parse_challenges(header: &str) -> Vec<Challenge> {
    let Ok(list) = http_auth::parse_challenges(header) else {
        return Vec::new();
    };
    list.iter()
        .map(|c| {
            let param = |name: &str| {
                c.params
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(name))
                    .map(|(_, v)| v.to_unescaped())
            };
            Challenge {
                scheme: c.scheme.to_ascii_lowercase(),
                realm: param("realm"),
                service: param("service"),
                scope: param("scope"),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges() {
        let c = parse_challenges(
            r#"Bearer realm="https://auth.test/token",service="reg.test",scope="repository:a:pull repository:b:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].realm.as_deref(), Some("https://auth.test/token"));
        assert_eq!(c[0].service.as_deref(), Some("reg.test"));
        assert_eq!(
            c[0].scope.as_deref(),
            Some("repository:a:pull repository:b:pull")
        );
        let c = parse_challenges(r#"Basic realm="r""#);
        assert_eq!(c[0].scheme, "basic");
        assert!(parse_challenges("").is_empty());
    }

    #[test]
    fn scopes_merge_per_resource() {
        let s: Vec<String> = [
            "repository:a:pull",
            "repository:a:push,pull",
            "repository:lib/b:pull",
            "registry:catalog:*",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            merge_scopes(s.iter()),
            [
                "registry:catalog:*",
                "repository:a:pull,push",
                "repository:lib/b:pull"
            ]
        );
    }

    #[test]
    fn error_bodies() {
        let (codes, msg) = error_message(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
        );
        assert_eq!(codes, ["MANIFEST_UNKNOWN"]);
        assert_eq!(msg, "MANIFEST_UNKNOWN: manifest unknown");
        let (codes, msg) = error_message(b"plain \x01text\xff\nsecond line");
        assert!(codes.is_empty());
        assert_eq!(msg, "plain \\u{1}text\\u{fffd}");
        assert_eq!(error_message(b"<html><body>502</body></html>").1, "");
        let long = vec![b'a'; 5000];
        assert!(error_message(&long).1.chars().count() <= 201);
    }

    #[test]
    fn transience() {
        let status = |s: u16| WireError::Status {
            status: s,
            codes: vec![],
            message: String::new(),
            retry_after: None,
        };
        assert_eq!(status(503).transient(), Some(false));
        assert_eq!(status(429).transient(), Some(true));
        assert_eq!(status(404).transient(), None);
        assert_eq!(
            WireError::TooLarge {
                what: "x".into(),
                limit: 1
            }
            .transient(),
            None
        );
        assert_eq!(
            WireError::Transport {
                message: "x".into()
            }
            .transient(),
            Some(false)
        );
    }

    #[test]
    fn limits_read_naturally() {
        assert_eq!(human_limit(4 << 20), "4 MiB");
        assert_eq!(human_limit(64 << 10), "64 KiB");
        assert_eq!(human_limit(100), "100 bytes");
    }
}
