//! The HTTP side: agent cards, and JSON-RPC 2.0 at each agent's URL with Server-Sent
//! Events for the streaming methods. Every call is read within the body limit, checked
//! for `A2A-Version: 1.0`, authenticated as the gRPC API does it, and runs in a server
//! span that continues the caller's `traceparent`. A caller's mistake is a JSON-RPC
//! error (HTTP 200, so clients see its code), a missing credential HTTP 401, an
//! oversized body 413, an unknown agent 404: never a 500.

use std::{convert::Infallible, sync::Arc};

use axum::{
    Json, Router,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, Uri, header},
    response::{IntoResponse, Response, Sse, sse::Event},
    routing::{get, post},
};
use federation_proto::doors;
use futures::StreamExt;
use opentelemetry_http::HeaderExtractor;
use serde_json::{Value, json};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::card::card;
use crate::error::{A2aError, code};
use crate::service::{Call, Door, Events};
use crate::types::{
    GetTaskRequest, ListTasksRequest, PROTOCOL_VERSION, SendMessageRequest, SendMessageResponse,
    TaskIdRequest,
};
use crate::{A2aConfig, Authenticator};

pub(crate) struct Shared {
    pub door: Door,
    pub auth: Arc<dyn Authenticator>,
    pub config: A2aConfig,
}

pub(crate) fn routes(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/agents", get(list_cards))
        .route(
            "/agents/{agent}/.well-known/agent-card.json",
            get(agent_card),
        )
        .route("/agents/{agent}", post(json_rpc))
        .with_state(shared)
}

/// The scheme and authority callers reach this listener at.
fn base_url(shared: &Shared, headers: &HeaderMap) -> String {
    if let Some(url) = &shared.config.public_url {
        return url.trim_end_matches('/').to_string();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    format!(
        "{}://{host}",
        if shared.config.tls { "https" } else { "http" }
    )
}

fn plain_error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({"error": message.into()}))).into_response()
}

async fn list_cards(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    match shared.door.agents().await {
        Ok(agents) => {
            let base = base_url(&shared, &headers);
            let cards: Vec<_> = agents
                .iter()
                .map(|a| card(a, &base, shared.config.security))
                .collect();
            Json(json!({ "agents": cards })).into_response()
        }
        Err(status) => plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("listing the agents failed: {}", status.message()),
        ),
    }
}

async fn agent_card(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    headers: HeaderMap,
) -> Response {
    match shared.door.agents().await {
        Ok(agents) => match agents.iter().find(|a| a.name == agent) {
            Some(found) => {
                let card = card(found, &base_url(&shared, &headers), shared.config.security);
                ([(header::CACHE_CONTROL, "max-age=60")], Json(card)).into_response()
            }
            None => plain_error(
                StatusCode::NOT_FOUND,
                format!("no agent {agent:?} with a loaded backend (GET /agents lists them)"),
            ),
        },
        Err(status) => plain_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("listing the agents failed: {}", status.message()),
        ),
    }
}

/// A JSON-RPC response (or error) with `id`.
fn rpc_reply(id: &Value, outcome: Result<Value, A2aError>) -> Value {
    match outcome {
        Ok(result) => json!({"jsonrpc": "2.0", "id": id, "result": result}),
        Err(error) => json!({"jsonrpc": "2.0", "id": id, "error": error.to_json()}),
    }
}

fn rpc_error(status: StatusCode, id: &Value, error: A2aError) -> Response {
    (status, Json(rpc_reply(id, Err(error)))).into_response()
}

/// The JSON-RPC request of a body: its id, method and params.
fn parse_request(body: &[u8]) -> Result<(Value, String, Value), (Value, A2aError)> {
    let request: Value = serde_json::from_slice(body).map_err(|e| {
        (
            Value::Null,
            A2aError::new(code::PARSE_ERROR, format!("invalid JSON payload: {e}")),
        )
    })?;
    let id = request.get("id").cloned().unwrap_or(Value::Null);
    let invalid = |message: &str| (id.clone(), A2aError::new(code::INVALID_REQUEST, message));
    if request.get("jsonrpc") != Some(&json!("2.0")) {
        return Err(invalid("not a JSON-RPC 2.0 request (\"jsonrpc\": \"2.0\")"));
    }
    if !(id.is_string() || id.is_number() || id.is_null()) {
        return Err(invalid("the id must be a string, a number or null"));
    }
    let Some(method) = request.get("method").and_then(Value::as_str) else {
        return Err(invalid("the method must be a string"));
    };
    let params = request.get("params").cloned().unwrap_or(json!({}));
    Ok((id, method.to_string(), params))
}

