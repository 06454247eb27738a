//! MCP ↔ federation, the one table (docs/a2a-and-mcp.md repeats it):
//!
//! | MCP | federation |
//! | --- | --- |
//! | a tool (`tools/list`) | an agent `ListAgents` lists with a loaded backend |
//! | tool `name` | the agent's name, characters outside `[A-Za-z0-9_.-]` as `_` |
//! | tool `description` | the agent's description, framework, tools |
//! | `inputSchema` | the agent's input JSON Schema plus `goal`, `session_id`, `resume` |
//! | argument `goal` | `goal` |
//! | argument `session_id` (a fresh one when absent) | `federation_session_id` |
//! | argument `resume` | `resume` (the answer to the session's question) |
//! | the other arguments | `input_data` |
//! | `started`, progress events | `notifications/progress` (with a `progressToken`) |
//! | `completed` | text: `output`; `structuredContent`: result, session, status |
//! | `input_required` | not an error: the question, and how to answer it |
//! | `failed`, or refused before it started | `isError: true`, `{code, reason, details}` |
//! | a bad argument (`INVALID_ARGUMENT`) | JSON-RPC error -32602 |

use std::sync::Arc;

use federation_proto::doors::id_is_valid;
use federation_proto::json::{json_to_struct, json_to_value, struct_to_json, value_to_json};
use federation_proto::{AgentInfo, TaskFailed, TaskProgress, TaskRequest, TaskResponse};
use rmcp::ErrorData;
use rmcp::model::{CallToolResult, ContentBlock, JsonObject, Tool};
use serde_json::{Map, Value, json};
use tonic::Code;

use crate::error::{any_to_json, code_name, invalid_params, reason_of};

/// The arguments every tool takes beside the agent's own input.
pub const GOAL: &str = "goal";
pub const SESSION_ID: &str = "session_id";
pub const RESUME: &str = "resume";

/// The MCP tool name of an agent: at most 128 of `[A-Za-z0-9_.-]` (MCP's tool name
/// rule); a federation name may also hold ':', which becomes '_'.
pub fn tool_name(agent: &str) -> String {
    agent
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(128)
        .collect()
}

/// The agent's input schema as an object schema (an absent or odd one: `{}` of an
/// object).
fn agent_schema(agent: &AgentInfo) -> Map<String, Value> {
    agent
        .input_schema
        .as_ref()
        .and_then(|s| struct_to_json(s).ok())
        .unwrap_or_default()
}

/// The tool of an agent.
pub fn tool_of(agent: &AgentInfo) -> Tool {
    let mut schema = agent_schema(agent);
    let mut properties = match schema.remove("properties") {
        Some(Value::Object(properties)) => properties,
        _ => Map::new(),
    };
    let mut required: Vec<Value> = match schema.remove("required") {
        Some(Value::Array(required)) => required
            .into_iter()
            .filter(|r| !matches!(r.as_str(), Some(GOAL | SESSION_ID | RESUME)))
            .collect(),
        _ => Vec::new(),
    };
    properties.insert(
        GOAL.into(),
        json!({"type": "string", "description": "What the agent should achieve."}),
    );
    properties.insert(
        SESSION_ID.into(),
        json!({"type": "string", "description":
            "The session to run in (at most 128 of [A-Za-z0-9._:-]): calls with the same \
             session share the agent's state. Absent: a new session, returned in the result."}),
    );
    properties.insert(
        RESUME.into(),
        json!({"description":
            "Only to answer the agent's question: when a call ends with status \
             \"input_required\", call again with its session_id and the answer here."}),
    );
    required.insert(0, Value::String(GOAL.into()));
    schema.insert("type".into(), json!("object"));
    schema.insert("properties".into(), Value::Object(properties));
    schema.insert("required".into(), Value::Array(required));

    let mut description = if agent.description.is_empty() {
        format!("Runs the {} agent {:?}.", agent.framework, agent.name)
    } else {
        format!("{} ({} agent)", agent.description, agent.framework)
    };
    if !agent.tools.is_empty() {
        description.push_str(&format!("; its tools: {}", agent.tools.join(", ")));
    }
    if agent.can_request_input {
        description.push_str(
            ". It may stop to ask for input: the result then says what it asks; answer by \
             calling this tool again with the same session_id and `resume`",
        );
    }
    let mut tool = Tool::new(tool_name(&agent.name), description, Arc::new(schema));
    tool.title = Some(agent.name.clone());
    tool
}

