//! Outbound HTTP for adapters: the one door out of the sandbox.
//!
//! Every request an adapter sends goes through [`OutboundHttp::send`], which checks the
//! destination against the adapter's [`OutboundPolicy`] (nothing leaves when it is
//! denied), adds the policy's secret headers for that destination, sets
//! `traceparent`/`tracestate` from the current span (replacing anything the guest set),
//! bounds the time by the task's deadline, caps the response size and the adapter's
//! concurrent requests. One shared `reqwest` client pools connections across all tasks.
//! [`OutboundHttp::send_streaming`] does the same but hands the body over line by line
//! as it arrives ([`ResponseStream`]), for wrappers that stream progress.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::StreamExt;
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_http::HeaderInjector;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::Url;

use crate::runtime::bindings::{HttpError, Method, Request, Response};

/// Headers the host owns: a guest's values for them are dropped.
const HOST_OWNED_HEADERS: &[&str] = &[
    DEADLINE_HEADER,
    "traceparent",
    "tracestate",
    "host",
    "content-length",
    "connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

/// Milliseconds left before the task's deadline, set by the host on every request so
/// the wrapper can stop its run in time.
pub const DEADLINE_HEADER: &str = "x-federation-deadline-ms";

/// Limits applied to every outbound request.
#[derive(Clone, Debug)]
pub struct OutboundLimits {
    /// Largest response body accepted, bytes.
    pub max_response_bytes: u64,
    /// Timeout when neither the guest nor the task deadline asks for a shorter one.
    pub default_timeout: Duration,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
}

/// What one adapter may do over HTTP: exact scheme + host + port destinations (deny by
/// default), headers the host adds per destination, and its own limits (the host's
/// [`OutboundLimits`] stay the ceilings).
#[derive(Debug)]
pub struct OutboundPolicy {
    allowed: Vec<Origin>,
    /// Added by the host for a destination, replacing any guest value of that name.
    headers: Vec<(Origin, HeaderName, HeaderValue)>,
    timeout: Duration,
    max_response_bytes: u64,
    /// Requests one task may send.
    pub max_requests_per_task: u32,
    /// Requests in flight at once across all of this adapter's tasks.
    concurrency: Arc<tokio::sync::Semaphore>,
    max_concurrent_requests: usize,
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

/// The shared outbound client.
pub struct OutboundHttp {
    client: reqwest::Client,
    limits: OutboundLimits,
}

impl OutboundHttp {
    pub fn new(limits: OutboundLimits) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(limits.connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            // A redirect could lead past the allow-list: adapters see 3xx as they are.
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(OutboundHttp { client, limits })
    }

    /// Sends one request for an adapter whose task must end by `deadline` and reads
    /// the whole response.
    pub async fn send(
        &self,
        policy: &OutboundPolicy,
        request: Request,
        deadline: Instant,
    ) -> Result<Response, HttpError> {
        let prepared = self.prepare(policy, request, deadline).await?;
        let span = prepared.span.clone();
        let exchange = async {
            let response = prepared.builder.send().await.map_err(|e| classify(&e))?;
            read_response(response, prepared.cap).await
        };
        let result = exchange.instrument(span.clone()).await;
        match &result {
            Ok(response) => record_response(&span, response.status, response.body.len()),
            Err(error) => record_error(&span, error),
        }
        result
    }

    /// Sends one request and returns once the response headers are in; the body is
    /// read line by line from the returned stream, within the same timeout and cap.
    pub async fn send_streaming(
        &self,
        policy: &OutboundPolicy,
        request: Request,
        deadline: Instant,
    ) -> Result<ResponseStream, HttpError> {
        let prepared = self.prepare(policy, request, deadline).await?;
        let span = prepared.span.clone();
        let response = match prepared.builder.send().instrument(span.clone()).await {
            Ok(response) => response,
            Err(error) => {
                let error = classify(&error);
                record_error(&span, &error);
                return Err(error);
            }
        };
        if response
            .content_length()
            .is_some_and(|len| len > prepared.cap)
        {
            let error = HttpError::TooLarge(prepared.cap);
            record_error(&span, &error);
            return Err(error);
        }
        Ok(ResponseStream {
            status: response.status().as_u16(),
            headers: header_pairs(response.headers()),
            body: Box::pin(response.bytes_stream()),
            buffer: Vec::new(),
            scanned: 0,
            read: 0,
            ended: false,
            cap: prepared.cap,
            span,
            _slot: prepared.slot,
        })
    }

    /// Everything before a request leaves: URL and policy checks, the secret and
    /// host-owned headers, the timeout, a concurrency slot and the client span with
    /// `traceparent` injected.
    async fn prepare(
        &self,
        policy: &OutboundPolicy,
        request: Request,
        deadline: Instant,
    ) -> Result<Prepared, HttpError> {
        let url = Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL {:?}: {e}", request.url)))?;
        policy.check(&url)?;
        let mut headers = guest_headers(&request.headers)?;
        if let Some(origin) = Origin::of(&url) {
            for (to, name, value) in &policy.headers {
                if *to == origin {
                    headers.insert(name.clone(), value.clone());
                }
            }
        }
        let timeout = self
            .timeout_for(request.timeout_ms, deadline)?
            .min(policy.timeout);
        let left = deadline
            .saturating_duration_since(Instant::now())
            .as_millis();
        headers.insert(DEADLINE_HEADER, HeaderValue::from(left as u64));
        let cap = self
            .limits
            .max_response_bytes
            .min(policy.max_response_bytes);
        let method = http_method(request.method);
        // Waiting for a slot counts against the task's deadline like the request does.
        let slot = tokio::time::timeout_at(
            deadline.into(),
            policy.concurrency.clone().acquire_owned(),
        )
        .await
        .map_err(|_| {
            HttpError::Timeout(format!(
                "the adapter's {} concurrent outbound requests stayed busy until the deadline",
                policy.max_concurrent_requests
            ))
        })?
        .expect("the semaphore is never closed");

        let span = tracing::info_span!(
            "outbound_http",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %method,
            url.full = %url,
            server.address = url.host_str().unwrap_or_default(),
            server.port = i64::from(url.port_or_known_default().unwrap_or_default()),
            http.response.status_code = Empty,
            http.response.body.size = Empty,
            error.type = Empty,
        );
        // The wrapper's server span becomes a child of this client span.
        let context = span.context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut HeaderInjector(&mut headers))
        });
        let builder = self
            .client
            .request(method, url)
            .headers(headers)
            .body(request.body)
            .timeout(timeout);
        Ok(Prepared {
            builder,
            span,
            cap,
            slot,
        })
    }

    /// The smaller of the guest's timeout, the host's default and the time left.
    fn timeout_for(&self, guest_ms: Option<u32>, deadline: Instant) -> Result<Duration, HttpError> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(HttpError::Timeout("the task's deadline has passed".into()));
        }
        let guest = guest_ms.map_or(Duration::MAX, |ms| Duration::from_millis(ms.into()));
        Ok(left.min(guest).min(self.limits.default_timeout))
    }
}

