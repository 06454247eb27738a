//! A stand-in for the agent wrapper, speaking its HTTP contract (`federation-wire`'s
//! types) and answering by the task's goal:
//!
//! - `status:NNN` answers that HTTP status (500 with a Python traceback, others with the
//!   wrapper's error body, code `stub`); `wrapper-error:CODE` answers the wrapper's
//!   error `CODE` with its status ([`WRAPPER_ERRORS`]; `overloaded` with `Retry-After`); `slow:MS` waits first; `huge` sends 2 MiB; `notjson` sends
//!   text; `interrupt` ends the run `input_required` with [`interrupt_value`];
//!   [`HOLD_GOAL`] waits until [`StubWrapper::release`] (at most two minutes).
//! - Anything else gets a full success reply ([`reply`]): output `stub answer to:
//!   <goal>`, the agent that ran (the request's `agent`, else the route's default
//!   `crew` or `graph`), the resume it received echoed as `resume_received`.
//! - A request that accepts NDJSON gets the wrapper's progress stream instead
//!   (`started`, `step`, `llm_call`, `tool_call`, `step`, `checkpoint_saved`, then
//!   `completed` with that reply), shaped by goals of its own: `stream-fail:NNN` ends
//!   `failed` with that status, `stream-cut` ends without a final event,
//!   `stream-garbage` ends with a line that is not JSON, `stream-big-event` sends an
//!   event over the host's data limit, `stream-slow:MS` waits before each event.
//! - `GET /v1/agents` lists [`agents`]; `GET` and `POST .../cancel` of a run answer the
//!   run record of a reply it gave (404 for others); `GET .../events?after=N` of a run it
//!   streamed replays the lines of that stream with seq > N.
//!
//! It keeps every request (unless started without recording, as the benchmark does) for
//! tests to inspect.

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Method, StatusCode, Uri},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use federation_wire::{
    Agent, AgentList, ErrorBody, Event, EventType, LlmInfo, Object, ReplyStatus, RunFailure,
    RunProgress, RunRecord, RunReply, RunStatus, StateInfo, Step, routes,
};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

/// The goal that makes the stub hold a request until [`StubWrapper::release`].
pub const HOLD_GOAL: &str = "hold";
/// The longest the stub holds a request, whatever happens to its caller.
const MAX_HOLD: Duration = Duration::from_secs(120);

/// One request the stub received.
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

/// A running stub; clones share it.
#[derive(Clone)]
pub struct StubWrapper {
    inner: Arc<Inner>,
    addr: SocketAddr,
}

struct Inner {
    record: bool,
    records: Mutex<Vec<Recorded>>,
    /// The replies given, by "<session>/<request_id>", for the run records.
    replies: Mutex<HashMap<String, Value>>,
    /// The progress streams sent, by "<session>/<request_id>": one event per line.
    streams: Mutex<HashMap<String, Vec<String>>>,
    served: AtomicU64,
    held: AtomicUsize,
    release: watch::Sender<u64>,
}

impl StubWrapper {
    /// Starts a recording stub on 127.0.0.1:0 on the current runtime.
    pub async fn start() -> StubWrapper {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding the stub wrapper");
        let stub = StubWrapper::new(true, listener.local_addr().expect("its address"));
        tokio::spawn(stub.clone().serve(listener));
        stub
    }

