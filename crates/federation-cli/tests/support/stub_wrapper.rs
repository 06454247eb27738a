//! A recording HTTP stub standing in for the agent wrapper. It keeps every request and
//! answers according to the task's goal: `status:NNN` answers that HTTP status,
//! `slow:MS` waits first, `huge` sends 2 MiB, `notjson` sends text; anything else gets
//! a wrapper-shaped success reply. A request that accepts `application/x-ndjson` gets
//! the wrapper's progress stream instead (started, step, llm_call, tool_call,
//! checkpoint_saved, step, completed with that reply), shaped by goals of its own:
//! `stream-fail:NNN` ends with a `failed` event of that status, `stream-cut` ends
//! without a final event, `stream-garbage` ends with a line that is not JSON,
//! `stream-big-event` sends an event over the host's data
//! limit, `stream-slow:MS` waits that long before each event.
//!
//! Agents: a reply names the agent that ran (the request's `agent`, else the route's
//! default `crew` or `graph`) and echoes a received `resume` as `resume_received`; goal
//! `interrupt` answers status `input_required` with [`INTERRUPT`]. `GET /v1/agents`
//! lists [`agents`]; `GET /v1/sessions/{sid}/runs/{rid}` answers the run record of a
//! reply it gave (404 for others).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
};
use federation_wire::{RunProgress, RunRecord, RunStatus};
use futures::StreamExt;
use serde_json::{Value, json};

#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Clone, Default)]
pub struct StubWrapper {
    records: Arc<Mutex<Vec<Recorded>>>,
    /// The replies given, by "<session>/<request_id>", for the run records.
    replies: Arc<Mutex<HashMap<String, Value>>>,
}

/// What a run of goal `interrupt` asks.
pub fn interrupt_value() -> Value {
    json!({"question": "Which city?", "options": ["Lyon", "Porto"]})
}

/// The agents `GET /v1/agents` lists: the two defaults, a graph that asks for input,
/// and one of a framework no shipped adapter drives.
pub fn agents() -> Value {
    json!({"agents": [
        {"name": "crew", "framework": "crewai", "description": "researcher + writer",
         "default": true, "input_schema": {"type": "object", "properties": {}},
         "can_request_input": false, "tools": [], "llm": "wrapper", "source": "built-in"},
        {"name": "graph", "framework": "langgraph", "description": "plan -> respond",
         "default": true, "input_schema": {"type": "object", "properties": {}},
         "can_request_input": false, "tools": [], "llm": "wrapper", "source": "built-in"},
        {"name": "trip_planner", "framework": "langgraph", "description": "plans a trip",
         "default": false,
         "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]},
         "can_request_input": true, "tools": ["lookup_weather"], "llm": "wrapper",
         "source": "tests/langgraph.json"},
        {"name": "team", "framework": "autogen", "description": "no adapter for it",
         "default": true, "input_schema": {"type": "object"}, "can_request_input": false,
         "tools": [], "llm": "own", "source": "agents.toml"},
    ]})
}

impl StubWrapper {
    /// Starts the stub on 127.0.0.1:0 on the current runtime.
    pub async fn start() -> (StubWrapper, SocketAddr) {
        let stub = StubWrapper::default();
        let app = Router::new().fallback(handle).with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, addr)
    }

    /// The requests whose body carries `request_id`.
    pub fn requests_for(&self, request_id: &str) -> Vec<Recorded> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body["request_id"] == request_id)
            .cloned()
            .collect()
    }

    /// All requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// All requests whose body has `goal`.
    pub fn requests_with_goal(&self, goal: &str) -> Vec<Recorded> {
        self.records
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.body["goal"] == goal)
            .cloned()
            .collect()
    }
}

async fn handle(
    State(stub): State<StubWrapper>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    stub.records.lock().unwrap().push(Recorded {
        method: method.clone(),
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
    if method == Method::GET {
        if uri.path() == "/v1/agents" {
            return axum::Json(agents()).into_response();
        }
        if let Some(run) = uri.path().strip_prefix("/v1/sessions/")
            && let Some((session, request_id)) = run.split_once("/runs/")
            && !request_id.contains('/')
        {
            return run_record(&stub, &format!("{session}/{request_id}"));
        }
    }
    let goal = body["goal"].as_str().unwrap_or_default().to_string();
    if let Some(code) = goal.strip_prefix("status:") {
        let status = StatusCode::from_u16(code.parse().unwrap()).unwrap();
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return (status, "Traceback (most recent call last): boom in crew").into_response();
        }
        let error =
            json!({"error": {"code": "stub", "message": format!("stub refuses with {code}")}});
        return (status, axum::Json(error)).into_response();
    }
    if let Some(ms) = goal.strip_prefix("slow:") {
        tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
    }
    match goal.as_str() {
        "huge" => return "x".repeat(2 << 20).into_response(),
        "notjson" => return "<html>not json</html>".into_response(),
        _ => {}
    }
    let trace_id = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| tp.split('-').nth(1))
        .unwrap_or_default()
        .to_string();
    let reply = reply(&goal, uri.path(), &body, &trace_id);
    if let (Some(session), Some(request_id)) = (
        body["federation_session_id"].as_str(),
        body["request_id"].as_str(),
    ) {
        stub.replies
            .lock()
            .unwrap()
            .insert(format!("{session}/{request_id}"), reply.clone());
    }
    let streamed = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/x-ndjson"));
    if streamed {
        return progress_stream(&goal, reply, &trace_id);
    }
    axum::Json(reply).into_response()
}