/// Reads a response whole, refusing bodies over `cap` bytes.
async fn read_response(response: reqwest::Response, cap: u64) -> Result<Response, HttpError> {
    if response.content_length().is_some_and(|len| len > cap) {
        return Err(HttpError::TooLarge(cap));
    }
    let status = response.status().as_u16();
    let headers = header_pairs(response.headers());
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| classify(&e))?;
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(HttpError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// A request ready to leave, and what its exchange is bound by.
struct Prepared {
    builder: reqwest::RequestBuilder,
    span: tracing::Span,
    cap: u64,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// A response whose body an adapter reads line by line (`outbound-stream`). Holds the
/// adapter's concurrency slot and the client span until it is dropped.
pub struct ResponseStream {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    body: std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    /// Received bytes not yet returned as lines.
    buffer: Vec<u8>,
    /// How much of `buffer` is known to hold no newline.
    scanned: usize,
    /// Body bytes received so far (counted against `cap`).
    read: u64,
    ended: bool,
    cap: u64,
    span: tracing::Span,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl ResponseStream {
    /// The next line of the body without its line ending; `None` at the end.
    pub async fn read_line(&mut self) -> Result<Option<Vec<u8>>, HttpError> {
        loop {
            if let Some(at) = self.buffer[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + at;
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                line.pop();
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                self.scanned = 0;
                return Ok(Some(line));
            }
            self.scanned = self.buffer.len();
            if self.ended {
                self.scanned = 0;
                return Ok((!self.buffer.is_empty()).then(|| std::mem::take(&mut self.buffer)));
            }
            match self.body.next().instrument(self.span.clone()).await {
                Some(Ok(chunk)) => {
                    self.read += chunk.len() as u64;
                    if self.read > self.cap {
                        let error = HttpError::TooLarge(self.cap);
                        record_error(&self.span, &error);
                        self.ended = true;
                        self.buffer.clear();
                        return Err(error);
                    }
                    self.buffer.extend_from_slice(&chunk);
                }
                Some(Err(error)) => {
                    let error = classify(&error);
                    record_error(&self.span, &error);
                    self.ended = true;
                    self.buffer.clear();
                    return Err(error);
                }
                None => self.ended = true,
            }
        }
    }
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        record_response(&self.span, self.status, self.read as usize);
    }
}

fn record_response(span: &tracing::Span, status: u16, body_size: usize) {
    span.record("http.response.status_code", i64::from(status));
    span.record("http.response.body.size", body_size as i64);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", i64::from(status));
    }
}

fn record_error(span: &tracing::Span, error: &HttpError) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_kind(error));
}

