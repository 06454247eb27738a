//! Guest-side SDK for agent-federation adapters.
//!
//! Holds the one `wit_bindgen::generate!` call for the `agent-backend` world and the
//! plumbing every HTTP-backed adapter needs: build the wrapper's JSON body from a task,
//! send it through the host's `outbound-http` import, and turn the reply (or the failure)
//! into the world's typed `task-response` / `adapter-error` (the wrapper's error code
//! and `Retry-After` reported as data through `upstream`); pass the caller's agent and
//! resume answer on, and report a run that stopped to ask for input (`interaction`). An
//! adapter crate only says who it is (`describe`) and how its framework's payload differs.
//!
//! The wrapper's side of it (the body, the reply and its mapping, the progress events,
//! error bodies) is `federation-wire`'s, shared with the host, the test kit and the
//! benchmark; this crate turns it into the WIT world's types.

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
pub use bindings::federation::agent_backend::upstream;
use federation_wire::{
    End, Event, EventType, RunRequest, TaskInput, WrapperError, headers, routes,
};
use serde_json::{Map, Value};

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
    let request = RunRequest::from_task(TaskInput {
        goal: &task.goal,
        context: &task.context,
        input_data: &task.input_data,
        federation_session_id: &task.federation_session_id,
        request_id: &task.request_id,
        metadata: &task.metadata,
        agent: &asked.agent,
        resume_json: asked.resume_json.as_deref(),
    })
    .map_err(|e| AdapterError::InvalidInput(e.0))?;
    Ok(request.into_object())
}

/// The `upstream-status` error of a wrapper error, its code and `Retry-After` reported
/// to the host as data first (the `upstream` import, contract 0.1.3).
pub fn upstream_error(error: WrapperError) -> AdapterError {
    upstream::report(&upstream::WrapperError {
        code: error.code.unwrap_or_default(),
        retry_after_secs: error.retry_after_secs,
    });
    AdapterError::UpstreamStatus(UpstreamStatus {
        status: error.status,
        message: error.message,
    })
}

/// POSTs `body` as JSON to `{task.wrapper_url}{route}` and returns the reply object.
///
/// Non-2xx replies become `upstream-status` with the wrapper's message, its error code
/// and `Retry-After` reported as data ([`upstream_error`]); transport failures and
/// timeouts keep their kind so the host can pick the right gRPC code.
pub fn post_json(
    task: &Task,
    route: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, AdapterError> {
    let request = json_request(task, route, body, routes::JSON)?;
    let response = outbound_http::send(&request).map_err(http_error_to_adapter_error)?;
    if !(200..300).contains(&response.status) {
        return Err(upstream_error(WrapperError::from_reply(
            response.status,
            &response.body,
            retry_after(&response.headers),
        )));
    }
    match serde_json::from_slice::<Value>(&response.body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(AdapterError::Internal(
            "wrapper reply is not a JSON object".into(),
        )),
        Err(e) => Err(AdapterError::Internal(format!(
            "wrapper reply is not JSON ({e}): {}",
            federation_wire::excerpt(&response.body)
        ))),
    }
}

/// The `Retry-After` header of a response (names are lowercase).
fn retry_after(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name == headers::RETRY_AFTER)
        .map(|(_, value)| value.as_str())
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
        url: routes::url(&task.wrapper_url, route),
        headers: vec![
            ("content-type".into(), routes::JSON.into()),
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
/// status (499 for a cancelled run) and code, as the blocking call would have answered.
pub fn stream_json(
    task: &Task,
    route: &str,
    body: &Map<String, Value>,
) -> Result<Map<String, Value>, AdapterError> {
    let request = json_request(task, route, body, routes::NDJSON)?;
    let response = outbound_stream::send(&request).map_err(http_error_to_adapter_error)?;
    if !(200..300).contains(&response.status()) {
        // An error before the run started is a plain JSON body, as for `post_json`.
        let mut body = Vec::new();
        while let Some(line) = response.read_line().map_err(http_error_to_adapter_error)? {
            body.extend_from_slice(&line);
            body.push(b'\n');
        }
        let reply_headers = response.headers();
        return Err(upstream_error(WrapperError::from_reply(
            response.status(),
            &body,
            retry_after(&reply_headers),
        )));
    }
    while let Some(line) = response.read_line().map_err(http_error_to_adapter_error)? {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let event: Event = serde_json::from_slice(&line).map_err(|e| {
            AdapterError::Internal(format!(
                "wrapper sent a progress line that is not a JSON object ({e}): {}",
                federation_wire::excerpt(&line)
            ))
        })?;
        let kind = event.kind;
        if let Some(progress) = progress_event(kind.as_str(), &event.data) {
            progress::emit(&progress);
            continue;
        }
        match event.end() {
            Some(End::Completed(Some(reply))) => return Ok(reply),
            Some(End::Completed(None)) => {
                return Err(AdapterError::Internal(
                    "the wrapper's completed event carries no reply object".into(),
                ));
            }
            Some(End::Failed(error)) => return Err(upstream_error(error)),
            None => {}
        }
    }
    Err(AdapterError::Transport(
        "the wrapper's progress stream ended before the run finished".into(),
    ))
}

/// The host-side progress event for one of the wrapper's event types; `None` for the
/// ones the host reports itself (`started`) or does not know.
pub fn progress_event(kind: &str, data: &Map<String, Value>) -> Option<ProgressEvent> {
    let kind = EventType::parse(kind);
    let message = federation_wire::progress_message(kind, data)?;
    let kind = match kind {
        EventType::Step => EventKind::Step,
        EventType::LlmCall => EventKind::LlmCall,
        EventType::ToolCall => EventKind::ToolCall,
        EventType::CheckpointSaved => EventKind::CheckpointSaved,
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
    let outcome = federation_wire::task_outcome(reply, &task.federation_session_id)
        .map_err(|e| AdapterError::Internal(e.to_string()))?;
    if let Some(question) = &outcome.interrupt {
        interaction::input_required(question);
    }
    Ok(TaskResponse {
        output: outcome.output,
        result_json: outcome.result_json,
        federation_session_id: outcome.federation_session_id,
        resumed: outcome.resumed,
    })
}

/// The question (JSON) of a reply whose run stopped to ask for input; `None` for a run
/// that completed.
pub fn interrupt_of(reply: &Map<String, Value>) -> Option<String> {
    federation_wire::interrupt_of(reply)
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
