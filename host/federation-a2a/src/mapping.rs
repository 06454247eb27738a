//! A2A ↔ federation, the one table (docs/a2a-and-mcp.md repeats it):
//!
//! | A2A | federation |
//! | --- | --- |
//! | `contextId` | `federation_session_id` |
//! | task `id` (first message) | task id `"<session>/<request_id>"` of its first turn |
//! | `messageId` | `request_id` (a repeated message id attaches, never runs twice) |
//! | first text part / other text parts | `goal` / `context` |
//! | a data part (a JSON object) | `input_data` |
//! | a message to an `input-required` task | a task in the same session with `resume` (its data part, else its text) |
//! | `started` | status `TASK_STATE_WORKING` |
//! | progress event | status update `WORKING`, message: the event's text and `{kind, data}` |
//! | `completed` | artifact `output` (text + result as data), then `COMPLETED` |
//! | `input_required` | `TASK_STATE_INPUT_REQUIRED`, the interrupt value as a data part |
//! | `failed` | `TASK_STATE_FAILED` (`CANCELED` for CANCELLED), message: text + `{code, reason, details}` |
//! | refused before it starts (not a bad argument) | `TASK_STATE_REJECTED`, as `failed` |

use std::time::SystemTime;

use federation_proto::doors::id_is_valid;
use federation_proto::json::{struct_to_json, value_to_json};
use federation_proto::{AgentTaskStatus, TaskEvent, TaskRequest, TaskResponse, task_event};
use serde_json::{Map, Value, json};
use tonic::{Code, Status};

use crate::error::{A2aError, any_to_json, code, code_name, reason_of, status_details_json};
use crate::types::{Artifact, Message, Part, Role, Task, TaskState, TaskStatus};

/// Now, as a ProtoJSON timestamp (RFC 3339, UTC).
pub fn now() -> String {
    prost_types::Timestamp::from(SystemTime::now()).to_string()
}

/// The request id of a message: its `messageId` when it is a valid federation id, else
/// a digest of it (still one id per message id, so a repeat still attaches).
pub fn request_id_of(message_id: &str) -> String {
    if id_is_valid(message_id) {
        return message_id.to_string();
    }
    use sha2::Digest;
    let digest = sha2::Sha256::digest(message_id.as_bytes());
    format!("m-{}", &hex::encode(digest)[..32])
}

/// The session of a message's `contextId` (refused when it is not a valid id: a
/// client-chosen context this server cannot keep must be refused, spec §3.4.1).
pub fn session_of(context_id: &str) -> Result<String, A2aError> {
    if context_id.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    if !id_is_valid(context_id) {
        return Err(A2aError::invalid_params(format!(
            "message.contextId {context_id:?} must be at most 128 of [A-Za-z0-9._:-], not \
             starting with '.' and without '..'"
        )));
    }
    Ok(context_id.to_string())
}

/// Checks what a client message may hold: a user message with at least one part, each
/// text or data (files are not taken).
pub fn check_message(message: &Message) -> Result<(), A2aError> {
    if message.message_id.is_empty() {
        return Err(A2aError::invalid_params("message.messageId is required"));
    }
    if message.role == Role::Agent {
        return Err(A2aError::invalid_params(
            "message.role must be ROLE_USER for a client's message",
        ));
    }
    if message.parts.is_empty() {
        return Err(A2aError::invalid_params(
            "message.parts: at least one part is required",
        ));
    }
    if let Some(part) = message
        .parts
        .iter()
        .find(|p| p.raw.is_some() || p.url.is_some())
    {
        let what = if part.media_type.is_empty() {
            "a file part".to_string()
        } else {
            format!("a file part ({})", part.media_type)
        };
        return Err(A2aError::with_reason(
            code::CONTENT_TYPE_NOT_SUPPORTED,
            "CONTENT_TYPE_NOT_SUPPORTED",
            format!("{what}: these agents take text parts and one JSON data part"),
        ));
    }
    Ok(())
}

fn texts(message: &Message) -> Vec<&str> {
    message
        .parts
        .iter()
        .filter_map(|p| p.text.as_deref())
        .collect()
}

fn data_parts(message: &Message) -> Vec<&Value> {
    message
        .parts
        .iter()
        .filter_map(|p| p.data.as_ref())
        .collect()
}

/// The task of a new message to `agent` on `backend`: goal, context, input data.
pub fn new_task_request(
    message: &Message,
    agent: &str,
    backend: &str,
    session: String,
    request_id: String,
) -> Result<TaskRequest, A2aError> {
    let texts = texts(message);
    let Some((goal, rest)) = texts.split_first() else {
        return Err(A2aError::invalid_params(
            "message.parts: a text part (the goal) is required",
        ));
    };
    let input_data = match data_parts(message).as_slice() {
        [] => None,
        [Value::Object(map)] => Some(federation_proto::json::json_to_struct(map.clone())),
        [_] => {
            return Err(A2aError::invalid_params(
                "message.parts: the data part (input_data) must be a JSON object",
            ));
        }
        _ => {
            return Err(A2aError::invalid_params(
                "message.parts: at most one data part (input_data)",
            ));
        }
    };
    Ok(TaskRequest {
        goal: goal.to_string(),
        context: rest.join("\n\n"),
        input_data,
        federation_session_id: session,
        backend: backend.to_string(),
        request_id,
        agent: agent.to_string(),
        ..TaskRequest::default()
    })
}

