//! Retrying transient failures (connection refused/reset, timeouts, 5xx, 429) with a
//! bounded exponential backoff, and turning request failures into [`RegistryError`]s.

use std::future::Future;
use std::time::Duration;

use super::client::Connection;
use super::wire::WireError;
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

    /// The wait before retry number `retry` (1-based): the backoff, or longer when the
    /// registry's `Retry-After` asks for it (see [`super::wire::MAX_RETRY_AFTER`]).
    pub fn wait(&self, retry: u32, throttled: bool, retry_after: Option<Duration>) -> Duration {
        self.delay(retry, throttled)
            .max(retry_after.unwrap_or_default())
    }

    /// The delay before retry number `retry` (1-based). A 429 waits at least a second.
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

/// Maps a request's failure about `what` ("image", "blob DIGEST") at `registry`.
pub fn classify(
    e: &WireError,
    registry: &str,
    repository: &str,
    what: &str,
    unauthorized_hint: &str,
) -> RegistryError {
    let protocol = |message: String| RegistryError::Protocol {
        registry: registry.to_string(),
        message,
    };
    let unauthorized = |hint: String| RegistryError::Unauthorized {
        registry: registry.to_string(),
        repository: repository.to_string(),
        hint,
    };
    match e {
        WireError::Transport { message } => RegistryError::Unreachable {
            registry: registry.to_string(),
            message: message.clone(),
        },
        WireError::TokenRefused {
            realm,
            identity: true,
        } => unauthorized(format!(
            "the token service {realm} rejected the identity token (log in again)"
        )),
        WireError::TokenRefused { realm, .. } => unauthorized(format!(
            "{unauthorized_hint} (by the token service {realm})"
        )),
        WireError::Status { status, codes, .. }
            if *status == 401
                || *status == 403
                || codes.iter().any(|c| c == "UNAUTHORIZED" || c == "DENIED") =>
        {
            unauthorized(unauthorized_hint.to_string())
        }
        WireError::Status { status, codes, .. }
            if *status == 404
                || codes.iter().any(|c| {
                    matches!(
                        c.as_str(),
                        "MANIFEST_UNKNOWN" | "NAME_UNKNOWN" | "BLOB_UNKNOWN" | "NOT_FOUND"
                    )
                }) =>
        {
            RegistryError::NotFound {
                reference: what.to_string(),
                registry: registry.to_string(),
            }
        }
        WireError::Status { .. } => protocol(format!("{what}: {e}")),
        WireError::TooLarge { .. } | WireError::TooSlow { .. } | WireError::Protocol { .. } => {
            protocol(e.to_string())
        }
        WireError::Local { message } => {
            RegistryError::Store(crate::store::StoreError::Corrupt(message.clone()))
        }
    }
}

/// Maps a failure of a request of `conn` about `what`; Some(throttled) when transient.
pub fn map_error(conn: &Connection, what: &str, e: &WireError) -> (RegistryError, Option<bool>) {
    let err = classify(
        e,
        conn.host(),
        conn.reference.repository(),
        what,
        &conn.unauthorized_hint(),
    );
    (err, e.transient())
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
    Fut: Future<Output = Result<T, WireError>>,
{
    let mut attempt = 1;
    loop {
        match op().await {
            Ok(v) => return Ok(v),
            Err(e) => match map_error(conn, what, &e) {
                (_, Some(throttled)) if attempt < policy.attempts => {
                    tokio::time::sleep(policy.wait(attempt, throttled, e.retry_after())).await;
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
        let e = |status| WireError::Status {
            status,
            codes: vec![],
            message: "m".into(),
            retry_after: None,
        };
        assert_eq!(e(503).transient(), Some(false));
        assert_eq!(e(429).transient(), Some(true));
        assert_eq!(e(400).transient(), None);
        assert!(matches!(
            classify(&e(404), "r:1", "repo", "r:1/repo:t", "h"),
            RegistryError::NotFound { .. }
        ));
        let p = RetryPolicy::default();
        assert_eq!(
            p.wait(1, true, Some(Duration::from_secs(3))),
            Duration::from_secs(3)
        );
    }
}