/// The JSON type name of a value, as JSON Schema's `type` says it.
fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "string" => value.is_string(),
        "number" => value.is_number(),
        "integer" => value.is_i64() || value.is_u64(),
        "boolean" => value.is_boolean(),
        "object" => value.is_object(),
        "array" => value.is_array(),
        "null" => value.is_null(),
        _ => true,
    }
}

/// Checks `input` against the top level of the agent's schema: required keys present,
/// the declared types of its properties, no unknown key when `additionalProperties` is
/// false. (The agent's own framework validates the rest.)
fn check_input(agent: &AgentInfo, input: &Map<String, Value>) -> Result<(), ErrorData> {
    let schema = agent_schema(agent);
    let empty = Map::new();
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    if let Some(Value::Array(required)) = schema.get("required") {
        for key in required.iter().filter_map(Value::as_str) {
            if !matches!(key, GOAL | SESSION_ID | RESUME) && !input.contains_key(key) {
                return Err(invalid_params(format!(
                    "argument {key:?} is required (the tool's inputSchema)"
                )));
            }
        }
    }
    for (key, value) in input {
        match properties.get(key) {
            Some(property) => {
                let ok = match property.get("type") {
                    Some(Value::String(t)) => type_matches(t, value),
                    Some(Value::Array(types)) => types
                        .iter()
                        .filter_map(Value::as_str)
                        .any(|t| type_matches(t, value)),
                    _ => true,
                };
                if !ok {
                    return Err(invalid_params(format!(
                        "argument {key:?} must be of type {} (the tool's inputSchema)",
                        property["type"]
                    )));
                }
            }
            None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                return Err(invalid_params(format!(
                    "unknown argument {key:?} (the tool's inputSchema lists its arguments)"
                )));
            }
            None => {}
        }
    }
    Ok(())
}

/// The task of a `tools/call` of `agent` (run on `backend`), and its session.
pub fn task_request(
    agent: &AgentInfo,
    backend: &str,
    arguments: Option<JsonObject>,
) -> Result<TaskRequest, ErrorData> {
    let mut input = arguments.unwrap_or_default();
    let resume = input.remove(RESUME);
    let session = match input.remove(SESSION_ID) {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id_is_valid(&id) => Some(id),
        Some(other) => {
            return Err(invalid_params(format!(
                "argument \"session_id\" must be a string of at most 128 of [A-Za-z0-9._:-], \
                 not starting with '.' and without '..' (got {other})"
            )));
        }
    };
    let goal = match input.remove(GOAL) {
        Some(Value::String(goal)) if !goal.trim().is_empty() => goal,
        None if resume.is_some() => "answer to the agent's question".into(),
        None => return Err(invalid_params("argument \"goal\" (a string) is required")),
        Some(_) => {
            return Err(invalid_params(
                "argument \"goal\" must be a non-empty string",
            ));
        }
    };
    let federation_session_id = match (session, &resume) {
        (Some(session), _) => session,
        (None, Some(_)) => {
            return Err(invalid_params(
                "argument \"resume\" answers a session's question: give that call's \
                 \"session_id\" with it",
            ));
        }
        (None, None) => uuid::Uuid::new_v4().to_string(),
    };
    if resume.is_none() {
        check_input(agent, &input)?;
    }
    Ok(TaskRequest {
        goal,
        input_data: (!input.is_empty()).then(|| json_to_struct(input)),
        federation_session_id,
        backend: backend.to_string(),
        request_id: uuid::Uuid::new_v4().to_string(),
        agent: agent.name.clone(),
        resume: resume.map(json_to_value),
        ..TaskRequest::default()
    })
}

