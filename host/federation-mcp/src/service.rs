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
use federation_proto::{AgentInfo, ListAgentsRequest, task_event};
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
        let agents = self.agents(call).await?;
        let Some(agent) = agents.iter().find(|a| mapping::tool_name(&a.name) == tool) else {
            return Err(error::invalid_params(format!(
                "unknown tool {tool:?} (tools/list lists them)"
            )));
        };
        let backend = agent.backends.first().cloned().unwrap_or_default();
        let task = mapping::task_request(agent, &backend, request.arguments)?;
        let session = task.federation_session_id.clone();
        let mut events = match self.service.stream_agent_task(call.request(task)).await {
            Ok(stream) => stream.into_inner(),
            Err(status) if error::is_bad_argument(&status) => {
                return Err(error::bad_argument(&status));
            }
            // Refused before it started (busy session, limits, not allowed): the
            // tool's error, so that the model reads why.
            Err(status) => {
                let details = error::status_details_json(&status);
                return Ok(mapping::failure_result(
                    status.code(),
                    status.message(),
                    details,
                    &session,
                ));
            }
        };
        let mut step = 0u32;
        loop {
            let event = tokio::select! {
                event = events.next() => event,
                // The client cancelled the call: dropping the stream stops the run.
                () = cancelled.cancelled() => {
                    return Ok(mapping::failure_result(
                        Code::Cancelled,
                        "the client cancelled the call",
                        Vec::new(),
                        &session,
                    ));
                }
            };
            let event = match event {
                Some(Ok(event)) => event,
                Some(Err(status)) => {
                    let details = error::status_details_json(&status);
                    return Ok(mapping::failure_result(
                        status.code(),
                        status.message(),
                        details,
                        &session,
                    ));
                }
                None => {
                    return Ok(mapping::failure_result(
                        Code::Unavailable,
                        "the task's event stream ended before its last event",
                        Vec::new(),
                        &session,
                    ));
                }
            };
            let message = match &event.event {
                Some(task_event::Event::Started(started)) => {
                    format!("started on backend {}", started.backend)
                }
                Some(task_event::Event::Progress(progress)) => mapping::progress_message(progress),
                Some(task_event::Event::Completed(response)) => {
                    return Ok(mapping::completed_result(response, &session));
                }
                Some(task_event::Event::InputRequired(response)) => {
                    return Ok(mapping::input_required_result(response, &session, &tool));
                }
                Some(task_event::Event::Failed(failed)) => {
                    return Ok(mapping::failed_result(failed, &session));
                }
                None => continue,
            };
            if let Some((token, peer)) = &progress {
                step += 1;
                let notification = ProgressNotificationParam::new(token.clone(), f64::from(step))
                    .with_message(message);
                // A client that stopped listening does not stop the run.
                if let Err(error) = peer.notify_progress(notification).await {
                    tracing::debug!(%error, "an MCP progress notification was not delivered");
                }
            }
        }
    }
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