/// `A2A-Version` (header, or query parameter): 1.0 only; none means 0.3 (spec §3.6.2).
fn check_version(headers: &HeaderMap, uri: &Uri) -> Result<(), A2aError> {
    let from_query = uri.query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("A2A-Version="))
            .map(str::to_string)
    });
    let version = headers
        .get("a2a-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(from_query)
        .unwrap_or_default();
    let version = version.trim();
    let major_minor: String = version.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
    if major_minor == PROTOCOL_VERSION {
        return Ok(());
    }
    let asked = if version.is_empty() {
        "none (0.3)"
    } else {
        version
    };
    Err(A2aError::with_reason(
        code::VERSION_NOT_SUPPORTED,
        "VERSION_NOT_SUPPORTED",
        format!(
            "A2A version {asked} is not supported: send the header A2A-Version: {PROTOCOL_VERSION}"
        ),
    ))
}

/// The server span of one call, continuing the caller's `traceparent`.
fn server_span(agent: &str, method: &str, headers: &HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "a2a.server",
        otel.name = %format!("a2a {method}"),
        otel.kind = "server",
        rpc.system = "jsonrpc",
        rpc.service = "lf.a2a.v1.A2AService",
        rpc.method = %method,
        a2a.agent = %agent,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    });
    let _ = span.set_parent(parent);
    span
}

/// The caller, authenticated from the request's headers as the gRPC API would be.
fn authenticate(
    shared: &Shared,
    headers: &HeaderMap,
    extensions: http::Extensions,
    span: tracing::Span,
) -> Result<Call, tonic::Status> {
    let doors::Caller {
        principal,
        metadata,
        extensions,
    } = doors::authenticate(shared.auth.as_ref(), headers, extensions)?;
    Ok(Call {
        principal,
        metadata,
        extensions,
        span,
    })
}

async fn json_rpc(
    State(shared): State<Arc<Shared>>,
    Path(agent): Path<String>,
    uri: Uri,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Response {
    let (parts, body) = request.into_parts();
    let limit = shared.config.max_body_bytes;
    let Some(body) = read_bounded(body, limit).await else {
        let error = A2aError::new(
            code::INVALID_REQUEST,
            format!("the request body is over {limit} bytes"),
        );
        return rpc_error(StatusCode::PAYLOAD_TOO_LARGE, &Value::Null, error);
    };
    let (id, method, params) = match parse_request(&body) {
        Ok(parsed) => parsed,
        Err((id, error)) => return rpc_error(StatusCode::OK, &id, error),
    };
    if let Err(error) = check_version(&headers, &uri) {
        return rpc_error(StatusCode::OK, &id, error);
    }
    let span = server_span(&agent, &method, &headers);
    let call = match authenticate(&shared, &headers, parts.extensions, span) {
        Ok(call) => call,
        Err(status) => {
            let error = A2aError::new(code::UNAUTHENTICATED, status.message());
            let mut response = rpc_error(StatusCode::UNAUTHORIZED, &id, error);
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                "Bearer".parse().expect("a header"),
            );
            return response;
        }
    };
    dispatch(&shared, &call, &agent, &id, &method, params).await
}

/// The body if it holds at most `limit` bytes. A larger one is read on (and thrown
/// away) up to a few times the limit, so that the client, still sending, gets the 413
/// instead of a connection closed under it; past that the connection is dropped.
async fn read_bounded(body: axum::body::Body, limit: usize) -> Option<axum::body::Bytes> {
    let mut chunks = body.into_data_stream();
    let mut kept = Vec::new();
    let mut seen = 0usize;
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.ok()?;
        seen += chunk.len();
        if seen <= limit {
            kept.extend_from_slice(&chunk);
        } else if seen > limit.saturating_mul(4) {
            return None;
        }
    }
    (seen <= limit).then(|| kept.into())
}

fn params<T: serde::de::DeserializeOwned>(params: Value) -> Result<T, A2aError> {
    serde_json::from_value(params).map_err(|e| A2aError::invalid_params(format!("params: {e}")))
}

