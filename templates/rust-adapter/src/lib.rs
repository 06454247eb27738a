//! A minimal agent-federation adapter: maps a task to the agent wrapper's JSON body,
//! POSTs it through the host's `outbound-http` import (or, when a caller watches the
//! task, `outbound-stream`, relaying progress) and maps the reply back. The agent the
//! caller named and its answer to an interrupt come from the `interaction` import; a
//! reply asking for input is reported back through it (`sdk::response_from_reply`).
//!
//! Change `ROUTE` and `build_payload` for your framework; everything else is plumbing
//! the SDK already does the same way for every adapter.

use federation_adapter_sdk::{self as sdk, AdapterError, AdapterInfo, Guest, Task, TaskResponse};
use serde_json::{Map, Value};

/// The wrapper route this adapter calls, relative to `task.wrapper_url`.
const ROUTE: &str = "/v1/run_graph";

struct Adapter;

impl Guest for Adapter {
    /// Called once when the host loads the component; must not call imports.
    fn describe() -> AdapterInfo {
        AdapterInfo {
            // The backend name callers put in `TaskRequest.backend`: 1..64 of [a-z0-9-].
            name: env!("CARGO_PKG_NAME").into(),
            version: env!("CARGO_PKG_VERSION").into(),
            framework: "langgraph".into(),
            route: ROUTE.into(),
            description: "Template adapter: LangGraph graph via the agent wrapper".into(),
        }
    }

    /// Runs one task on a fresh instance. Return `Err` for errors the caller should see
    /// (each variant maps to a gRPC code); a panic is a trap (INTERNAL).
    fn run_task(task: Task) -> Result<TaskResponse, AdapterError> {
        let body = build_payload(&task, &sdk::Interaction::current())?;
        let reply = if sdk::progress::watched() {
            // A caller watches the task (StreamAgentTask): ask the wrapper for its
            // NDJSON progress stream and relay each event through `progress.emit`.
            sdk::stream_json(&task, ROUTE, &body)?
        } else {
            sdk::post_json(&task, ROUTE, &body)?
        };
        sdk::response_from_reply(&task, reply)
    }
}

sdk::export!(Adapter);

/// The framework's payload: the wrapper's standard body (`goal`, `context`,
/// `input_data`, `federation_session_id`, `request_id`, `metadata`, and `agent` /
/// `resume` when the caller gave them) plus whatever your framework needs. Pure, so it
/// is unit-tested on the host target (`cargo test`).
pub fn build_payload(
    task: &Task,
    asked: &sdk::Interaction,
) -> Result<Map<String, Value>, AdapterError> {
    let mut body = sdk::wrapper_payload(task, asked)?;
    // Example: LangGraph checkpoints by thread id; one federation session, one thread.
    body.insert(
        "thread_id".into(),
        Value::String(task.federation_session_id.clone()),
    );
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(input_data: &str) -> Task {
        Task {
            goal: "plan a trip".into(),
            context: String::new(),
            input_data: input_data.into(),
            federation_session_id: "s-1".into(),
            request_id: "r-1".into(),
            metadata: vec![("team".into(), "a".into())],
            wrapper_url: "http://127.0.0.1:8080".into(),
            deadline_ms: Some(5_000),
        }
    }

    #[test]
    fn payload_carries_the_task_and_the_thread_id() {
        let body = build_payload(&task(r#"{"city":"Lyon"}"#), &Default::default()).unwrap();
        assert_eq!(body["goal"], "plan a trip");
        assert_eq!(body["input_data"]["city"], "Lyon");
        assert_eq!(body["metadata"]["team"], "a");
        assert_eq!(body["thread_id"], "s-1");
        // The default agent, not resuming: neither key is sent.
        assert!(!body.contains_key("agent") && !body.contains_key("resume"));
    }

    #[test]
    fn payload_carries_the_agent_and_the_resume_answer() {
        let asked = sdk::Interaction {
            agent: "trip_planner".into(),
            resume_json: Some(r#"{"approved":true}"#.into()),
        };
        let body = build_payload(&task("{}"), &asked).unwrap();
        assert_eq!(body["agent"], "trip_planner");
        assert_eq!(body["resume"]["approved"], true);
        // JSON null is an answer too: the key is what makes a resume.
        let asked = sdk::Interaction {
            resume_json: Some("null".into()),
            ..Default::default()
        };
        let body = build_payload(&task("{}"), &asked).unwrap();
        assert_eq!(body.get("resume"), Some(&Value::Null));
    }

    #[test]
    fn input_data_must_be_an_object() {
        let error = build_payload(&task("[1, 2]"), &Default::default()).unwrap_err();
        assert!(matches!(error, AdapterError::InvalidInput(_)), "{error:?}");
    }

    #[test]
    fn reply_maps_to_a_task_response() {
        let reply = serde_json::json!({"output": "done", "resumed": true});
        let Value::Object(reply) = reply else {
            unreachable!()
        };
        let response = sdk::response_from_reply(&task("{}"), reply).unwrap();
        assert_eq!(response.output, "done");
        assert!(response.resumed);
        assert_eq!(response.federation_session_id, "s-1");
    }

    #[test]
    fn a_reply_asking_for_input_carries_its_interrupt() {
        let reply = |value: Value| match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let asking = reply(serde_json::json!({
            "output": "", "status": "input_required", "interrupt": {"question": "Which city?"},
        }));
        assert_eq!(
            sdk::interrupt_of(&asking).as_deref(),
            Some(r#"{"question":"Which city?"}"#)
        );
        let done = reply(serde_json::json!({"output": "done", "status": "completed"}));
        assert_eq!(sdk::interrupt_of(&done), None);
    }

    #[test]
    fn name_is_a_valid_backend_name() {
        let name = env!("CARGO_PKG_NAME");
        assert!(
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "the package name {name:?} is the backend name: use 1..64 of [a-z0-9-]"
        );
    }
}