/// One line for a progress notification of a progress event.
pub fn progress_message(progress: &TaskProgress) -> String {
    if !progress.message.is_empty() {
        return progress.message.clone();
    }
    federation_proto::task_progress::Kind::try_from(progress.kind)
        .map_or("progress", |k| k.as_str_name())
        .to_ascii_lowercase()
}

fn result_json(response: &TaskResponse) -> Value {
    response
        .result
        .as_ref()
        .and_then(|r| struct_to_json(r).ok())
        .map_or(Value::Null, Value::Object)
}

/// What the host reports of a run beside its answer.
fn run_fields(response: &TaskResponse, session: &str) -> Map<String, Value> {
    let mut fields = Map::new();
    fields.insert("session_id".into(), json!(session));
    for (key, value) in [
        ("agent", &response.agent),
        ("backend", &response.backend),
        ("request_id", &response.request_id),
        ("trace_id", &response.trace_id),
    ] {
        if !value.is_empty() {
            fields.insert(key.into(), json!(value));
        }
    }
    fields.insert("resumed".into(), json!(response.resumed));
    fields
}

/// The result of a run that completed: its answer as text, its structured result.
pub fn completed_result(response: &TaskResponse, session: &str) -> CallToolResult {
    let mut structured = run_fields(response, session);
    structured.insert("status".into(), json!("completed"));
    structured.insert("output".into(), json!(response.output));
    structured.insert("result".into(), result_json(response));
    let mut result = CallToolResult::success(vec![ContentBlock::text(response.output.clone())]);
    result.structured_content = Some(Value::Object(structured));
    result
}

/// The result of a run that stopped to ask for input: not an error; it says what is
/// asked and how to answer.
pub fn input_required_result(response: &TaskResponse, session: &str, tool: &str) -> CallToolResult {
    let interrupt = response
        .interrupt
        .as_ref()
        .and_then(|v| value_to_json(v).ok())
        .unwrap_or(Value::Null);
    let asked = match interrupt.get("question").and_then(Value::as_str) {
        Some(question) => format!("{question} (the agent's question: {interrupt})"),
        None => format!("{interrupt}"),
    };
    let text = format!(
        "The agent needs input before it can go on. It asks: {asked}. To answer, call the \
         tool {tool:?} again with \"session_id\": {session:?} and \"resume\": your answer."
    );
    let mut structured = run_fields(response, session);
    structured.insert("status".into(), json!("input_required"));
    structured.insert("interrupt".into(), interrupt);
    structured.insert(
        "answer_with".into(),
        json!({"tool": tool, "arguments": {SESSION_ID: session, RESUME: "<your answer>"}}),
    );
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(Value::Object(structured));
    result
}

/// The tool error of a run that failed (or was refused before it started): the error
/// text and `{code, reason, details}`, the reason being the gRPC `ErrorInfo`'s.
pub fn failure_result(
    code: Code,
    message: &str,
    details: Vec<Value>,
    session: &str,
) -> CallToolResult {
    let reason = reason_of(&details);
    let status = if code == Code::Cancelled {
        "canceled"
    } else {
        "failed"
    };
    let text = match &reason {
        Some(reason) => format!("{} ({reason}): {message}", code_name(code)),
        None => format!("{}: {message}", code_name(code)),
    };
    let mut result = CallToolResult::error(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json!({
        "status": status,
        "session_id": session,
        "code": code_name(code),
        "reason": reason,
        "message": message,
        "details": details,
    }));
    result
}