async fn dispatch(
    shared: &Shared,
    call: &Call,
    agent: &str,
    id: &Value,
    method: &str,
    raw: Value,
) -> Response {
    let door = &shared.door;
    let outcome = match method {
        "SendMessage" | "SendStreamingMessage" => {
            let request: SendMessageRequest = match params(raw) {
                Ok(request) => request,
                Err(error) => return rpc_error(StatusCode::OK, id, error),
            };
            return send(
                shared,
                call,
                agent,
                id,
                method == "SendStreamingMessage",
                request,
            )
            .await;
        }
        "GetTask" => match params::<GetTaskRequest>(raw) {
            Ok(request) => door
                .get(call, &request.id, request.history_length)
                .await
                .map(to_json),
            Err(error) => Err(error),
        },
        "CancelTask" => match params::<TaskIdRequest>(raw) {
            Ok(request) => door.cancel(call, &request.id).await.map(to_json),
            Err(error) => Err(error),
        },
        "ListTasks" => match params::<ListTasksRequest>(raw) {
            Ok(request) => door.list(call, &request).map(to_json),
            Err(error) => Err(error),
        },
        "SubscribeToTask" => {
            let request: TaskIdRequest = match params(raw) {
                Ok(request) => request,
                Err(error) => return rpc_error(StatusCode::OK, id, error),
            };
            return match door.subscribe(call, &request.id).await {
                Ok(events) => sse(id.clone(), events),
                Err(error) => rpc_error(StatusCode::OK, id, error),
            };
        }
        "CreateTaskPushNotificationConfig"
        | "GetTaskPushNotificationConfig"
        | "ListTaskPushNotificationConfigs"
        | "DeleteTaskPushNotificationConfig" => Err(A2aError::with_reason(
            code::PUSH_NOT_SUPPORTED,
            "PUSH_NOTIFICATION_NOT_SUPPORTED",
            "push notifications are not supported (the card says so): stream or poll",
        )),
        "GetExtendedAgentCard" => Err(A2aError::unsupported(
            "there is no extended agent card (the card says so)",
        )),
        other => Err(A2aError::new(
            code::METHOD_NOT_FOUND,
            format!("method {other:?} not found"),
        )),
    };
    (StatusCode::OK, Json(rpc_reply(id, outcome))).into_response()
}

fn to_json<T: serde::Serialize>(value: T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// `SendMessage` (answers when the turn ends, or at once with `returnImmediately`) and
/// `SendStreamingMessage` (the task, then its updates until the turn ends).
async fn send(
    shared: &Shared,
    call: &Call,
    agent: &str,
    id: &Value,
    streaming: bool,
    request: SendMessageRequest,
) -> Response {
    let door = &shared.door;
    let agents = match door.agents().await {
        Ok(agents) => agents,
        Err(status) => {
            return rpc_error(StatusCode::OK, id, A2aError::from_status(&status, None));
        }
    };
    let Some(info) = agents.iter().find(|a| a.name == agent) else {
        return plain_error(
            StatusCode::NOT_FOUND,
            format!("no agent {agent:?} with a loaded backend (GET /agents lists them)"),
        );
    };
    let task_id = match door.send(call, info, &request).await {
        Ok(task_id) => task_id,
        Err(error) => return rpc_error(StatusCode::OK, id, error),
    };
    let configuration = request.configuration.unwrap_or_default();
    if streaming {
        return match door.follow(&call.principal, &task_id, configuration.history_length) {
            Some(events) => sse(id.clone(), events),
            None => rpc_error(StatusCode::OK, id, A2aError::task_not_found(&task_id)),
        };
    }
    let task = if configuration.return_immediately {
        door.get(call, &task_id, None).await
    } else {
        door.finish_turn(&call.principal, &task_id).await
    };
    let outcome = task
        .map(|task| crate::service::trim_history(task, configuration.history_length))
        .map(|task| to_json(SendMessageResponse::Task(task)));
    (StatusCode::OK, Json(rpc_reply(id, outcome))).into_response()
}

/// Server-Sent Events, one JSON-RPC response per event.
fn sse(id: Value, events: Events) -> Response {
    let events = events.map(move |event| {
        let reply = rpc_reply(&id, event.map(to_json));
        Ok::<_, Infallible>(Event::default().data(reply.to_string()))
    });
    Sse::new(events)
        .keep_alive(axum::response::sse::KeepAlive::default())
        .into_response()
}
