//! The outbound client: the one door out of the sandbox.
//!
//! Every request an adapter sends goes through [`OutboundHttp::send`], which checks the
//! destination against the adapter's [`OutboundPolicy`] (nothing leaves when it is
//! denied), adds the policy's secret headers for that destination, sets
//! `traceparent`/`tracestate` from the current span (replacing anything the guest set),
//! adds the host's identity headers (the task's principal and the host's credential,
//! [`inject_host_headers`]) to requests for the wrapper's origin only, bounds the time
//! by the task's deadline, caps the response size and the adapter's concurrent
//! requests. [`OutboundHttp::send_streaming`] does the same but hands the body over
//! line by line as it arrives ([`LineStream`]). A guest that sets an identity header is
//! refused, and a response header of that name is dropped before the guest sees it.
//!
//! What then carries the request is a [`Transport`]: [`Reqwest`] (one shared client
//! that pools connections across all tasks, TLS and proxy per [`NetSettings`]) in the
//! host; tests and benchmarks swap in their own to answer without a socket, while
//! everything above stays the host's.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use futures::{StreamExt, future::BoxFuture};
use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry_http::HeaderInjector;
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use url::Url;

use super::credential::{HostCredential, inject_host_headers, is_host_identity_header};
use super::net::NetSettings;
use super::policy::{Origin, OutboundPolicy};
use super::span::{record_error, record_response};
use super::stream::{BodyStream, LineStream};
use crate::bindings::{HttpError, Method, Request, Response};

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

/// A request the host has checked and prepared, ready to leave.
#[derive(Debug)]
pub struct TransportRequest {
    pub method: http::Method,
    pub url: Url,
    /// The guest's headers less the host-owned ones, plus the policy's, the deadline
    /// and the trace context.
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The whole exchange, body included, must end within this.
    pub timeout: Duration,
}

/// A response whose headers have arrived; its body follows as a stream.
pub struct TransportResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// The body's announced length, when known (checked against the cap up front).
    pub content_length: Option<u64>,
    pub body: BodyStream,
}

/// What carries a prepared request and brings its response back: the network in the
/// host ([`Reqwest`]), anything else in a test or a benchmark.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, HttpError>>;
}

/// The host's transport: one `reqwest` client for every adapter and task, pooling
/// connections; redirects are not followed (one could lead past the allow-list: adapters
/// see 3xx as they are), TLS and proxies as [`NetSettings`] say.
pub struct Reqwest {
    client: reqwest::Client,
}

impl Reqwest {
    pub fn new(connect_timeout: Duration, net: &NetSettings) -> anyhow::Result<Self> {
        let client = net
            .client_builder()?
            .connect_timeout(connect_timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .tcp_nodelay(true)
            .build()?;
        Ok(Reqwest { client })
    }
}

impl Transport for Reqwest {
    fn send(
        &self,
        request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, HttpError>> {
        let sent = self
            .client
            .request(request.method, request.url)
            .headers(request.headers)
            .body(request.body)
            .timeout(request.timeout)
            .send();
        Box::pin(async move {
            let response = sent.await.map_err(|e| classify(&e))?;
            Ok(TransportResponse {
                status: response.status().as_u16(),
                headers: header_pairs(response.headers()),
                content_length: response.content_length(),
                body: Box::pin(
                    response
                        .bytes_stream()
                        .map(|chunk| chunk.map_err(|e| classify(&e))),
                ),
            })
        })
    }
}

/// The shared outbound client: the host's checks and limits over a [`Transport`].
pub struct OutboundHttp {
    transport: Arc<dyn Transport>,
    limits: OutboundLimits,
    /// Added to requests for the wrapper's origin.
    credential: Option<HostCredential>,
    /// The configured wrapper's origin: the one destination of the host's own headers.
    wrapper: Option<Origin>,
}

impl OutboundHttp {
    /// Over the network ([`Reqwest`]) with the default [`NetSettings`], no credential.
    pub fn new(limits: OutboundLimits) -> anyhow::Result<Self> {
        OutboundHttp::configured(limits, &NetSettings::default(), None)
    }

    /// Over the network with these TLS and proxy settings, adding `credential` to the
    /// wrapper's requests.
    pub fn configured(
        limits: OutboundLimits,
        net: &NetSettings,
        credential: Option<HostCredential>,
    ) -> anyhow::Result<Self> {
        let transport = Reqwest::new(limits.connect_timeout, net)?;
        Ok(OutboundHttp::with_transport(limits, Arc::new(transport)).with_credential(credential))
    }

    /// Over `transport`: every check and limit stays the host's.
    pub fn with_transport(limits: OutboundLimits, transport: Arc<dyn Transport>) -> Self {
        OutboundHttp {
            transport,
            limits,
            credential: None,
            wrapper: None,
        }
    }

    /// The same, adding `credential` to requests for its origin.
    pub fn with_credential(mut self, credential: Option<HostCredential>) -> Self {
        self.credential = credential;
        self
    }