fn header_pairs(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            (
                name.as_str().to_string(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            )
        })
        .collect()
}

/// The guest's headers minus the host-owned ones; invalid names or values are refused.
fn guest_headers(pairs: &[(String, String)]) -> Result<HeaderMap, HttpError> {
    let mut headers = HeaderMap::with_capacity(pairs.len() + 2);
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad header name {name:?}")))?;
        if HOST_OWNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("bad value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn http_method(method: Method) -> reqwest::Method {
    match method {
        Method::Get => reqwest::Method::GET,
        Method::Post => reqwest::Method::POST,
        Method::Put => reqwest::Method::PUT,
        Method::Patch => reqwest::Method::PATCH,
        Method::Delete => reqwest::Method::DELETE,
        Method::Head => reqwest::Method::HEAD,
    }
}

fn classify(error: &reqwest::Error) -> HttpError {
    // reqwest's Display hides the cause ("error sending request"): include the chain.
    let mut message = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    if error.is_timeout() {
        HttpError::Timeout(message)
    } else {
        HttpError::Transport(message)
    }
}

fn error_kind(error: &HttpError) -> &'static str {
    match error {
        HttpError::Denied(_) => "denied",
        HttpError::InvalidRequest(_) => "invalid_request",
        HttpError::Transport(_) => "transport",
        HttpError::Timeout(_) => "timeout",
        HttpError::TooLarge(_) => "too_large",
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

    #[test]
    fn guest_cannot_set_host_owned_headers() {
        let headers = guest_headers(&[
            ("traceparent".into(), "00-forged".into()),
            ("TraceState".into(), "x=y".into()),
            ("content-type".into(), "application/json".into()),
        ])
        .unwrap();
        assert_eq!(headers.len(), 1);
        assert_eq!(headers["content-type"], "application/json");
        assert!(matches!(
            guest_headers(&[("bad header".into(), "v".into())]),
            Err(HttpError::InvalidRequest(_))
        ));
    }

    #[test]
    fn timeout_is_bounded_by_deadline_and_default() {
        let http = OutboundHttp::new(OutboundLimits {
            max_response_bytes: 1024,
            default_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(1),
        })
        .unwrap();
        let far = Instant::now() + Duration::from_secs(100);
        assert_eq!(
            http.timeout_for(None, far).unwrap(),
            Duration::from_secs(10)
        );
        assert_eq!(
            http.timeout_for(Some(250), far).unwrap(),
            Duration::from_millis(250)
        );
        let near = Instant::now() + Duration::from_secs(2);
        assert!(http.timeout_for(None, near).unwrap() <= Duration::from_secs(2));
        assert!(matches!(
            http.timeout_for(None, Instant::now()),
            Err(HttpError::Timeout(_))
        ));
    }
}
