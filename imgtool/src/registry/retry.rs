//! Retrying transient failures (connection refused/reset, timeouts, 5xx, 429) with a
//! bounded exponential backoff, and turning oci-client errors into [`RegistryError`]s.

use std::future::Future;
use std::time::Duration;

use oci_client::errors::{OciDistributionError, OciErrorCode};

use super::client::Connection;
use super::RegistryError;

/// How often and how patiently to retry.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total (1 = no retry).
    pub attempts: u32,
    /// Delay before the first retry; doubled for each further one.
    pub initial_delay: Duration,
    /// Upper bound of one delay.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: 5,
            initial_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// For mirrors: one retry, then fall back to the next endpoint.
    pub fn mirror() -> Self {
        Self {
            attempts: 2,
            ..Self::default()
        }
    }

    /// The delay before retry number `retry` (1-based). A 429 waits at least a second:
    /// oci-client does not hand out the Retry-After header.
    pub fn delay(&self, retry: u32, throttled: bool) -> Duration {
        let factor = 1u32 << retry.saturating_sub(1).min(16);
        let d = self
            .initial_delay
            .saturating_mul(factor)
            .min(self.max_delay);
        if throttled {
            d.max(Duration::from_secs(1))
        } else {
            d
        }
    }
}

/// Notes in a transient error that it persisted through `attempts` tries.
pub fn gave_up(err: RegistryError, attempts: u32) -> RegistryError {
    if attempts < 2 {
        return err;
    }
    match err {
        RegistryError::Unreachable { registry, message } => RegistryError::Unreachable {
            registry,
            message: format!("{message} (gave up after {attempts} attempts)"),
        },
        RegistryError::Protocol { registry, message } => RegistryError::Protocol {
            registry,
            message: format!("{message} (gave up after {attempts} attempts)"),
        },
        other => other,
    }
}

/// Whether an oci-client error is worth retrying, and whether it was a 429.
pub fn transient(e: &OciDistributionError) -> Option<bool> {
    match e {
        // A body that broke off while being read in full (a manifest or config whose
        // connection closed before its Content-Length) is a "decode" error to reqwest.
        OciDistributionError::RequestError(r) => {
            (r.is_connect() || r.is_timeout() || r.is_request() || r.is_body() || r.is_decode())
                .then_some(false)
        }
        OciDistributionError::IoError(io) => io_transient(io).then_some(false),
        OciDistributionError::ServerError { code, .. } if *code == 429 => Some(true),
        OciDistributionError::ServerError { code, .. } if *code >= 500 => Some(false),
        OciDistributionError::RegistryError { envelope, .. }
            if envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::Toomanyrequests) =>
        {
            Some(true)
        }
        _ => None,
    }
}

/// A read error from a body stream: transient unless it is a digest verification failure.
pub fn io_transient(e: &std::io::Error) -> bool {
    digest_failure(e).is_none()
}

/// The digest failure wrapped in a body stream error, if that is what it is.
pub fn digest_failure(e: &std::io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<oci_client::errors::DigestError>())
        .map(|d| d.to_string())
}

/// The innermost cause of an error: "Connection refused (os error 111)" rather than
/// "error sending request for url (…)".
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    let msg = cur.to_string();
    // hyper's "connection closed before message completed" etc. are fine as they are;
    // make io errors read naturally.
    msg.strip_suffix(" (os error 111)")
        .map(|m| m.to_lowercase())
        .unwrap_or(msg)
}