/// The tool error of a failed event.
pub fn failed_result(failed: &TaskFailed, session: &str) -> CallToolResult {
    let details = failed.details.iter().filter_map(any_to_json).collect();
    failure_result(
        Code::from_i32(failed.code),
        &failed.message,
        details,
        session,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agent(schema: Value) -> AgentInfo {
        AgentInfo {
            name: "trip:planner".into(),
            framework: "langgraph".into(),
            description: "plans a trip".into(),
            input_schema: match schema {
                Value::Object(map) => Some(json_to_struct(map)),
                _ => None,
            },
            can_request_input: true,
            backends: vec!["langgraph".into()],
            ..AgentInfo::default()
        }
    }

    fn args(value: Value) -> Option<JsonObject> {
        value.as_object().cloned()
    }

    #[test]
    fn a_tool_takes_the_agents_input_plus_goal_session_and_resume() {
        let info = agent(json!({"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}));
        let tool = tool_of(&info);
        assert_eq!(tool.name, "trip_planner");
        let schema = Value::Object((*tool.input_schema).clone());
        assert_eq!(schema["required"], json!(["goal", "city"]));
        for key in ["city", "goal", "session_id", "resume"] {
            assert!(schema["properties"].get(key).is_some(), "{key}: {schema}");
        }
        assert!(tool.description.unwrap().contains("plans a trip"));
    }

    #[test]
    fn arguments_become_goal_session_and_input_data() {
        let info = agent(json!({"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}));
        let request = task_request(
            &info,
            "langgraph",
            args(json!({"goal": "plan", "city": "Lyon", "session_id": "s-1"})),
        )
        .unwrap();
        assert_eq!(request.goal, "plan");
        assert_eq!(request.federation_session_id, "s-1");
        assert_eq!(request.agent, "trip:planner");
        assert!(request.input_data.unwrap().fields.contains_key("city"));
        assert!(request.resume.is_none());
        let fresh =
            task_request(&info, "langgraph", args(json!({"goal": "g", "city": "x"}))).unwrap();
        assert!(id_is_valid(&fresh.federation_session_id));
    }

    #[test]
    fn bad_arguments_are_invalid_params() {
        let info = agent(json!({"type": "object",
            "properties": {"city": {"type": "string"}}, "required": ["city"]}));
        for bad in [
            json!({}),
            json!({"goal": 3, "city": "x"}),
            json!({"goal": "g"}),
            json!({"goal": "g", "city": 7}),
            json!({"goal": "g", "city": "x", "session_id": "a b"}),
            json!({"goal": "g", "city": "x", "session_id": "a..b"}),
            json!({"goal": "g", "resume": "Porto"}),
        ] {
            let error = task_request(&info, "b", args(bad.clone())).unwrap_err();
            assert_eq!(error.code, rmcp::model::ErrorCode::INVALID_PARAMS, "{bad}");
        }
    }

    #[test]
    fn a_resume_needs_its_session_but_not_the_input() {
        let info = agent(json!({"type": "object", "required": ["city"]}));
        let request = task_request(
            &info,
            "b",
            args(json!({"session_id": "s", "resume": {"city": "Porto"}})),
        )
        .unwrap();
        assert_eq!(
            value_to_json(request.resume.as_ref().unwrap()).unwrap(),
            json!({"city": "Porto"})
        );
        assert_eq!(request.federation_session_id, "s");
    }

    #[test]
    fn an_interrupt_is_not_an_error_and_says_how_to_answer() {
        let response = TaskResponse {
            interrupt: Some(json_to_value(json!({"question": "Which city?"}))),
            ..TaskResponse::default()
        };
        let result = input_required_result(&response, "s-1", "trip_planner");
        assert_eq!(result.is_error, Some(false));
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["status"], "input_required");
        assert_eq!(structured["interrupt"]["question"], "Which city?");
        assert_eq!(structured["answer_with"]["arguments"]["session_id"], "s-1");
    }

    #[test]
    fn names_outside_mcps_charset_are_sanitized() {
        assert_eq!(tool_name("crew"), "crew");
        assert_eq!(tool_name("a:b.c-d_e"), "a_b.c-d_e");
        assert_eq!(tool_name(&"x".repeat(200)).len(), 128);
    }
}
