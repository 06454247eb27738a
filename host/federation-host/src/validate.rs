//! Task validation: turning a gRPC `TaskRequest` into the adapter's `task` (field
//! rules, generated ids, the time left) and the agent and resume answer the adapter
//! reads through its `interaction` import.

use std::time::Duration;

use crate::error::TaskError;
use federation_proto::TaskRequest;
use federation_proto::json::{struct_to_json, value_to_json};
use federation_runtime::TaskInteraction;
use federation_runtime::bindings::Task;

pub const MAX_GOAL_BYTES: usize = 64 * 1024;
pub const MAX_CONTEXT_BYTES: usize = 256 * 1024;
pub const MAX_INPUT_DATA_BYTES: usize = 1024 * 1024;
pub use federation_proto::doors::MAX_ID_CHARS;
pub const MAX_METADATA_ENTRIES: usize = 64;
pub const MAX_METADATA_FIELD_BYTES: usize = 4096;
pub const MAX_AGENT_CHARS: usize = 128;
pub const MAX_RESUME_BYTES: usize = 256 * 1024;

/// A request that passed validation, with its ids filled in.
pub struct ValidTask {
    pub backend: String,
    pub task: Task,
    /// The agent and the resume answer, for the adapter's `interaction` import.
    pub interaction: TaskInteraction,
}

/// Checks every field of `request` and builds the adapter task.
pub fn validate(
    request: TaskRequest,
    wrapper_url: &str,
    deadline_left: Duration,
) -> Result<ValidTask, TaskError> {
    let invalid = |message: String| {
        let field = message.split(' ').next().unwrap_or_default().to_string();
        Err(TaskError::invalid(field, message))
    };
    if request.backend.trim().is_empty() {
        return invalid("backend is required (e.g. \"crewai\" or \"langgraph\")".into());
    }
    if request.goal.trim().is_empty() {
        return invalid("goal is required and must not be blank".into());
    }
    if request.goal.len() > MAX_GOAL_BYTES {
        return invalid(format!("goal is longer than {MAX_GOAL_BYTES} bytes"));
    }
    if request.context.len() > MAX_CONTEXT_BYTES {
        return invalid(format!("context is longer than {MAX_CONTEXT_BYTES} bytes"));
    }
    let input_data = match &request.input_data {
        Some(data) => struct_to_json(data)
            .map_err(|e| TaskError::invalid(input_data_field(&e), format!("input_data: {e}")))?,
        None => serde_json::Map::new(),
    };
    let input_data = serde_json::Value::Object(input_data).to_string();
    if input_data.len() > MAX_INPUT_DATA_BYTES {
        return invalid(format!(
            "input_data is larger than {MAX_INPUT_DATA_BYTES} bytes as JSON"
        ));
    }
    let federation_session_id = id_or_new("federation_session_id", request.federation_session_id)?;
    let request_id = id_or_new("request_id", request.request_id)?;
    if request.metadata.len() > MAX_METADATA_ENTRIES {
        return invalid(format!(
            "metadata has more than {MAX_METADATA_ENTRIES} entries"
        ));
    }
    if let Some((key, _)) = request.metadata.iter().find(|(k, v)| {
        k.is_empty() || k.len() > MAX_METADATA_FIELD_BYTES || v.len() > MAX_METADATA_FIELD_BYTES
    }) {
        // Quoted as an excerpt: the key may be as long as the caller likes.
        let key = federation_wire::truncate_to(key, 64);
        return invalid(format!(
            "metadata entry {key:?}: keys must be non-empty and keys and values at most {MAX_METADATA_FIELD_BYTES} bytes"
        ));
    }
    let interaction = interaction(request.agent, request.resume.as_ref())?;
    let mut metadata: Vec<_> = request.metadata.into_iter().collect();
    metadata.sort();
    Ok(ValidTask {
        backend: request.backend,
        interaction,
        task: Task {
            goal: request.goal,
            context: request.context,
            input_data,
            federation_session_id,
            request_id,
            metadata,
            wrapper_url: wrapper_url.trim_end_matches('/').to_string(),
            deadline_ms: Some(u64::try_from(deadline_left.as_millis()).unwrap_or(u64::MAX)),
        },
    })
}

/// The agent name and the resume answer as JSON. Empty `agent` is the backend's
/// default; any set `resume` (JSON null included) answers an interrupt.
fn interaction(
    agent: String,
    resume: Option<&prost_types::Value>,
) -> Result<TaskInteraction, TaskError> {
    if !agent.is_empty() && !agent_is_valid(&agent) {
        return Err(TaskError::invalid(
            "agent",
            format!(
                "agent must be empty (the backend's default) or 1..{MAX_AGENT_CHARS} chars of \
             [A-Za-z0-9._:-]"
            ),
        ));
    }
    let resume_json = match resume {
        None => None,
        Some(value) => {
            let json = value_to_json(value)
                .map_err(|e| TaskError::invalid("resume", format!("resume: {e}")))?
                .to_string();
            if json.len() > MAX_RESUME_BYTES {
                return Err(TaskError::invalid(
                    "resume",
                    format!("resume is larger than {MAX_RESUME_BYTES} bytes as JSON"),
                ));
            }
            Some(json)
        }
    };
    Ok(TaskInteraction {
        agent,
        resume_json,
        principal: None,
    })
}