/// Maps an oci-client error about `what` ("image", "blob DIGEST") at
/// `registry`.
pub fn classify(
    e: &OciDistributionError,
    registry: &str,
    repository: &str,
    what: &str,
    unauthorized_hint: &str,
) -> RegistryError {
    let protocol = |message: String| RegistryError::Protocol {
        registry: registry.to_string(),
        message,
    };
    let unauthorized = || RegistryError::Unauthorized {
        registry: registry.to_string(),
        repository: repository.to_string(),
        hint: unauthorized_hint.to_string(),
    };
    let not_found = || RegistryError::NotFound {
        reference: what.to_string(),
        registry: registry.to_string(),
    };
    match e {
        OciDistributionError::RequestError(r) => RegistryError::Unreachable {
            registry: registry.to_string(),
            message: root_cause(r),
        },
        OciDistributionError::IoError(io) => RegistryError::Unreachable {
            registry: registry.to_string(),
            message: root_cause(io),
        },
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => unauthorized(),
        OciDistributionError::ServerError { code: 401, .. }
        | OciDistributionError::ServerError { code: 403, .. } => unauthorized(),
        OciDistributionError::ServerError { code: 404, .. } => not_found(),
        OciDistributionError::ServerError { code, message, .. } => {
            let first = message.lines().next().unwrap_or("").trim();
            protocol(format!("HTTP {code} {first}").trim_end().to_string())
        }
        OciDistributionError::RegistryError { envelope, .. } => {
            let codes: Vec<&OciErrorCode> = envelope.errors.iter().map(|e| &e.code).collect();
            if codes
                .iter()
                .any(|c| matches!(c, OciErrorCode::Unauthorized | OciErrorCode::Denied))
            {
                unauthorized()
            } else if codes.iter().any(|c| {
                matches!(
                    c,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                        | OciErrorCode::BlobUnknown
                )
            }) {
                not_found()
            } else {
                let msgs: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{:?}: {}", e.code, e.message))
                    .collect();
                protocol(msgs.join("; "))
            }
        }
        OciDistributionError::DigestError(d) => RegistryError::Corrupt {
            what: what.to_string(),
            registry: registry.to_string(),
            message: d.to_string(),
        },
        other => protocol(other.to_string().replace('\n', " ")),
    }
}

/// oci-client reports some HTTP statuses (of HEAD requests, for instance) as reqwest status errors;
/// as server errors they classify like every other status.
pub fn normalize(e: OciDistributionError) -> OciDistributionError {
    match e {
        OciDistributionError::RequestError(r) if r.status().is_some() => {
            OciDistributionError::ServerError {
                code: r.status().map(|s| s.as_u16()).unwrap_or_default(),
                url: r.url().map(|u| u.to_string()).unwrap_or_default(),
                message: String::new(),
            }
        }
        other => other,
    }
}

/// Maps an oci-client error of `conn` about `what`; Some(throttled) when transient.
pub fn map_error(
    conn: &Connection,
    what: &str,
    e: OciDistributionError,
) -> (RegistryError, Option<bool>) {
    let e = normalize(e);
    let err = classify(
        &e,
        conn.host(),
        conn.reference.repository(),
        what,
        &conn.unauthorized_hint(),
    );
    (err, transient(&e))
}

/// Runs `op` with retries on transient failures; other failures map to a clear error.
pub async fn retrying<T, F, Fut>(
    conn: &Connection,
    policy: RetryPolicy,
    what: &str,
    mut op: F,
) -> Result<T, RegistryError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, OciDistributionError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match map_error(conn, what, e) {
                (_, Some(throttled)) if attempt < policy.attempts => {
                    tokio::time::sleep(policy.delay(attempt, throttled)).await;
                    attempt += 1;
                }
                (err, Some(_)) => return Err(gave_up(err, attempt)),
                (err, None) => return Err(err),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy::default();
        assert_eq!(p.delay(1, false), Duration::from_millis(200));
        assert_eq!(p.delay(2, false), Duration::from_millis(400));
        assert_eq!(p.delay(10, false), Duration::from_secs(5));
        assert_eq!(p.delay(1, true), Duration::from_secs(1));
    }

    #[test]
    fn server_errors() {
        let e = |code| OciDistributionError::ServerError {
            code,
            url: "u".into(),
            message: "m".into(),
        };
        assert_eq!(transient(&e(503)), Some(false));
        assert_eq!(transient(&e(429)), Some(true));
        assert_eq!(transient(&e(400)), None);
        assert!(matches!(
            classify(&e(404), "r:1", "repo", "r:1/repo:t", "h"),
            RegistryError::NotFound { .. }
        ));
    }
}