/// The task answering an `input-required` task: `resume` is the message's data part,
/// else its text; the goal is its text (or a placeholder for a data-only answer).
pub fn resume_task_request(
    message: &Message,
    agent: &str,
    backend: &str,
    session: String,
    request_id: String,
) -> Result<TaskRequest, A2aError> {
    let texts = texts(message);
    let text = texts.join("\n\n");
    let resume = match data_parts(message).as_slice() {
        [] => Value::String(text.clone()),
        [value] => (*value).clone(),
        _ => {
            return Err(A2aError::invalid_params(
                "message.parts: at most one data part (the answer)",
            ));
        }
    };
    Ok(TaskRequest {
        goal: if text.is_empty() {
            "answer to the agent's question".into()
        } else {
            text
        },
        federation_session_id: session,
        backend: backend.to_string(),
        request_id,
        agent: agent.to_string(),
        resume: Some(federation_proto::json::json_to_value(resume)),
        ..TaskRequest::default()
    })
}

/// What one federation event does to an A2A task.
#[derive(Clone, Debug, PartialEq)]
pub enum Update {
    Status(TaskStatus),
    Artifact(Artifact),
}

/// A status of `state` with an agent message of `parts` (none when empty).
pub fn status(state: TaskState, ids: (&str, &str), parts: Vec<Part>) -> TaskStatus {
    let (task_id, context_id) = ids;
    TaskStatus {
        state,
        message: (!parts.is_empty()).then(|| Message {
            message_id: uuid::Uuid::new_v4().to_string(),
            context_id: context_id.to_string(),
            task_id: task_id.to_string(),
            role: Role::Agent,
            parts,
            ..Message::default()
        }),
        timestamp: Some(now()),
    }
}

/// The A2A updates of one federation event of task `ids` (A2A task id, context id).
pub fn event_updates(event: &TaskEvent, ids: (&str, &str)) -> Vec<Update> {
    match &event.event {
        Some(task_event::Event::Started(_)) => {
            vec![Update::Status(status(TaskState::Working, ids, Vec::new()))]
        }
        Some(task_event::Event::Progress(progress)) => {
            let data = progress
                .data
                .as_ref()
                .and_then(|d| struct_to_json(d).ok())
                .map_or(Value::Null, Value::Object);
            let kind = federation_proto::task_progress::Kind::try_from(progress.kind)
                .map_or("KIND_UNSPECIFIED", |k| k.as_str_name());
            let mut parts = Vec::new();
            if !progress.message.is_empty() {
                parts.push(Part::text(progress.message.clone()));
            }
            parts.push(Part::data(json!({"kind": kind, "data": data})));
            vec![Update::Status(status(TaskState::Working, ids, parts))]
        }
        Some(task_event::Event::Completed(response)) => completed_updates(response, ids),
        Some(task_event::Event::InputRequired(response)) => {
            vec![Update::Status(input_required_status(response, ids))]
        }
        Some(task_event::Event::Failed(failed)) => {
            let details: Vec<Value> = failed.details.iter().filter_map(any_to_json).collect();
            let code = Code::from_i32(failed.code);
            let state = if code == Code::Cancelled {
                TaskState::Canceled
            } else {
                TaskState::Failed
            };
            vec![Update::Status(failure_status(
                state,
                code,
                &failed.message,
                details,
                ids,
            ))]
        }
        None => Vec::new(),
    }
}

/// The artifact `output` of a finished run: its text and its structured result.
pub fn output_artifact(response: &TaskResponse) -> Artifact {
    let result = response
        .result
        .as_ref()
        .and_then(|r| struct_to_json(r).ok())
        .unwrap_or_default();
    Artifact {
        artifact_id: "output".into(),
        name: "output".into(),
        description: "the agent's answer (text) and its structured result (data)".into(),
        parts: vec![
            Part::text(response.output.clone()),
            Part::data(Value::Object(result)),
        ],
        metadata: Some(response_metadata(response)),
    }
}

fn completed_updates(response: &TaskResponse, ids: (&str, &str)) -> Vec<Update> {
    vec![
        Update::Artifact(output_artifact(response)),
        Update::Status(status(TaskState::Completed, ids, Vec::new())),
    ]
}

/// What the host reports of the run beside its answer (trace, backend, adapter).
fn response_metadata(response: &TaskResponse) -> Map<String, Value> {
    let mut metadata = Map::new();
    for (key, value) in [
        ("traceId", &response.trace_id),
        ("backend", &response.backend),
        ("adapterVersion", &response.adapter_version),
        ("agent", &response.agent),
        ("requestId", &response.request_id),
    ] {
        if !value.is_empty() {
            metadata.insert(key.into(), Value::String(value.clone()));
        }
    }
    metadata.insert("resumed".into(), Value::Bool(response.resumed));
    metadata
}

