//! Guest-side SDK for agent-federation adapters.
//!
//! Holds the one `wit_bindgen::generate!` call for the `agent-backend` world and the
//! plumbing every HTTP-backed adapter needs: build the wrapper's JSON body from a task,
//! send it through the host's `outbound-http` import, and turn the reply (or the failure)
//! into the world's typed `task-response` / `adapter-error`; pass the caller's agent and
//! resume answer on, and report a run that stopped to ask for input (`interaction`). An
//! adapter crate only says who it is (`describe`) and how its framework's payload differs.

#[allow(clippy::too_many_arguments)] // generated glue for records with many fields
pub mod bindings {
    //! Generated bindings for `federation:agent-backend` (see `wit/agent-backend.wit`).
    wit_bindgen::generate!({
        world: "agent-backend",
        path: "../../wit",
        pub_export_macro: true,
        default_bindings_module: "federation_adapter_sdk::bindings",
    });
}

pub use bindings::Guest;
pub use bindings::export;
pub use bindings::federation::agent_backend::interaction;
pub use bindings::federation::agent_backend::log::Level;
pub use bindings::federation::agent_backend::outbound_http::{
    self as outbound_http, HttpError, Method, Request, Response,
};
pub use bindings::federation::agent_backend::outbound_stream::{self, ResponseStream};
pub use bindings::federation::agent_backend::progress::{self, Event as ProgressEvent, EventKind};
pub use bindings::federation::agent_backend::types::{
    AdapterError, AdapterInfo, Task, TaskResponse, UpstreamStatus,
};
use serde_json::{Map, Value, json};

/// Longest upstream error text carried into an `adapter-error` (bytes).
const MAX_ERROR_EXCERPT: usize = 512;
/// The media type of the wrapper's progress stream: one JSON event per line.
const NDJSON: &str = "application/x-ndjson";

/// Writes one line to the host's log.
pub fn log(level: Level, message: &str) {
    bindings::federation::agent_backend::log::log(level, message);
}

/// What the caller asked beyond the `task` record (the `interaction` import): the agent
/// to run and the answer to the interrupt the session waits on. The default is a plain
/// task of the backend's default agent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Interaction {
    /// The agent's name; empty for the backend's default.
    pub agent: String,
    /// The answer, as JSON, when the task resumes an interrupt.
    pub resume_json: Option<String>,
}

impl Interaction {
    /// The running task's, from the host.
    pub fn current() -> Interaction {
        Interaction {
            agent: interaction::agent(),
            resume_json: interaction::resume_json(),
        }
    }
}

/// The JSON body the agent wrapper's run routes take (`goal`, `context`, `input_data`,
/// `federation_session_id`, `request_id`, `metadata`; `agent` when the caller named
/// one, `resume` when the task answers an interrupt).
pub fn wrapper_payload(
    task: &Task,
    asked: &Interaction,
) -> Result<Map<String, Value>, AdapterError> {
    let input_data: Value = serde_json::from_str(&task.input_data)
        .map_err(|e| AdapterError::InvalidInput(format!("input_data is not JSON: {e}")))?;
    if !input_data.is_object() {
        return Err(AdapterError::InvalidInput(
            "input_data must be a JSON object".into(),
        ));
    }
    let metadata: Map<String, Value> = task
        .metadata
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let body = json!({
        "goal": task.goal,
        "context": task.context,
        "input_data": input_data,
        "federation_session_id": task.federation_session_id,
        "request_id": task.request_id,
        "metadata": metadata,
    });
    let Value::Object(mut body) = body else {
        unreachable!("json! object literal")
    };
    if !asked.agent.is_empty() {
        body.insert("agent".into(), Value::String(asked.agent.clone()));
    }
    // The key's presence is what makes a resume: even JSON null answers the interrupt.
    if let Some(resume) = &asked.resume_json {
        let resume: Value = serde_json::from_str(resume)
            .map_err(|e| AdapterError::InvalidInput(format!("resume is not JSON: {e}")))?;
        body.insert("resume".into(), resume);
    }
    Ok(body)
}

