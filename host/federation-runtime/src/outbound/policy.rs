//! What one adapter may reach over HTTP: exact origins, deny by default, plus the
//! headers the host adds per destination and the adapter's own limits.

use std::{sync::Arc, time::Duration};

use http::{HeaderName, HeaderValue};
use url::Url;

use crate::bindings::HttpError;

/// What one adapter may do over HTTP: exact scheme + host + port destinations (deny by
/// default), headers the host adds per destination, and its own limits (the host's
/// [`OutboundLimits`](super::OutboundLimits) stay the ceilings).
#[derive(Debug)]
pub struct OutboundPolicy {
    allowed: Vec<Origin>,
    /// Added by the host for a destination, replacing any guest value of that name.
    pub(super) headers: Vec<(Origin, HeaderName, HeaderValue)>,
    pub(super) timeout: Duration,
    pub(super) max_response_bytes: u64,
    /// Requests one task may send.
    pub max_requests_per_task: u32,
    /// Requests in flight at once across all of this adapter's tasks.
    pub(super) concurrency: Arc<tokio::sync::Semaphore>,
    pub(super) max_concurrent_requests: usize,
}

/// An HTTP origin (`scheme://host:port`), ports made explicit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// The origin of an `http`/`https` URL with a host.
    pub fn of(url: &Url) -> Option<Origin> {
        if !matches!(url.scheme(), "http" | "https") {
            return None;
        }
        Some(Origin {
            scheme: url.scheme().to_string(),
            host: url.host_str()?.to_ascii_lowercase(),
            port: url.port_or_known_default()?,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

impl OutboundPolicy {
    pub fn new(
        allowed: Vec<Origin>,
        headers: Vec<(Origin, HeaderName, HeaderValue)>,
        timeout: Duration,
        max_response_bytes: u64,
        max_requests_per_task: u32,
        max_concurrent_requests: usize,
    ) -> Self {
        OutboundPolicy {
            allowed,
            headers,
            timeout,
            max_response_bytes,
            max_requests_per_task,
            concurrency: Arc::new(tokio::sync::Semaphore::new(max_concurrent_requests)),
            max_concurrent_requests,
        }
    }

    /// A policy that allows exactly these origins, with no limits of its own.
    pub fn allow_only(origins: impl IntoIterator<Item = Origin>) -> Self {
        OutboundPolicy::new(
            origins.into_iter().collect(),
            Vec::new(),
            Duration::MAX,
            u64::MAX,
            u32::MAX,
            tokio::sync::Semaphore::MAX_PERMITS,
        )
    }

    /// Whether `url` may be reached; the error says why not.
    pub fn check(&self, url: &Url) -> Result<(), HttpError> {
        let origin = Origin::of(url)
            .ok_or_else(|| HttpError::InvalidRequest(format!("not an http(s) URL: {url}")))?;
        if self.allowed.contains(&origin) {
            Ok(())
        } else {
            Err(HttpError::Denied(format!(
                "{origin} is not on this adapter's allow-list"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn policy_matches_exact_origin_with_default_ports() {
        let policy = OutboundPolicy::allow_only(Origin::of(&url("http://Wrapper:8080/")));
        assert!(
            policy
                .check(&url("http://wrapper:8080/v1/run_crew"))
                .is_ok()
        );
        assert!(matches!(
            policy.check(&url("http://wrapper:8081/")),
            Err(HttpError::Denied(_))
        ));
        assert!(matches!(
            policy.check(&url("https://wrapper:8080/")),
            Err(HttpError::Denied(_))
        ));
        let https = OutboundPolicy::allow_only(Origin::of(&url("https://api.example")));
        assert!(https.check(&url("https://api.example:443/x")).is_ok());
        assert!(matches!(
            https.check(&url("file:///etc/passwd")),
            Err(HttpError::InvalidRequest(_))
        ));
    }
}
