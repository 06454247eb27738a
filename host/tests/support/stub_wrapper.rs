//! A recording HTTP stub standing in for the agent wrapper. It keeps every request and
//! answers according to the task's goal: `status:NNN` answers that HTTP status,
//! `slow:MS` waits first, `huge` sends 2 MiB, `notjson` sends text; anything else gets
//! a wrapper-shaped success reply.

use std::{
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
        method,
        path: uri.path().to_string(),
        headers: headers.clone(),
        body: body.clone(),
    });
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
    axum::Json(json!({
        "output": format!("stub answer to: {goal}"),
        "framework": if uri.path() == "/v1/run_graph" { "langgraph" } else { "crewai" },
        "federation_session_id": body["federation_session_id"],
        "request_id": body["request_id"],
        "resumed": body["context"] == "resume",
        "trace_id": trace_id,
        "steps": [{"name": "research", "output": "notes"}, {"name": "write", "output": "answer"}],
    }))
    .into_response()
}