/// POSTs `body` as JSON to `{task.wrapper_url}{route}` and returns the reply object.
///
/// Non-2xx replies become `upstream-status` with the wrapper's message; transport
/// failures and timeouts keep their kind so the host can pick the right gRPC code.
pub fn post_json(
    task: &Task,
    route: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, AdapterError> {
    let request = json_request(task, route, body, "application/json")?;
    let response = outbound_http::send(&request).map_err(http_error_to_adapter_error)?;
    if !(200..300).contains(&response.status) {
        return Err(AdapterError::UpstreamStatus(UpstreamStatus {
            status: response.status,
            message: upstream_message(&response.body),
        }));
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AdapterError::Internal(
            "wrapper reply is not a JSON object".into(),
        )),
        Err(e) => Err(AdapterError::Internal(format!(
            "wrapper reply is not JSON ({e}): {}",
            excerpt(&response.body)
        ))),
    }
}

/// A JSON POST of `body` to `{task.wrapper_url}{route}` that accepts `accept`, with the
/// task's deadline as its timeout.
fn json_request(
    task: &Task,
    route: &str,
    body: &Map<String, Value>,
    accept: &str,
) -> Result<Request, AdapterError> {
    Ok(Request {
        method: Method::Post,
        url: format!("{}{}", task.wrapper_url.trim_end_matches('/'), route),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("accept".into(), accept.into()),
        ],
        body: serde_json::to_vec(body)
            .map_err(|e| AdapterError::Internal(format!("encoding the payload: {e}")))?,
        timeout_ms: task
            .deadline_ms
            .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX)),
    })
}

/// Like [`post_json`], but asks the wrapper for its progress stream (NDJSON events,
/// see `agent-wrapper`'s `runs/events.py`), reports each progress event to the host
/// as it arrives, and returns the reply carried by the final `completed` event.
///
/// A `failed` or `canceled` event becomes `upstream-status` with the event's HTTP-like
/// status (499 for a cancelled run), as the blocking call would have answered.
pub fn stream_json(
    task: &Task,
    route: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, AdapterError> {
    let request = json_request(task, route, body, NDJSON)?;
    let response = outbound_stream::send(&request).map_err(http_error_to_adapter_error)?;
    if !(200..300).contains(&response.status()) {
        // An error before the run started is a plain JSON body, as for `post_json`.
        let mut body = Vec::new();
        while let Some(line) = response.read_line().map_err(http_error_to_adapter_error)? {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        return Err(AdapterError::UpstreamStatus(UpstreamStatus {
            status: response.status(),
            message: upstream_message(&body),
        }));
    }
    while let Some(line) = response.read_line().map_err(http_error_to_adapter_error)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let mut event: Map<String, Value> = serde_json::from_slice(&line).map_err(|e| {
            AdapterError::Internal(format!(
                "wrapper sent a progress line that is not a JSON object ({e}): {}",
                excerpt(&line)
            ))
        })?;
        let mut data = match event.remove("data") {
            Some(Value::Object(data)) => data,
            _ => Map::new(),
        };
        match event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
        {
            "completed" => {
                return match data.remove("reply") {
                    Some(Value::Object(reply)) => Ok(reply),
                    _ => Err(AdapterError::Internal(
                        "the wrapper's completed event carries no reply object".into(),
                    )),
                };
            }
            "failed" | "canceled" => {
                let status = data
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (400..600).contains(s))
                    .unwrap_or(500);
                let message = data
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the wrapper's run failed");
                return Err(AdapterError::UpstreamStatus(UpstreamStatus {
                    status,
                    message: truncate(message),
                }));
            }
            kind => {
                if let Some(event) = progress_event(kind, &data) {
                    progress::emit(&event);
                }
            }
        }
    }
    Err(AdapterError::Transport(
        "the wrapper's progress stream ended before the run finished".into(),
    ))
}

