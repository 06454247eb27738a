//! The MCP server: `tools/list` lists the agents `ListAgents` lists (with a loaded
//! backend), `tools/call` runs one as the host's `StreamAgentTask`, called in-process
//! with the caller's authenticated request (principal, `traceparent`, deadline), so
//! that admission, session ownership, limits, run records and events are the gRPC
//! API's own. The run's events become progress notifications when the caller sent a
//! `progressToken`; a call the client cancels (or whose connection drops) stops the
//! run, as a gRPC stream that ends early does.

use std::sync::Arc;

use federation_proto::doors;
use federation_proto::federation_service_server::FederationService;
use federation_proto::{AgentInfo, ListAgentsRequest, TaskEvent, TaskRequest, task_event};
use futures::StreamExt;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, Implementation, ListToolsResult,
    PaginatedRequestParams, ProgressNotificationParam, ProgressToken, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::{Peer, RequestContext};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use tonic::Code;
use tracing::Instrument;

use crate::error;
use crate::mapping;

/// One authenticated call: the principal and what the host's own requests carry
/// (metadata and the authenticator's extensions). The HTTP layer puts it in the
/// request's extensions; the SDK hands the request's parts to the handler.
pub type Call = federation_proto::doors::Caller;

/// The MCP door's state: the host's service.
#[derive(Clone)]
pub struct Door {
    pub service: Arc<dyn FederationService>,
}

/// The caller of a request (set by `http::authenticate`; absent only if the door is
/// mounted without it, which is a bug, not a caller's mistake).
fn call_of(context: &RequestContext<RoleServer>) -> Result<(Call, http::HeaderMap), ErrorData> {
    let parts = context
        .extensions
        .get::<http::request::Parts>()
        .ok_or_else(|| ErrorData::internal_error("no HTTP request in the MCP call", None))?;
    let call = parts
        .extensions
        .get::<Call>()
        .cloned()
        .ok_or_else(|| ErrorData::internal_error("an unauthenticated MCP call", None))?;
    Ok((call, parts.headers.clone()))
}

/// The server span of one call, continuing the caller's `traceparent`.
fn server_span(method: &str, tool: &str, call: &Call, headers: &http::HeaderMap) -> tracing::Span {
    use opentelemetry_http::HeaderExtractor;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    let span = tracing::info_span!(
        "mcp.server",
        otel.name = %format!("mcp {method}"),
        otel.kind = "server",
        rpc.system = "jsonrpc",
        rpc.service = "mcp",
        rpc.method = %method,
        mcp.tool = %tool,
        enduser.id = %call.principal,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
    span
}

impl Door {
    /// The agents with a loaded backend that the caller may list.
    async fn agents(&self, call: &Call) -> Result<Vec<AgentInfo>, ErrorData> {
        let reply = self
            .service
            .list_agents(call.request(ListAgentsRequest::default()))
            .await
            .map_err(|status| error::internal(&status))?;
        Ok(doors::runnable(reply.into_inner().agents))
    }

    /// Runs one `tools/call` to the end of its turn.
    async fn call(
        &self,
        call: &Call,
        request: CallToolRequestParams,
        progress: Option<(ProgressToken, Peer<RoleServer>)>,
        cancelled: tokio_util::sync::CancellationToken,
    ) -> Result<CallToolResult, ErrorData> {
        let tool = request.name.to_string();
        let task = self.task_request(call, &tool, request.arguments).await?;
        let session = task.federation_session_id.clone();
        let events = match self.service.stream_agent_task(call.request(task)).await {
            Ok(stream) => stream.into_inner(),
            Err(status) if error::is_bad_argument(&status) => {
                return Err(error::bad_argument(&status));
            }
            // Refused before it started (busy session, limits, not allowed): the
            // tool's error, so that the model reads why.
            Err(status) => return Ok(status_result(&status, &session)),
        };
        let turn = Turn {
            session: &session,
            tool: &tool,
            progress,
        };
        Ok(turn.follow(events, cancelled).await)
    }

    /// The host's task for a call of `tool` with `arguments`: the agent the tool is, on
    /// its first backend.
    async fn task_request(
        &self,
        call: &Call,
        tool: &str,
        arguments: Option<rmcp::model::JsonObject>,
    ) -> Result<TaskRequest, ErrorData> {
        let agents = self.agents(call).await?;
        let Some(agent) = agents.iter().find(|a| mapping::tool_name(&a.name) == tool) else {
            return Err(error::invalid_params(format!(
                "unknown tool {tool:?} (tools/list lists them)"
            )));
        };
        let backend = agent.backends.first().cloned().unwrap_or_default();
        mapping::task_request(agent, &backend, arguments)
    }
}

/// A status the host answered as the tool's error, so that the model reads why.
fn status_result(status: &tonic::Status, session: &str) -> CallToolResult {
    let details = error::status_details_json(status);
    mapping::failure_result(status.code(), status.message(), details, session)
}

/// One call's turn, once the run started: its session, its tool, and where its
/// progress goes (when the caller sent a `progressToken`).
struct Turn<'a> {
    session: &'a str,
    tool: &'a str,
    progress: Option<(ProgressToken, Peer<RoleServer>)>,
}

