//! The agent registry (`AgentView` and `AgentList` in `models.py`), as
//! `GET /v1/agents` lists it.

use serde::{Deserialize, Serialize};

use crate::Object;

/// One registered agent: enough for an agent card.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Agent {
    pub name: String,
    /// The framework that runs it; adapters whose `describe().framework` is the same
    /// can run it.
    pub framework: String,
    pub description: String,
    /// The agent a request without `agent` runs.
    pub default: bool,
    /// JSON Schema of its `input_data`.
    pub input_schema: Object,
    /// Whether a run may end `input_required`.
    pub can_request_input: bool,
    pub tools: Vec<String>,
    /// `wrapper`: runs on the wrapper's configured model; `own`: brings its own.
    pub llm: String,
    pub source: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentList {
    pub agents: Vec<Agent>,
}
