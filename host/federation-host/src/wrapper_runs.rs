//! The agent wrapper's run API, for what the host does about a task outside the
//! adapter: cancel it (`POST /v1/sessions/{sid}/runs/{rid}/cancel`) when its caller
//! went away, and read its status (`GET /v1/sessions/{sid}/runs/{rid}`) for
//! `GetAgentTask` on any replica, and follow its events
//! (`GET /v1/sessions/{sid}/runs/{rid}/events?after=N`) for `WatchAgentTask`. Runs are
//! keyed by (federation_session_id, request_id). Also the wrapper's agent registry
//! (`GET /v1/agents`), for `ListAgents`.
//!
//! Its clients are built like the adapters' ([`NetSettings`]: rustls, the configured
//! CA, no proxy unless configured), and every call carries the host's credential and
//! the caller's principal.

use std::time::Duration;

use opentelemetry_http::HeaderInjector;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use futures::{Stream, StreamExt};

use federation_runtime::outbound::{HostCredential, NetSettings, Origin, inject_host_headers};
use federation_wire::{Agent, AgentList, Event, RunRecord, WrapperError, headers, routes};

const TIMEOUT: Duration = Duration::from_secs(10);
/// Longest line of a run's event stream (its `completed` event carries the reply).
const MAX_EVENT_LINE: usize = 16 << 20;

/// Why `GET /v1/agents` gave no agent list.
#[derive(Debug, thiserror::Error)]
pub enum AgentsError {
    #[error("{0}")]
    Unreachable(String),
    #[error("{0}")]
    Status(WrapperError),
    #[error("the wrapper's GET /v1/agents answered no agent list: {0}")]
    NoList(String),
}

/// Why a call to the wrapper's run API failed.
#[derive(Debug, thiserror::Error)]
pub enum RunApiError {
    #[error("the wrapper has no run {request_id:?} in session {session:?}")]
    NotFound { session: String, request_id: String },
    #[error("the wrapper's run API failed: {0}")]
    Failed(String),
    /// The wrapper refused the call (401: the host's credential; 403: the caller's
    /// principal does not own the session).
    #[error("the wrapper refused: {0}")]
    Rejected(WrapperError),
}

pub struct WrapperRuns {
    client: reqwest::Client,
    /// For event streams, which last as long as the run: no overall timeout.
    follow: reqwest::Client,
    base: String,
    origin: Option<Origin>,
    credential: Option<HostCredential>,
}

impl WrapperRuns {
    pub fn new(
        wrapper_url: &str,
        net: &NetSettings,
        credential: Option<HostCredential>,
    ) -> anyhow::Result<Self> {
        Ok(WrapperRuns {
            client: net.client(TIMEOUT)?,
            follow: net.client_builder()?.connect_timeout(TIMEOUT).build()?,
            base: wrapper_url.trim_end_matches('/').to_string(),
            origin: url::Url::parse(wrapper_url)
                .ok()
                .as_ref()
                .and_then(Origin::of),
            credential,
        })
    }

    /// The headers of the host's own wrapper calls: the current trace's (the host's
    /// calls are part of the caller's trace, like the adapter's own) and the host's
    /// identity headers: the principal the task runs for, the host's credential.
    fn headers(&self, principal: &str) -> http::HeaderMap {
        let mut headers = http::HeaderMap::new();
        let context = tracing::Span::current().context();
        opentelemetry::global::get_text_map_propagator(|propagator| {
            propagator.inject_context(&context, &mut HeaderInjector(&mut headers))
        });
        if let Some(origin) = &self.origin {
            inject_host_headers(
                &mut headers,
                origin,
                Some(origin),
                self.credential.as_ref(),
                http::HeaderValue::from_str(principal).ok().as_ref(),
            );
        }
        headers
    }