/// The host-side progress event for one of the wrapper's event types; `None` for the
/// ones the host reports itself (`started`) or does not know.
pub fn progress_event(kind: &str, data: &Map<String, Value>) -> Option<ProgressEvent> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or("?");
    let (kind, message) = match kind {
        "step" => (
            EventKind::Step,
            format!("step {} {}", text("name"), text("phase")),
        ),
        "llm_call" => (
            EventKind::LlmCall,
            format!("LLM call by {} ({})", text("agent"), text("model")),
        ),
        "tool_call" => (
            EventKind::ToolCall,
            format!("tool {} called by {}", text("tool"), text("agent")),
        ),
        "checkpoint_saved" => (
            EventKind::CheckpointSaved,
            format!("checkpoint saved after step {}", text("step")),
        ),
        _ => return None,
    };
    Some(ProgressEvent {
        kind,
        message,
        data_json: serde_json::to_string(data).unwrap_or_else(|_| "{}".into()),
    })
}

/// Maps the wrapper's reply to a `task-response`: `output` (string) is required,
/// `resumed` defaults to false, and the whole reply is kept as the structured result.
/// A reply whose run stopped to ask for input (`status` `input_required`) also reports
/// its `interrupt` through `interaction.input-required`.
pub fn response_from_reply(
    task: &Task,
    reply: Map<String, Value>,
) -> Result<TaskResponse, AdapterError> {
    if let Some(question) = interrupt_of(&reply) {
        interaction::input_required(&question);
    }
    let output = match reply.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => {
            return Err(AdapterError::Internal(
                "wrapper reply has no `output`".into(),
            ));
        }
    };
    let resumed = reply
        .get("resumed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let federation_session_id = reply
        .get("federation_session_id")
        .and_then(Value::as_str)
        .unwrap_or(&task.federation_session_id)
        .to_string();
    let result_json = serde_json::to_string(&Value::Object(reply))
        .map_err(|e| AdapterError::Internal(format!("encoding the result: {e}")))?;
    Ok(TaskResponse {
        output,
        result_json,
        federation_session_id,
        resumed,
    })
}

/// The question (JSON) of a reply whose run stopped to ask for input; `None` for a run
/// that completed.
pub fn interrupt_of(reply: &Map<String, Value>) -> Option<String> {
    if reply.get("status").and_then(Value::as_str) != Some("input_required") {
        return None;
    }
    let question = reply.get("interrupt").unwrap_or(&Value::Null);
    Some(question.to_string())
}

fn http_error_to_adapter_error(error: HttpError) -> AdapterError {
    match error {
        HttpError::Denied(why) => AdapterError::Internal(format!("outbound call denied: {why}")),
        HttpError::InvalidRequest(why) => {
            AdapterError::Internal(format!("invalid outbound request: {why}"))
        }
        HttpError::Transport(why) => AdapterError::Transport(why),
        HttpError::Timeout(why) => AdapterError::Timeout(why),
        HttpError::TooLarge(limit) => {
            AdapterError::Internal(format!("wrapper reply exceeds the {limit}-byte cap"))
        }
    }
}

/// The wrapper's error message (`{"error": {"message": ..}}`, FastAPI's `{"detail": ..}`),
/// or an excerpt of the raw body.
fn upstream_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("detail"))
            .or_else(|| value.get("error"));
        match message {
            Some(Value::String(s)) => return truncate(s),
            Some(other) => return truncate(&other.to_string()),
            None => {}
        }
    }
    excerpt(body)
}

fn excerpt(body: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(body))
}

fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_EXCERPT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_EXCERPT;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The whole task for an adapter whose framework sits behind the agent wrapper:
/// build the standard body, let `shape` add the framework's fields, POST it to `route`
/// (streaming the run's progress when someone watches the task), map the reply.
pub fn run_via_wrapper(
    task: &Task,
    route: &str,
    shape: impl FnOnce(&Task, &mut Map<String, Value>),
) -> Result<TaskResponse, AdapterError> {
    let mut body = wrapper_payload(task, &Interaction::current())?;
    shape(task, &mut body);
    let reply = if progress::watched() {
        stream_json(task, route, &body)?
    } else {
        post_json(task, route, &body)?
    };
    response_from_reply(task, reply)
}
