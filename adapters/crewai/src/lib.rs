//! The CrewAI adapter: runs a task as a CrewAI crew through the agent wrapper's
//! `POST /v1/run_crew`: the crew the task's `agent` names, or the wrapper's default.
//! The wrapper fills the crew's placeholders from `goal`, `context` and `input_data`
//! and resumes the crew's state stored under `federation_session_id`.

use federation_adapter_sdk::{AdapterError, AdapterInfo, Guest, Task, TaskResponse, export};

const ROUTE: &str = "/v1/run_crew";

struct CrewAi;

impl Guest for CrewAi {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "crewai".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            framework: "crewai".into(),
            route: ROUTE.into(),
            description:
                "CrewAI crews registered in the agent wrapper (default: researcher + writer)".into(),
        }
    }

    fn run_task(task: Task) -> Result<TaskResponse, AdapterError> {
        // CrewAI takes the task as-is: the crew's task descriptions interpolate
        // goal, context and input_data.
        federation_adapter_sdk::run_via_wrapper(&task, ROUTE, |_, _| {})
    }
}

export!(CrewAi);
