//! The body of a run (`RunRequest` in `models.py`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::Object;

/// The body of `POST /v1/run_crew` and `POST /v1/run_graph`. Adapters add their
/// framework's fields (LangGraph's `thread_id`) to its JSON object; the wrapper ignores
/// fields it does not know.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRequest {
    /// What the agents should achieve (not blank).
    pub goal: String,
    #[serde(default)]
    pub context: String,
    #[serde(default)]
    pub input_data: Object,
    /// 1..128 chars of `[A-Za-z0-9._:-]`; the wrapper generates one when absent.
    pub federation_session_id: Option<String>,
    /// The run's idempotency key within the session (same rules as the session id).
    pub request_id: Option<String>,
    /// Caller metadata; part of the body hash that identifies the request.
    #[serde(default)]
    pub metadata: Object,
    /// A registered agent of the route's framework; absent: its default agent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    /// The answer to the interrupt the session waits on. The key's presence is what
    /// makes a resume: `Some(Value::Null)` is sent as `"resume": null`, `None` not at all.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "present"
    )]
    pub resume: Option<Value>,
}

/// A present key, even one whose value is `null`, is `Some`.
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// The adapter contract's task as the wrapper's body needs it: the fields of the WIT
/// `task` record (`input_data` as the JSON text it carries) and what the `interaction`
/// import tells (the agent to run, the resume answer as JSON).
#[derive(Clone, Copy, Debug)]
pub struct TaskInput<'a> {
    pub goal: &'a str,
    pub context: &'a str,
    pub input_data: &'a str,
    pub federation_session_id: &'a str,
    pub request_id: &'a str,
    pub metadata: &'a [(String, String)],
    /// Empty for the backend's default agent.
    pub agent: &'a str,
    pub resume_json: Option<&'a str>,
}

/// Why a task cannot become a run body: its caller's input is not what the wrapper
/// takes (an adapter reports it as `invalid-input`).
#[derive(Clone, Debug, PartialEq)]
pub struct InvalidInput(pub String);

impl std::fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InvalidInput {}

impl RunRequest {
    /// The body of a task: `input_data` must be a JSON object and `resume` JSON.
    pub fn from_task(task: TaskInput<'_>) -> Result<RunRequest, InvalidInput> {
        let input_data = match serde_json::from_str::<Value>(task.input_data) {
            Ok(Value::Object(map)) => map,
            Ok(_) => return Err(InvalidInput("input_data must be a JSON object".into())),
            Err(e) => return Err(InvalidInput(format!("input_data is not JSON: {e}"))),
        };
        let resume = task
            .resume_json
            .map(serde_json::from_str::<Value>)
            .transpose()
            .map_err(|e| InvalidInput(format!("resume is not JSON: {e}")))?;
        Ok(RunRequest {
            goal: task.goal.to_string(),
            context: task.context.to_string(),
            input_data,
            federation_session_id: Some(task.federation_session_id.to_string()),
            request_id: Some(task.request_id.to_string()),
            metadata: task
                .metadata
                .iter()
                .map(|(k, v)| (k.clone(), Value::String(v.clone())))
                .collect(),
            agent: (!task.agent.is_empty()).then(|| task.agent.to_string()),
            resume,
        })
    }

    /// The body as a JSON object, for an adapter to add its framework's fields to.
    pub fn into_object(self) -> Object {
        match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            _ => unreachable!("a struct of JSON values serializes to an object"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task<'a>(input_data: &'a str, agent: &'a str, resume: Option<&'a str>) -> TaskInput<'a> {
        TaskInput {
            goal: "g",
            context: "c",
            input_data,
            federation_session_id: "s",
            request_id: "r",
            metadata: &[],
            agent,
            resume_json: resume,
        }
    }

    #[test]
    fn a_resume_of_null_is_sent_and_no_resume_is_not() {
        let body = RunRequest::from_task(task("{}", "", Some("null")))
            .unwrap()
            .into_object();
        assert_eq!(body.get("resume"), Some(&Value::Null));
        assert!(!body.contains_key("agent"));
        let body = RunRequest::from_task(task("{}", "a", None))
            .unwrap()
            .into_object();
        assert!(!body.contains_key("resume"));
        assert_eq!(body["agent"], "a");
        let back: RunRequest = serde_json::from_str(r#"{"goal":"g","resume":null}"#).unwrap();
        assert_eq!(back.resume, Some(Value::Null));
        let back: RunRequest = serde_json::from_str(r#"{"goal":"g"}"#).unwrap();
        assert_eq!(back.resume, None);
    }

    #[test]
    fn input_data_must_be_an_object_and_resume_json() {
        let error = RunRequest::from_task(task("[1]", "", None)).unwrap_err();
        assert_eq!(error.0, "input_data must be a JSON object");
        let error = RunRequest::from_task(task("{", "", None)).unwrap_err();
        assert!(error.0.starts_with("input_data is not JSON"), "{error}");
        let error = RunRequest::from_task(task("{}", "", Some("{"))).unwrap_err();
        assert!(error.0.starts_with("resume is not JSON"), "{error}");
    }
}