/// The wrapper's NDJSON progress stream for `goal`, ending (normally) with `reply`.
fn progress_stream(goal: &str, reply: Value, trace_id: &str) -> Response {
    let mut events = vec![
        (
            "started",
            json!({"framework": reply["framework"], "attempt": 1}),
        ),
        (
            "step",
            json!({"name": "research", "agent": "researcher", "phase": "started"}),
        ),
        (
            "llm_call",
            json!({"model": "stub", "agent": "researcher", "step": "research", "prompt_chars": 10, "completion_chars": 20}),
        ),
        (
            "tool_call",
            json!({"tool": "search", "agent": "researcher", "step": "research"}),
        ),
        (
            "step",
            json!({"name": "research", "agent": "researcher", "phase": "finished", "output": "notes"}),
        ),
        (
            "checkpoint_saved",
            json!({"step": "research", "checkpoint": 1}),
        ),
    ];
    if goal == "stream-big-event" {
        events.push(("tool_call", json!({"tool": "x".repeat(70 * 1024)})));
    }
    match goal.strip_prefix("stream-fail:") {
        Some(code) => events.push((
            "failed",
            json!({"status": code.parse::<u16>().unwrap(), "code": "stub", "message": format!("stub run failed with {code}")}),
        )),
        None if goal == "stream-cut" || goal == "stream-garbage" => {}
        None => events.push(("completed", json!({"reply": reply, "llm_calls": 1, "replayed": false}))),
    }
    let delay = goal
        .strip_prefix("stream-slow:")
        .map_or(Duration::ZERO, |ms| {
            Duration::from_millis(ms.parse().unwrap())
        });
    let trace_id = trace_id.to_string();
    let lines = events
        .into_iter()
        .enumerate()
        .map(move |(i, (kind, data))| {
            let event =
                json!({"seq": i + 1, "type": kind, "trace_id": trace_id, "ts": 0, "data": data});
            format!("{event}\n")
        })
        .chain((goal == "stream-garbage").then(|| "<html>not an event</html>\n".to_string()));
    let body = futures::stream::iter(lines).then(move |line| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::convert::Infallible>(line)
    });
    (
        [("content-type", "application/x-ndjson")],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// The wrapper's run record of a reply the stub gave (as `GET .../runs/{rid}`).
fn run_record(stub: &StubWrapper, task_id: &str) -> Response {
    let Some(reply) = stub.replies.lock().unwrap().get(task_id).cloned() else {
        let error = json!({"error": {"code": "run_not_found", "message": "no such run"}});
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    };
    let status = match reply["status"].as_str() {
        Some("input_required") => RunStatus::InputRequired,
        _ => RunStatus::Completed,
    };
    let graph = reply["framework"] == "langgraph";
    let record = RunRecord {
        federation_session_id: reply["federation_session_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
        request_id: reply["request_id"].as_str().unwrap_or_default().into(),
        route: if graph {
            "/v1/run_graph"
        } else {
            "/v1/run_crew"
        }
        .into(),
        framework: reply["framework"].as_str().unwrap_or_default().into(),
        agent: reply["agent"].as_str().map(str::to_string),
        status,
        attempt: 1,
        cancel_requested: false,
        trace_id: reply["trace_id"].as_str().unwrap_or_default().into(),
        body_sha256: String::new(),
        progress: RunProgress::default(),
        created_at: String::new(),
        updated_at: String::new(),
        result: reply.as_object().cloned(),
        error: None,
    };
    axum::Json(record).into_response()
}

/// The wrapper's JSON reply to a task.
fn reply(goal: &str, path: &str, body: &Value, trace_id: &str) -> Value {
    let graph = path == "/v1/run_graph";
    let agent = match body["agent"].as_str() {
        Some(agent) if !agent.is_empty() => agent,
        _ if graph => "graph",
        _ => "crew",
    };
    let interrupted = goal == "interrupt";
    let mut reply = json!({
        "output": if interrupted { String::new() } else { format!("stub answer to: {goal}") },
        "status": if interrupted { "input_required" } else { "completed" },
        "interrupt": if interrupted { interrupt_value() } else { Value::Null },
        "agent": agent,
        "framework": if graph { "langgraph" } else { "crewai" },
        "federation_session_id": body["federation_session_id"],
        "request_id": body["request_id"],
        "resumed": body["context"] == "resume",
        "trace_id": trace_id,
        "steps": [{"name": "research", "output": "notes"}, {"name": "write", "output": "answer"}],
    });
    if let Some(resume) = body.get("resume") {
        reply["resume_received"] = resume.clone();
    }
    reply
}