    /// Starts a stub on 127.0.0.1:0 on a runtime of its own (`threads` workers), so
    /// that its work does not queue behind its caller's; `record`: keep the requests
    /// (off for load, which sends millions).
    pub fn start_detached(threads: usize, record: bool) -> std::io::Result<StubWrapper> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let stub = StubWrapper::new(record, listener.local_addr()?);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("stub-wrapper")
            .enable_all()
            .build()?;
        let serving = stub.clone();
        std::thread::Builder::new()
            .name("stub-wrapper".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the stub listener");
                    serving.serve(listener).await;
                })
            })?;
        Ok(stub)
    }

    fn new(record: bool, addr: SocketAddr) -> StubWrapper {
        let (release, _) = watch::channel(0);
        StubWrapper {
            inner: Arc::new(Inner {
                record,
                records: Mutex::default(),
                replies: Mutex::default(),
                streams: Mutex::default(),
                served: AtomicU64::new(0),
                held: AtomicUsize::new(0),
                release,
            }),
            addr,
        }
    }

    async fn serve(self, listener: tokio::net::TcpListener) {
        // Small replies must not wait for a delayed ACK (Nagle).
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let app = Router::new().fallback(handle).with_state(self);
        if let Err(error) = axum::serve(listener, app).await {
            eprintln!("stub wrapper stopped: {error}");
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn records(&self, keep: impl Fn(&Recorded) -> bool) -> Vec<Recorded> {
        let records = self.inner.records.lock().expect("stub lock poisoned");
        records.iter().filter(|r| keep(r)).cloned().collect()
    }

    /// The requests whose body carries `request_id`.
    pub fn requests_for(&self, request_id: &str) -> Vec<Recorded> {
        self.records(|r| r.body["request_id"] == request_id)
    }

    /// All requests to `path`.
    pub fn requests_to(&self, path: &str) -> Vec<Recorded> {
        self.records(|r| r.path == path)
    }

    /// All requests whose body has `goal`.
    pub fn requests_with_goal(&self, goal: &str) -> Vec<Recorded> {
        self.records(|r| r.body["goal"] == goal)
    }

    /// Every request so far, forgotten.
    pub fn take(&self) -> Vec<Recorded> {
        std::mem::take(&mut *self.inner.records.lock().expect("stub lock poisoned"))
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Requests of [`HOLD_GOAL`] being held right now.
    pub fn held(&self) -> usize {
        self.inner.held.load(Ordering::Relaxed)
    }

    /// Waits until at least `n` requests are held; false on timeout.
    pub async fn wait_held(&self, n: usize, timeout: Duration) -> bool {
        let until = Instant::now() + timeout;
        while self.held() < n {
            if Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    /// Lets every held request go.
    pub fn release(&self) {
        self.inner
            .release
            .send_modify(|generation| *generation += 1);
    }
}

/// What a run of goal `interrupt` asks.
pub fn interrupt_value() -> Value {
    json!({"question": "Which city?", "options": ["Lyon", "Porto"]})
}

/// The agents `GET /v1/agents` lists: the two defaults, a graph that asks for input,
/// and one of a framework no shipped adapter drives.
pub fn agents() -> AgentList {
    let schema = |value: Value| match value {
        Value::Object(map) => map,
        _ => unreachable!("a schema object"),
    };
    let agent = |name: &str, framework: &str, description: &str, default: bool| Agent {
        name: name.into(),
        framework: framework.into(),
        description: description.into(),
        default,
        input_schema: schema(json!({"type": "object", "properties": {}})),
        can_request_input: false,
        tools: vec![],
        llm: "wrapper".into(),
        source: "built-in".into(),
    };
    AgentList {
        agents: vec![
            agent("crew", "crewai", "researcher + writer", true),
            agent("graph", "langgraph", "plan -> respond", true),
            Agent {
                input_schema: schema(json!({"type": "object",
                    "properties": {"city": {"type": "string"}}, "required": ["city"]})),
                can_request_input: true,
                tools: vec!["lookup_weather".into()],
                source: "tests/langgraph.json".into(),
                ..agent("trip_planner", "langgraph", "plans a trip", false)
            },
            Agent {
                input_schema: schema(json!({"type": "object"})),
                llm: "own".into(),
                source: "agents.toml".into(),
                ..agent("team", "autogen", "no adapter for it", true)
            },
        ],
    }
}

/// The wrapper's reply to a task of `goal` sent to `path` with `body`, as the stub
/// gives it (a [`RunReply`], plus `resume_received` when the body resumed).
pub fn reply(goal: &str, path: &str, body: &Value, trace_id: &str) -> Value {
    let graph = path == routes::RUN_GRAPH;
    let agent = match body["agent"].as_str() {
        Some(agent) if !agent.is_empty() => agent,
        _ if graph => "graph",
        _ => "crew",
    };
    let interrupted = goal == "interrupt";
    let step = |name: &str, agent: &str, output: &str| Step {
        name: name.into(),
        agent: Some(agent.into()),
        output: output.into(),
        resumed_from_checkpoint: false,
    };
    let reply = RunReply {
        output: if interrupted {
            String::new()
        } else {
            format!("stub answer to: {goal}")
        },
        framework: if graph { "langgraph" } else { "crewai" }.into(),
        agent: agent.into(),
        status: if interrupted {
            ReplyStatus::InputRequired
        } else {
            ReplyStatus::Completed
        },
        interrupt: if interrupted {
            interrupt_value()
        } else {
            Value::Null
        },
        federation_session_id: body["federation_session_id"]
            .as_str()
            .unwrap_or_default()
            .into(),
        request_id: body["request_id"].as_str().map(str::to_string),
        resumed: body["context"] == "resume",
        trace_id: trace_id.into(),
        llm: LlmInfo {
            provider: "offline".into(),
            model: "offline-deterministic".into(),
            gateway: None,
        },
        steps: vec![
            step("research", "researcher", "notes"),
            step("write", "writer", "answer"),
        ],
        history: vec![],
        state: StateInfo {
            store: "file".into(),
            run_count: 1,
            checkpoint: None,
        },
        messages: None,
    };
    let mut reply = serde_json::to_value(reply).expect("a reply serializes");
    if let Some(resume) = body.get("resume") {
        reply["resume_received"] = resume.clone();
    }
    reply
}

async fn handle(
    State(stub): State<StubWrapper>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let inner = &stub.inner;
    if inner.record {
        inner
            .records
            .lock()
            .expect("stub lock poisoned")
            .push(Recorded {
                method: method.clone(),
                path: uri.path().to_string(),
                headers: headers.clone(),
                body: body.clone(),
            });
    }
    inner.served.fetch_add(1, Ordering::Relaxed);
    if method == Method::GET {
        if uri.path() == routes::AGENTS {
            return axum::Json(agents()).into_response();
        }
        if let Some((session, request_id)) = routes::parse_run(uri.path()) {
            return run_record(&stub, session, request_id, false);
        }
        if let Some((session, request_id)) = uri
            .path()
            .strip_suffix("/events")
            .and_then(routes::parse_run)
        {
            return run_events(&stub, session, request_id, uri.query().unwrap_or_default());
        }
    }
    if method == Method::POST
        && let Some((session, request_id)) = routes::parse_cancel(uri.path())
    {
        return run_record(&stub, session, request_id, true);
    }
    let goal = body["goal"].as_str().unwrap_or_default().to_string();
    if let Some(code) = goal.strip_prefix("status:") {
        let status = StatusCode::from_u16(code.parse().expect("status:NNN")).expect("a status");
        if status == StatusCode::INTERNAL_SERVER_ERROR {
            return (status, "Traceback (most recent call last): boom in crew").into_response();
        }
        let error = ErrorBody::new("stub", format!("stub refuses with {code}"));
        return (status, axum::Json(error)).into_response();
    }
    if let Some(code) = goal.strip_prefix("wrapper-error:") {
        return wrapper_error(code);
    }
    if let Some(ms) = goal.strip_prefix("slow:") {
        tokio::time::sleep(Duration::from_millis(ms.parse().expect("slow:MS"))).await;
    }
    match goal.as_str() {
        "huge" => return "x".repeat(2 << 20).into_response(),
        "notjson" => return "<html>not json</html>".into_response(),
        HOLD_GOAL => {
            let mut release = inner.release.subscribe();
            release.borrow_and_update();
            inner.held.fetch_add(1, Ordering::Relaxed);
            let _ = tokio::time::timeout(MAX_HOLD, release.changed()).await;
            inner.held.fetch_sub(1, Ordering::Relaxed);
        }
        _ => {}
    }
    let trace_id = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| tp.split('-').nth(1))
        .unwrap_or_default()
        .to_string();
    let reply = reply(&goal, uri.path(), &body, &trace_id);
    if inner.record
        && let (Some(session), Some(request_id)) = (
            body["federation_session_id"].as_str(),
            body["request_id"].as_str(),
        )
    {
        inner
            .replies
            .lock()
            .expect("stub lock poisoned")
            .insert(format!("{session}/{request_id}"), reply.clone());
    }
    let streamed = headers
        .get("accept")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains(routes::NDJSON));
    if streamed {
        let lines = progress_lines(&goal, reply, &trace_id);
        if inner.record
            && let (Some(session), Some(request_id)) = (
                body["federation_session_id"].as_str(),
                body["request_id"].as_str(),
            )
        {
            inner
                .streams
                .lock()
                .expect("stub lock poisoned")
                .insert(format!("{session}/{request_id}"), lines.clone());
        }
        return progress_stream(&goal, lines);
    }
    axum::Json(reply).into_response()
}

/// The HTTP status of each error code of the wrapper (`agent-wrapper`'s
/// `core/errors.py`).
pub const WRAPPER_ERRORS: &[(&str, u16)] = &[
    ("internal", 500),
    ("bad_request", 400),
    ("invalid_input", 422),
    ("payload_too_large", 413),
    ("session_busy", 409),
    ("store_unavailable", 503),
    ("llm_failure", 502),
    ("run_not_found", 404),
    ("request_id_reused", 412),
    ("canceled", 499),
    ("run_superseded", 409),
    ("deadline_exceeded", 504),
    ("shutting_down", 503),
    ("overloaded", 503),
    ("agent_not_found", 404),
    ("no_pending_interrupt", 412),
    ("input_required", 412),
];

/// The `Retry-After` (seconds) the stub sends with `overloaded`, as the wrapper's
/// full run queue does.
pub const OVERLOADED_RETRY_AFTER_SECS: u64 = 7;

/// The wrapper's error reply for `code` (goal `wrapper-error:CODE`): its status and
/// error body, with `Retry-After` for `overloaded`.
fn wrapper_error(code: &str) -> Response {
    let status = WRAPPER_ERRORS
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, status)| *status)
        .expect("wrapper-error:CODE names a code of WRAPPER_ERRORS");
    let status = StatusCode::from_u16(status).expect("a status");
    let body = axum::Json(ErrorBody::new(code, format!("stub wrapper error {code}")));
    if code == "overloaded" {
        let retry = OVERLOADED_RETRY_AFTER_SECS.to_string();
        return (status, [("retry-after", retry)], body).into_response();
    }
    (status, body).into_response()
}