/// The field of `input_data` a conversion error names (`input_data.a.b` for the error
/// `a: b: 1 is not a JSON number`).
fn input_data_field(error: &str) -> String {
    let mut parts: Vec<&str> = error.split(": ").collect();
    parts.pop();
    std::iter::once("input_data")
        .chain(parts)
        .collect::<Vec<_>>()
        .join(".")
}

/// Whether `agent` is a valid agent name (the wrapper's registry names).
fn agent_is_valid(agent: &str) -> bool {
    !agent.is_empty()
        && agent.len() <= MAX_AGENT_CHARS
        && agent
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
}

/// The id as given, or a new UUID when empty. Ids are storage keys downstream, so only
/// a safe alphabet is accepted.
fn id_or_new(field: &str, id: String) -> Result<String, TaskError> {
    if id.is_empty() {
        return Ok(uuid::Uuid::new_v4().to_string());
    }
    if id_is_valid(&id) {
        Ok(id)
    } else {
        Err(TaskError::invalid(
            field,
            format!(
                "{field} must be 1..{MAX_ID_CHARS} chars of [A-Za-z0-9._:-], not starting with '.' \
             and without '..'"
            ),
        ))
    }
}

pub use federation_proto::doors::id_is_valid;

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> TaskRequest {
        TaskRequest {
            goal: "g".into(),
            backend: "crewai".into(),
            ..Default::default()
        }
    }

    fn rejects(mutate: impl FnOnce(&mut TaskRequest)) -> String {
        let mut r = request();
        mutate(&mut r);
        match validate(r, "http://w", Duration::from_secs(1)) {
            Err(TaskError::InvalidArgument { message, .. }) => message,
            Err(other) => panic!("wrong error {other:?}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn fills_ids_and_defaults() {
        let valid = validate(request(), "http://w:1/", Duration::from_millis(1500)).unwrap();
        assert_eq!(valid.task.input_data, "{}");
        assert_eq!(valid.task.wrapper_url, "http://w:1");
        assert_eq!(valid.task.federation_session_id.len(), 36);
        assert_eq!(valid.task.deadline_ms, Some(1500));
        assert_eq!(valid.interaction, TaskInteraction::default());
    }

    #[test]
    fn passes_the_agent_and_the_resume_answer_as_json() {
        use prost_types::value::Kind;
        let mut r = request();
        r.agent = "trip_planner:v2".into();
        r.resume = Some(prost_types::Value {
            kind: Some(Kind::StringValue("Lyon".into())),
        });
        let valid = validate(r, "http://w", Duration::from_secs(1)).unwrap();
        assert_eq!(valid.interaction.agent, "trip_planner:v2");
        assert_eq!(valid.interaction.resume_json.as_deref(), Some(r#""Lyon""#));
        // A resume of JSON null is still an answer.
        let mut r = request();
        r.resume = Some(prost_types::Value {
            kind: Some(Kind::NullValue(0)),
        });
        let valid = validate(r, "http://w", Duration::from_secs(1)).unwrap();
        assert_eq!(valid.interaction.resume_json.as_deref(), Some("null"));
    }

    #[test]
    fn rejects_a_bad_agent_or_resume() {
        use prost_types::value::Kind;
        assert!(rejects(|r| r.agent = "trip planner".into()).contains("agent"));
        assert!(rejects(|r| r.agent = "a/b".into()).contains("agent"));
        assert!(rejects(|r| r.agent = "x".repeat(MAX_AGENT_CHARS + 1)).contains("agent"));
        let big = "x".repeat(MAX_RESUME_BYTES);
        assert!(
            rejects(|r| r.resume = Some(prost_types::Value {
                kind: Some(Kind::StringValue(big)),
            }))
            .contains("resume is larger")
        );
        assert!(
            rejects(|r| r.resume = Some(prost_types::Value {
                kind: Some(Kind::NumberValue(f64::INFINITY)),
            }))
            .contains("resume")
        );
    }

    #[test]
    fn rejects_bad_fields() {
        assert!(rejects(|r| r.goal = "  ".into()).contains("goal"));
        assert!(rejects(|r| r.backend = String::new()).contains("backend"));
        assert!(
            rejects(|r| r.federation_session_id = "../etc".into())
                .contains("federation_session_id")
        );
        assert!(
            rejects(|r| r.federation_session_id = "a/b".into()).contains("federation_session_id")
        );
        assert!(rejects(|r| r.request_id = "x".repeat(129)).contains("request_id"));
        assert!(rejects(|r| r.goal = "x".repeat(MAX_GOAL_BYTES + 1)).contains("goal"));
        assert!(
            rejects(|r| {
                r.metadata.insert(String::new(), "v".into());
            })
            .contains("metadata")
        );
    }
}
