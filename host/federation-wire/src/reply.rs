//! A run's reply (`RunResponse` in `models.py`), and what an adapter makes of it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Object;

/// The wrapper's success reply to a run.
///
/// Producers (the test kit's stub wrapper) build it; adapters map the reply from its
/// JSON object instead ([`task_outcome`]), since that whole object, fields this type
/// does not know included, becomes the task's structured result.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunReply {
    pub output: String,
    /// `crewai` or `langgraph`.
    pub framework: String,
    /// The registered agent that ran.
    pub agent: String,
    pub status: ReplyStatus,
    /// What the run asks (the value given to `interrupt()`), when `input_required`.
    #[serde(default)]
    pub interrupt: Value,
    pub federation_session_id: String,
    pub request_id: Option<String>,
    pub resumed: bool,
    /// 32 lowercase hex digits of the wrapper's current trace.
    pub trace_id: String,
    pub llm: LlmInfo,
    pub steps: Vec<Step>,
    pub history: Vec<HistoryItem>,
    pub state: StateInfo,
    /// Only for `/v1/run_graph`.
    #[serde(default)]
    pub messages: Option<Vec<Message>>,
}

/// How a run ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReplyStatus {
    Completed,
    /// Stopped at an interrupt; the next task of the session answers it with `resume`.
    InputRequired,
}

impl ReplyStatus {
    pub const ALL: [ReplyStatus; 2] = [ReplyStatus::Completed, ReplyStatus::InputRequired];

    pub fn as_str(self) -> &'static str {
        match self {
            ReplyStatus::Completed => "completed",
            ReplyStatus::InputRequired => "input_required",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub name: String,
    pub agent: Option<String>,
    pub output: String,
    pub resumed_from_checkpoint: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    pub request_id: Option<String>,
    #[serde(default)]
    pub agent: Option<String>,
    pub goal: String,
    pub output: String,
    pub finished_at: String,
    #[serde(default)]
    pub framework: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmInfo {
    /// `offline`, `openai-compatible`, or `own` (the agent brings its own model).
    pub provider: String,
    pub model: String,
    /// Calls the agent's own model clients made through the wrapper's model gateway,
    /// and their tokens (`null` when there were none).
    #[serde(default)]
    pub gateway: Option<GatewayUsage>,
}

/// What an agent's own model clients spent through the model gateway in one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GatewayUsage {
    pub calls: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StateInfo {
    /// The wrapper's state store (`file`, `redis`, ...).
    pub store: String,
    pub run_count: u64,
    pub checkpoint: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: String,
    pub content: String,
}

/// What an adapter returns for a reply: the fields of the WIT `task-response` record,
/// and the question to report through `interaction.input-required` when the run asks
/// for input.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskOutcome {
    pub output: String,
    /// The whole reply, as JSON text.
    pub result_json: String,
    pub federation_session_id: String,
    pub resumed: bool,
    /// The question (JSON) of a run that stopped to ask for input.
    pub interrupt: Option<String>,
}

/// Why a reply cannot become a task response.
#[derive(Debug)]
pub enum MappingError {
    NoOutput,
    Encode(serde_json::Error),
}

impl std::fmt::Display for MappingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MappingError::NoOutput => f.write_str("wrapper reply has no `output`"),
            MappingError::Encode(e) => write!(f, "encoding the result: {e}"),
        }
    }
}

impl std::error::Error for MappingError {}

/// Maps a reply object to a task outcome: `output` is required (a non-string is kept
/// as its JSON text), `resumed` defaults to false, `federation_session_id` to
/// `session` (the task's), and the whole reply is kept as the structured result.
/// Lenient on purpose: a wrapper of another version may leave fields out.
pub fn task_outcome(reply: Object, session: &str) -> Result<TaskOutcome, MappingError> {
    let interrupt = interrupt_of(&reply);
    let output = match reply.get("output") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(MappingError::NoOutput),
    };
    let resumed = reply
        .get("resumed")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let federation_session_id = reply
        .get("federation_session_id")
        .and_then(Value::as_str)
        .unwrap_or(session)
        .to_string();
    let result_json = serde_json::to_string(&Value::Object(reply)).map_err(MappingError::Encode)?;
    Ok(TaskOutcome {
        output,
        result_json,
        federation_session_id,
        resumed,
        interrupt,
    })
}

/// The question (JSON) of a reply whose run stopped to ask for input; `None` for a run
/// that completed.
pub fn interrupt_of(reply: &Object) -> Option<String> {
    if reply.get("status").and_then(Value::as_str) != Some(ReplyStatus::InputRequired.as_str()) {
        return None;
    }
    let question = reply.get("interrupt").unwrap_or(&Value::Null);
    Some(question.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn a_reply_maps_leniently_and_is_kept_whole() {
        let outcome = task_outcome(object(json!({"output": "done", "extra": 1})), "s").unwrap();
        assert_eq!(outcome.output, "done");
        assert!(!outcome.resumed);
        assert_eq!(outcome.federation_session_id, "s");
        assert_eq!(outcome.interrupt, None);
        assert_eq!(outcome.result_json, r#"{"extra":1,"output":"done"}"#);
        let numeric = task_outcome(object(json!({"output": 42})), "s").unwrap();
        assert_eq!(numeric.output, "42");
        let error = task_outcome(object(json!({"resumed": true})), "s").unwrap_err();
        assert_eq!(error.to_string(), "wrapper reply has no `output`");
    }

    #[test]
    fn a_reply_asking_for_input_carries_its_question() {
        let asking = object(json!({
            "output": "", "status": "input_required", "interrupt": {"question": "Which city?"},
        }));
        assert_eq!(
            interrupt_of(&asking).as_deref(),
            Some(r#"{"question":"Which city?"}"#)
        );
        let outcome = task_outcome(asking, "s").unwrap();
        assert_eq!(
            outcome.interrupt.as_deref(),
            Some(r#"{"question":"Which city?"}"#)
        );
        let done = object(json!({"output": "done", "status": "completed"}));
        assert_eq!(interrupt_of(&done), None);
    }
}
