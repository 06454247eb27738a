//! The LangGraph adapter: runs a task as a LangGraph graph through the agent wrapper's
//! `POST /v1/run_graph`: the graph the task's `agent` names, or the wrapper's default.
//! The session id is the graph's checkpoint `thread_id`, so a second task in the same
//! session continues the same thread; a graph that stops at `interrupt()` ends the task
//! INPUT_REQUIRED, and a task with `resume` continues it (the SDK does both).

use federation_adapter_sdk::{AdapterError, AdapterInfo, Guest, Task, TaskResponse, export};
use serde_json::Value;

const ROUTE: &str = "/v1/run_graph";

struct LangGraph;

impl Guest for LangGraph {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "langgraph".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            framework: "langgraph".into(),
            route: ROUTE.into(),
            description:
                "LangGraph graphs registered in the agent wrapper (default: plan -> respond)".into(),
        }
    }

    fn run_task(task: Task) -> Result<TaskResponse, AdapterError> {
        federation_adapter_sdk::run_via_wrapper(&task, ROUTE, |task, body| {
            // LangGraph keys checkpoints by thread id: one federation session, one thread.
            body.insert(
                "thread_id".into(),
                Value::String(task.federation_session_id.clone()),
            );
        })
    }
}

export!(LangGraph);