impl Turn<'_> {
    /// Follows the run's `events` to the end of its turn (or until the client cancels
    /// the call), each event before the end a progress notification.
    async fn follow(
        &self,
        mut events: impl futures::Stream<Item = Result<TaskEvent, tonic::Status>> + Unpin,
        cancelled: tokio_util::sync::CancellationToken,
    ) -> CallToolResult {
        let session = self.session;
        let mut step = 0u32;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                // The client cancelled the call: dropping the stream stops the run.
                () = cancelled.cancelled() => {
                    return mapping::failure_result(
                        Code::Cancelled,
                        "the client cancelled the call",
                        Vec::new(),
                        session,
                    );
                }
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(status)) => return status_result(&status, session),
                None => {
                    return mapping::failure_result(
                        Code::Unavailable,
                        "the task's event stream ended before its last event",
                        Vec::new(),
                        session,
                    );
                }
            };
            match self.read(&event) {
                Read::Progress(message) => {
                    step += 1;
                    self.notify(step, message).await;
                }
                Read::End(result) => return result,
                Read::Nothing => {}
            }
        }
    }

    /// What one of the run's events is to the call.
    fn read(&self, event: &TaskEvent) -> Read {
        let session = self.session;
        match &event.event {
            Some(task_event::Event::Started(started)) => {
                Read::Progress(format!("started on backend {}", started.backend))
            }
            Some(task_event::Event::Progress(progress)) => {
                Read::Progress(mapping::progress_message(progress))
            }
            Some(task_event::Event::Completed(response)) => {
                Read::End(mapping::completed_result(response, session))
            }
            Some(task_event::Event::InputRequired(response)) => {
                Read::End(mapping::input_required_result(response, session, self.tool))
            }
            Some(task_event::Event::Failed(failed)) => {
                Read::End(mapping::failed_result(failed, session))
            }
            None => Read::Nothing,
        }
    }

    /// Progress notification `step` with `message`, when the caller asked for them.
    async fn notify(&self, step: u32, message: String) {
        let Some((token, peer)) = &self.progress else {
            return;
        };
        let notification =
            ProgressNotificationParam::new(token.clone(), f64::from(step)).with_message(message);
        // A client that stopped listening does not stop the run.
        if let Err(error) = peer.notify_progress(notification).await {
            tracing::debug!(%error, "an MCP progress notification was not delivered");
        }
    }
}

/// One of a run's events, to the call: a progress message, the call's result, or
/// nothing to tell.
enum Read {
    Progress(String),
    End(CallToolResult),
    Nothing,
}

impl ServerHandler for Door {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("agent-federation", env!("CARGO_PKG_VERSION"))
                    .with_title("agent federation"),
            )
            .with_instructions(
                "Each tool runs one federated agent (CrewAI, LangGraph, ...). Give it a `goal`; \
                 pass the `session_id` a result returns to go on in the same session. A \
                 result with status \"input_required\" asks a question: answer it by calling \
                 the same tool with that session_id and `resume`.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let (call, headers) = call_of(&context)?;
        let span = server_span("tools/list", "", &call, &headers);
        let agents = self.agents(&call).instrument(span).await?;
        Ok(ListToolsResult::with_all_items(
            agents.iter().map(mapping::tool_of).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let (call, headers) = call_of(&context)?;
        let span = server_span("tools/call", &request.name, &call, &headers);
        let progress = context
            .meta
            .get_progress_token()
            .map(|token| (token, context.peer.clone()));
        self.call(&call, request, progress, context.ct.clone())
            .instrument(span)
            .await
            .map(CallToolResponse::from)
    }
}