/// `input-required`, the interrupt value as a data part.
pub fn input_required_status(response: &TaskResponse, ids: (&str, &str)) -> TaskStatus {
    let interrupt = response
        .interrupt
        .as_ref()
        .and_then(|v| value_to_json(v).ok())
        .unwrap_or(Value::Null);
    let mut parts = Vec::new();
    if let Some(question) = interrupt.get("question").and_then(Value::as_str) {
        parts.push(Part::text(question));
    }
    parts.push(Part::data(interrupt));
    status(TaskState::InputRequired, ids, parts)
}

/// A failed, canceled or rejected status: the message as text, `{code, reason,
/// details}` as data (the reason is the gRPC `ErrorInfo`'s).
pub fn failure_status(
    state: TaskState,
    code: Code,
    message: &str,
    details: Vec<Value>,
    ids: (&str, &str),
) -> TaskStatus {
    let reason = reason_of(&details);
    let data = json!({"code": code_name(code), "reason": reason, "details": details});
    status(state, ids, vec![Part::text(message), Part::data(data)])
}

/// The status of a task the host refused before it started.
pub fn rejected_status(refusal: &Status, ids: (&str, &str)) -> TaskStatus {
    failure_status(
        TaskState::Rejected,
        refusal.code(),
        refusal.message(),
        status_details_json(refusal),
        ids,
    )
}

/// An A2A task of a federation task status (a task this replica's A2A door did not
/// start, answered by `GetAgentTask`).
pub fn task_of_status(status_reply: &AgentTaskStatus) -> Task {
    use federation_proto::agent_task_status::State;
    let task_id = status_reply.task_id.as_str();
    let context_id = task_id.split_once('/').map_or("", |(session, _)| session);
    let ids = (task_id, context_id);
    let mut artifacts = Vec::new();
    let state = State::try_from(status_reply.state).unwrap_or(State::Unspecified);
    let status = match (state, &status_reply.response) {
        (State::Completed, Some(response)) => {
            artifacts.push(output_artifact(response));
            status(TaskState::Completed, ids, Vec::new())
        }
        (State::InputRequired, Some(response)) => input_required_status(response, ids),
        (State::Failed | State::Canceled, _) => failure_status(
            if state == State::Canceled {
                TaskState::Canceled
            } else {
                TaskState::Failed
            },
            Code::from_i32(status_reply.error_code),
            &status_reply.error_message,
            status_reply
                .error_details
                .iter()
                .filter_map(any_to_json)
                .collect(),
            ids,
        ),
        (State::Submitted, _) => status(TaskState::Submitted, ids, Vec::new()),
        _ => status(TaskState::Working, ids, Vec::new()),
    };
    Task {
        id: task_id.to_string(),
        context_id: context_id.to_string(),
        status,
        artifacts: Some(artifacts),
        ..Task::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(parts: Vec<Part>) -> Message {
        Message {
            message_id: "m".into(),
            role: Role::User,
            parts,
            ..Message::default()
        }
    }

    #[test]
    fn text_and_data_parts_become_goal_context_and_input() {
        let m = message(vec![
            Part::text("plan"),
            Part::data(json!({"city": "Lyon"})),
            Part::text("for two"),
        ]);
        let request = new_task_request(&m, "trip", "langgraph", "s".into(), "r".into()).unwrap();
        assert_eq!(
            (request.goal.as_str(), request.context.as_str()),
            ("plan", "for two")
        );
        assert!(request.input_data.unwrap().fields.contains_key("city"));
        let bad = message(vec![Part::text("x"), Part::data(json!([1]))]);
        let error = new_task_request(&bad, "a", "b", "s".into(), "r".into()).unwrap_err();
        assert_eq!(error.code, code::INVALID_PARAMS);
        let no_goal = message(vec![Part::data(json!({}))]);
        assert!(new_task_request(&no_goal, "a", "b", "s".into(), "r".into()).is_err());
    }

    #[test]
    fn answers_resume_with_their_data_else_their_text() {
        let data = message(vec![Part::data(json!({"city": "Porto"}))]);
        let request = resume_task_request(&data, "a", "b", "s".into(), "r".into()).unwrap();
        let resume = value_to_json(request.resume.as_ref().unwrap()).unwrap();
        assert_eq!(resume, json!({"city": "Porto"}));
        let text = message(vec![Part::text("Porto")]);
        let request = resume_task_request(&text, "a", "b", "s".into(), "r".into()).unwrap();
        assert_eq!(
            value_to_json(request.resume.as_ref().unwrap()).unwrap(),
            json!("Porto")
        );
    }

    #[test]
    fn message_ids_become_request_ids() {
        assert_eq!(request_id_of("abc-1"), "abc-1");
        let odd = request_id_of("a b/c");
        assert!(odd.starts_with("m-") && id_is_valid(&odd));
        assert_eq!(odd, request_id_of("a b/c"));
        // What the host would refuse is digested too: the message still runs.
        let dotted = request_id_of("a..b");
        assert!(dotted.starts_with("m-") && id_is_valid(&dotted));
        assert!(session_of("a..b").is_err());
    }
}