    /// Requests to `wrapper`'s origin carry the host's wrapper headers (the task's
    /// principal); no other destination ever gets them.
    pub fn for_wrapper(mut self, wrapper: Origin) -> Self {
        self.wrapper = Some(wrapper);
        self
    }

    /// Sends one request for an adapter whose task (run for `principal`) must end by
    /// `deadline` and reads the whole response.
    pub async fn send(
        &self,
        policy: &OutboundPolicy,
        request: Request,
        deadline: Instant,
        principal: Option<&HeaderValue>,
    ) -> Result<Response, HttpError> {
        let prepared = self.prepare(policy, request, deadline, principal).await?;
        let span = prepared.span.clone();
        let exchange = async {
            let response = self.transport.send(prepared.request).await?;
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
        principal: Option<&HeaderValue>,
    ) -> Result<LineStream, HttpError> {
        let prepared = self.prepare(policy, request, deadline, principal).await?;
        let span = prepared.span.clone();
        let sent = self.transport.send(prepared.request);
        let response = match sent.instrument(span.clone()).await {
            Ok(response) => response,
            Err(error) => {
                record_error(&span, &error);
                return Err(error);
            }
        };
        if response
            .content_length
            .is_some_and(|len| len > prepared.cap)
        {
            let error = HttpError::TooLarge(prepared.cap);
            record_error(&span, &error);
            return Err(error);
        }
        Ok(LineStream::new(
            response.status,
            visible_headers(response.headers),
            response.body,
            prepared.cap,
            span,
            prepared.slot,
        ))
    }

    /// Everything before a request leaves: URL and policy checks, the secret and
    /// host-owned headers, the timeout, a concurrency slot and the client span with
    /// `traceparent` injected.
    async fn prepare(
        &self,
        policy: &OutboundPolicy,
        request: Request,
        deadline: Instant,
        principal: Option<&HeaderValue>,
    ) -> Result<Prepared, HttpError> {
        let url = Url::parse(&request.url)
            .map_err(|e| HttpError::InvalidRequest(format!("bad URL {:?}: {e}", request.url)))?;
        policy.check(&url)?;
        let mut headers = self.headers_for(policy, &request.headers, &url, principal)?;
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
        let slot = outbound_slot(policy, deadline).await?;
        let span = client_span(&method, &url, &mut headers);
        Ok(Prepared {
            request: TransportRequest {
                method,
                url,
                headers,
                body: request.body,
                timeout,
            },
            span,
            cap,
            slot,
        })
    }

    /// The headers of a request to `url`: the guest's, then the policy's for its
    /// origin, then the host's own.
    fn headers_for(
        &self,
        policy: &OutboundPolicy,
        guest: &[(String, String)],
        url: &Url,
        principal: Option<&HeaderValue>,
    ) -> Result<HeaderMap, HttpError> {
        let mut headers = guest_headers(guest)?;
        if let Some(origin) = &Origin::of(url) {
            for (to, name, value) in &policy.headers {
                if to == origin {
                    headers.insert(name.clone(), value.clone());
                }
            }
            // After the policy's headers: not even a manifest sets the host's own.
            inject_host_headers(
                &mut headers,
                origin,
                self.wrapper.as_ref(),
                self.credential.as_ref(),
                principal,
            );
        }
        Ok(headers)
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
async fn read_response(response: TransportResponse, cap: u64) -> Result<Response, HttpError> {
    if response.content_length.is_some_and(|len| len > cap) {
        return Err(HttpError::TooLarge(cap));
    }
    let TransportResponse {
        status,
        headers,
        body: mut stream,
        ..
    } = response;
    let mut body = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        if body.len() as u64 + chunk.len() as u64 > cap {
            return Err(HttpError::TooLarge(cap));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        headers: visible_headers(headers),
        body,
    })
}

/// Response headers as the guest may see them: without the host's identity headers (a
/// wrapper that echoes request headers must not hand the credential to the adapter).
fn visible_headers(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.retain(|(name, _)| !is_host_identity_header(name));
    headers
}

/// A request ready to leave, and what its exchange is bound by.
struct Prepared {
    request: TransportRequest,
    span: tracing::Span,
    cap: u64,
    slot: tokio::sync::OwnedSemaphorePermit,
}

/// One of the adapter's concurrent outbound requests (its policy's limit).
async fn outbound_slot(
    policy: &OutboundPolicy,
    deadline: Instant,
) -> Result<tokio::sync::OwnedSemaphorePermit, HttpError> {
    // Waiting for a slot counts against the task's deadline like the request does.
    let slot = tokio::time::timeout_at(deadline.into(), policy.concurrency.clone().acquire_owned())
        .await
        .map_err(|_| {
            HttpError::Timeout(format!(
                "the adapter's {} concurrent outbound requests stayed busy until the deadline",
                policy.max_concurrent_requests
            ))
        })?
        .expect("the semaphore is never closed");
    Ok(slot)
}

/// The client span of a request, its context put in `headers`.
fn client_span(method: &http::Method, url: &Url, headers: &mut HeaderMap) -> tracing::Span {
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
        propagator.inject_context(&context, &mut HeaderInjector(headers))
    });
    span
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

/// The guest's headers minus the host-owned ones; invalid names or values are refused,
/// and so is a request that tries to set a host identity header (a forgery attempt).
fn guest_headers(pairs: &[(String, String)]) -> Result<HeaderMap, HttpError> {
    let mut headers = HeaderMap::with_capacity(pairs.len() + 2);
    for (name, value) in pairs {
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| HttpError::InvalidRequest(format!("bad header name {name:?}")))?;
        if is_host_identity_header(name.as_str()) {
            return Err(HttpError::Denied(format!(
                "header {name} is set by the host only"
            )));
        }
        if HOST_OWNED_HEADERS.contains(&name.as_str()) {
            continue;
        }
        let value = HeaderValue::from_str(value)
            .map_err(|_| HttpError::InvalidRequest(format!("bad value for header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}

fn http_method(method: Method) -> http::Method {
    match method {
        Method::Get => http::Method::GET,
        Method::Post => http::Method::POST,
        Method::Put => http::Method::PUT,
        Method::Patch => http::Method::PATCH,
        Method::Delete => http::Method::DELETE,
        Method::Head => http::Method::HEAD,
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

#[cfg(test)]
mod tests {
    use super::*;

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
        assert!(matches!(
            guest_headers(&[("X-Federation-Principal".into(), "admin".into())]),
            Err(HttpError::Denied(_))
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

    /// Answers every request with a response echoing the credential header, and keeps
    /// the headers each request carried.
    #[derive(Default)]
    struct Recording(std::sync::Mutex<Vec<(Url, HeaderMap)>>);

    impl Transport for Recording {
        fn send(
            &self,
            request: TransportRequest,
        ) -> BoxFuture<'static, Result<TransportResponse, HttpError>> {
            self.0
                .lock()
                .unwrap()
                .push((request.url.clone(), request.headers.clone()));
            let echoed = request
                .headers
                .get(HOST_CREDENTIAL_HEADER)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default();
            Box::pin(async move {
                Ok(TransportResponse {
                    status: 200,
                    headers: vec![(HOST_CREDENTIAL_HEADER.into(), echoed.clone())],
                    content_length: Some(echoed.len() as u64),
                    body: Box::pin(futures::stream::iter([Ok(bytes::Bytes::from(echoed))])),
                })
            })
        }
    }

    use crate::outbound::{HOST_CREDENTIAL_HEADER, PRINCIPAL_HEADER};

    fn get(url: &str, headers: Vec<(String, String)>) -> Request {
        Request {
            method: Method::Get,
            url: url.into(),
            headers,
            body: vec![],
            timeout_ms: None,
        }
    }

    #[tokio::test]
    async fn the_credential_goes_to_the_wrapper_only_and_the_guest_cannot_forge_or_read_it() {
        let wrapper = Origin::of(&Url::parse("https://wrapper:8443").unwrap()).unwrap();
        let other = Origin::of(&Url::parse("https://api.example").unwrap()).unwrap();
        let transport = Arc::new(Recording::default());
        let http = OutboundHttp::with_transport(
            OutboundLimits {
                max_response_bytes: 1024,
                default_timeout: Duration::from_secs(10),
                connect_timeout: Duration::from_secs(1),
            },
            transport.clone(),
        )
        .with_credential(HostCredential::new(wrapper.clone(), "host-s3cret"))
        .for_wrapper(wrapper.clone());
        let policy = OutboundPolicy::allow_only([wrapper, other]);
        let alice = HeaderValue::from_static("alice");
        let deadline = Instant::now() + Duration::from_secs(10);

        let to_wrapper = http
            .send(
                &policy,
                get("https://wrapper:8443/v1/run_crew", vec![]),
                deadline,
                Some(&alice),
            )
            .await
            .unwrap();
        http.send(
            &policy,
            get("https://api.example/x", vec![]),
            deadline,
            Some(&alice),
        )
        .await
        .unwrap();
        let sent = transport.0.lock().unwrap().clone();
        assert_eq!(sent[0].1[HOST_CREDENTIAL_HEADER], "host-s3cret");
        assert_eq!(sent[0].1[PRINCIPAL_HEADER], "alice");
        assert!(sent[1].1.get(HOST_CREDENTIAL_HEADER).is_none());
        assert!(sent[1].1.get(PRINCIPAL_HEADER).is_none());
        // A wrapper echoing it in a response header does not hand it to the guest.
        assert!(
            to_wrapper
                .headers
                .iter()
                .all(|(name, _)| name != HOST_CREDENTIAL_HEADER)
        );

        for name in [
            "x-federation-host-credential",
            "X-Federation-Host-Credential",
            "x-federation-principal",
        ] {
            let forged = http
                .send(
                    &policy,
                    get(
                        "https://api.example/x",
                        vec![(name.into(), "forged".into())],
                    ),
                    deadline,
                    Some(&alice),
                )
                .await;
            assert!(matches!(forged, Err(HttpError::Denied(_))), "{forged:?}");
        }
        assert_eq!(transport.0.lock().unwrap().len(), 2, "nothing forged left");
    }
}