/// The lines of the wrapper's NDJSON progress stream for `goal`, ending (normally) with
/// `reply`.
fn progress_lines(goal: &str, reply: Value, trace_id: &str) -> Vec<String> {
    let data = |value: Value| -> Object {
        match value {
            Value::Object(map) => map,
            _ => unreachable!("event data objects"),
        }
    };
    let mut events = vec![
        (
            EventType::Started,
            json!({"framework": reply["framework"], "attempt": 1}),
        ),
        (
            EventType::Step,
            json!({"name": "research", "agent": "researcher", "phase": "started"}),
        ),
        (
            EventType::LlmCall,
            json!({"model": "stub", "agent": "researcher", "step": "research", "prompt_chars": 10, "completion_chars": 20}),
        ),
        (
            EventType::ToolCall,
            json!({"tool": "search", "agent": "researcher", "step": "research"}),
        ),
        (
            EventType::Step,
            json!({"name": "research", "agent": "researcher", "phase": "finished", "output": "notes"}),
        ),
        (
            EventType::CheckpointSaved,
            json!({"step": "research", "checkpoint": 1}),
        ),
    ];
    if goal == "stream-big-event" {
        events.push((EventType::ToolCall, json!({"tool": "x".repeat(70 * 1024)})));
    }
    match goal.strip_prefix("stream-fail:") {
        Some(code) => events.push((
            EventType::Failed,
            json!({"status": code.parse::<u16>().expect("stream-fail:NNN"), "code": "stub", "message": format!("stub run failed with {code}")}),
        )),
        None if goal == "stream-cut" || goal == "stream-garbage" => {}
        None => events.push((
            EventType::Completed,
            json!({"reply": reply, "llm_calls": 1, "replayed": false}),
        )),
    }
    events
        .into_iter()
        .enumerate()
        .map(move |(i, (kind, value))| {
            let event = Event::new(i as u64 + 1, kind, trace_id, data(value));
            format!(
                "{}\n",
                serde_json::to_string(&event).expect("an event serializes")
            )
        })
        .chain((goal == "stream-garbage").then(|| "<html>not an event</html>\n".to_string()))
        .collect()
}