    /// The run's events with seq > `after`, as the wrapper replays and follows them; the
    /// stream ends after the terminal event (or with an error when it breaks off).
    pub async fn events(
        &self,
        session: &str,
        request_id: &str,
        after: u64,
        principal: &str,
    ) -> Result<impl Stream<Item = Result<Event, RunApiError>> + Send + 'static, RunApiError> {
        let url = routes::url(&self.base, &routes::events(session, request_id, after));
        let request = self
            .follow
            .get(url)
            .header(http::header::ACCEPT, routes::NDJSON)
            .headers(self.headers(principal));
        let response = send(request, session, request_id).await?;
        let state = (response.bytes_stream().boxed(), Vec::new(), false);
        Ok(futures::stream::unfold(
            state,
            |(mut body, mut buffer, done)| async move {
                if done {
                    return None;
                }
                loop {
                    if let Some(end) = buffer.iter().position(|b| *b == b'\n') {
                        let line: Vec<u8> = buffer.drain(..=end).collect();
                        if line.iter().all(u8::is_ascii_whitespace) {
                            continue;
                        }
                        let event = serde_json::from_slice::<Event>(&line).map_err(|e| {
                            RunApiError::Failed(format!(
                                "the wrapper sent an event that is not one ({e}): {}",
                                federation_wire::excerpt(&line)
                            ))
                        });
                        let failed = event.is_err();
                        return Some((event, (body, buffer, failed)));
                    }
                    if buffer.len() > MAX_EVENT_LINE {
                        let error = RunApiError::Failed("an event line is too long".into());
                        return Some((Err(error), (body, buffer, true)));
                    }
                    match body.next().await {
                        Some(Ok(chunk)) => buffer.extend_from_slice(&chunk),
                        Some(Err(e)) => {
                            let error = RunApiError::Failed(e.to_string());
                            return Some((Err(error), (body, buffer, true)));
                        }
                        None => return None,
                    }
                }
            },
        ))
    }

    /// The run's record, asked for `principal`.
    pub async fn status(
        &self,
        session: &str,
        request_id: &str,
        principal: &str,
    ) -> Result<RunRecord, RunApiError> {
        let url = routes::url(&self.base, &routes::run(session, request_id));
        let request = self.client.get(url).headers(self.headers(principal));
        self.call(request, session, request_id).await
    }

    /// Asks the wrapper to stop the run at its next step, for `principal`; the record
    /// as it stands.
    pub async fn cancel(
        &self,
        session: &str,
        request_id: &str,
        principal: &str,
    ) -> Result<RunRecord, RunApiError> {
        let url = routes::url(&self.base, &routes::cancel(session, request_id));
        let request = self.client.post(url).headers(self.headers(principal));
        self.call(request, session, request_id).await
    }

    /// The agents the wrapper can run, asked for `principal`.
    pub async fn agents(&self, principal: &str) -> Result<Vec<Agent>, AgentsError> {
        let url = routes::url(&self.base, routes::AGENTS);
        let response = self
            .client
            .get(url)
            .headers(self.headers(principal))
            .send()
            .await
            .map_err(|e| AgentsError::Unreachable(e.to_string()))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(headers::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .bytes()
            .await
            .map_err(|e| AgentsError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(AgentsError::Status(WrapperError::from_reply(
                status.as_u16(),
                &body,
                retry_after.as_deref(),
            )));
        }
        serde_json::from_slice::<AgentList>(&body)
            .map(|list| list.agents)
            .map_err(|e| AgentsError::NoList(e.to_string()))
    }

    async fn call(
        &self,
        request: reqwest::RequestBuilder,
        session: &str,
        request_id: &str,
    ) -> Result<RunRecord, RunApiError> {
        let body = send(request, session, request_id)
            .await?
            .bytes()
            .await
            .map_err(|e| RunApiError::Failed(e.to_string()))?;
        serde_json::from_slice(&body).map_err(|e| RunApiError::Failed(format!("bad record: {e}")))
    }
}

/// Sends a run API request; a 2xx response comes back for its body, anything else as
/// the error it means (404: no such run; 401/403: refused; else failed).
async fn send(
    request: reqwest::RequestBuilder,
    session: &str,
    request_id: &str,
) -> Result<reqwest::Response, RunApiError> {
    let response = request
        .send()
        .await
        .map_err(|e| RunApiError::Failed(e.to_string()))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(RunApiError::NotFound {
            session: session.to_string(),
            request_id: request_id.to_string(),
        });
    }
    let body = response.bytes().await.unwrap_or_default();
    if matches!(status.as_u16(), 401 | 403) {
        // The wrapper refused the host (401) or the caller's principal (403).
        return Err(RunApiError::Rejected(WrapperError::from_reply(
            status.as_u16(),
            &body,
            None,
        )));
    }
    Err(RunApiError::Failed(format!(
        "HTTP {status}: {}",
        federation_wire::excerpt(&body)
    )))
}

/// Cancels a task's wrapper run when dropped armed: the caller cancelled or went away
/// (tonic drops the handler) or the host gave up at the deadline.
pub struct CancelOnDrop {
    runs: std::sync::Arc<WrapperRuns>,
    session: String,
    request_id: String,
    principal: String,
    armed: bool,
}

impl CancelOnDrop {
    pub fn new(
        runs: std::sync::Arc<WrapperRuns>,
        session: String,
        request_id: String,
        principal: String,
    ) -> Self {
        CancelOnDrop {
            runs,
            session,
            request_id,
            principal,
            armed: true,
        }
    }

    /// The run ended on its own; nothing to cancel.
    pub fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (runs, session, request_id, principal) = (
            self.runs.clone(),
            std::mem::take(&mut self.session),
            std::mem::take(&mut self.request_id),
            std::mem::take(&mut self.principal),
        );
        let span = tracing::Span::current();
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        handle.spawn(tracing::Instrument::instrument(
            async move {
                match runs.cancel(&session, &request_id, &principal).await {
                    Ok(record) => tracing::info!(%session, %request_id, status = %record.status, "asked the wrapper to cancel the run"),
                    // The adapter may never have reached the wrapper.
                    Err(RunApiError::NotFound { .. }) => {
                        tracing::debug!(%session, %request_id, "no wrapper run to cancel")
                    }
                    Err(error) => tracing::warn!(%session, %request_id, %error, "could not cancel the wrapper run"),
                }
            },
            span,
        ));
    }
}