/// `lines` as the wrapper's NDJSON progress stream (`stream-slow:MS`: each after MS).
fn progress_stream(goal: &str, lines: Vec<String>) -> Response {
    let delay = goal
        .strip_prefix("stream-slow:")
        .map_or(Duration::ZERO, |ms| {
            Duration::from_millis(ms.parse().expect("stream-slow:MS"))
        });
    let body = futures::stream::iter(lines).then(move |line| async move {
        tokio::time::sleep(delay).await;
        Ok::<_, std::convert::Infallible>(line)
    });
    (
        [("content-type", routes::NDJSON)],
        axum::body::Body::from_stream(body),
    )
        .into_response()
}

/// The lines of a stream the stub sent with seq > `after` (`GET .../events?after=N`).
fn run_events(stub: &StubWrapper, session: &str, request_id: &str, query: &str) -> Response {
    let streams = stub.inner.streams.lock().expect("stub lock poisoned");
    let Some(lines) = streams.get(&format!("{session}/{request_id}")) else {
        let error = ErrorBody::new("run_not_found", "no such run");
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    };
    let after: u64 = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("after="))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let body: String = lines
        .iter()
        .filter(|line| serde_json::from_str::<Event>(line).is_ok_and(|e| e.seq > after))
        .cloned()
        .collect();
    ([("content-type", routes::NDJSON)], body).into_response()
}

/// The run record of a reply the stub gave (`GET .../runs/{rid}`; a cancel answers it
/// canceled).
fn run_record(stub: &StubWrapper, session: &str, request_id: &str, cancel: bool) -> Response {
    let replies = stub.inner.replies.lock().expect("stub lock poisoned");
    let Some(reply) = replies.get(&format!("{session}/{request_id}")).cloned() else {
        let error = ErrorBody::new("run_not_found", "no such run");
        return (StatusCode::NOT_FOUND, axum::Json(error)).into_response();
    };
    let status = match (cancel, reply["status"].as_str()) {
        (true, _) => RunStatus::Canceled,
        (false, Some("input_required")) => RunStatus::InputRequired,
        (false, _) => RunStatus::Completed,
    };
    let graph = reply["framework"] == "langgraph";
    let record = RunRecord {
        federation_session_id: session.into(),
        request_id: request_id.into(),
        route: if graph {
            routes::RUN_GRAPH
        } else {
            routes::RUN_CREW
        }
        .into(),
        framework: reply["framework"].as_str().unwrap_or_default().into(),
        agent: reply["agent"].as_str().map(str::to_string),
        status,
        attempt: 1,
        cancel_requested: cancel,
        trace_id: reply["trace_id"].as_str().unwrap_or_default().into(),
        body_sha256: String::new(),
        progress: RunProgress::default(),
        created_at: String::new(),
        updated_at: String::new(),
        result: (!cancel).then(|| reply.as_object().cloned()).flatten(),
        error: cancel.then(|| RunFailure {
            status: 499,
            code: "canceled".into(),
            message: "the run was canceled".into(),
        }),
    };
    axum::Json(record).into_response()
}
