//! The stub agent wrapper: answers `POST /v1/run_crew` and `/v1/run_graph` at once with
//! a reply shaped like the real wrapper's `RunResponse`
//! (`agent-wrapper/src/agent_wrapper/api/schemas.py`), echoing the session, request and
//! trace ids. A task whose goal is [`HOLD_GOAL`] is held until [`Stub::release`], so
//! the memory phase can keep N tasks in flight inside a server for as long as it needs.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Bytes,
    extract::State,
    http::{HeaderMap, Uri},
    response::{IntoResponse, Response},
    serve::ListenerExt,
};
use serde_json::{Value, json};
use tokio::sync::watch;

/// The goal that makes the stub hold a request until released.
pub const HOLD_GOAL: &str = "bench:hold";
/// The longest the stub holds a request, whatever happens to the benchmark.
const MAX_HOLD: Duration = Duration::from_secs(120);

/// A running stub; clones share it.
#[derive(Clone)]
pub struct Stub {
    inner: Arc<Inner>,
    pub url: String,
}

struct Inner {
    served: AtomicU64,
    held: AtomicUsize,
    release: watch::Sender<u64>,
}

impl Stub {
    /// Starts the stub on 127.0.0.1:0 on a runtime of its own (`threads` workers), so
    /// its work does not queue behind the load client's tasks.
    pub fn start(threads: usize) -> anyhow::Result<Stub> {
        let (release, _) = watch::channel(0);
        let inner = Arc::new(Inner {
            served: AtomicU64::new(0),
            held: AtomicUsize::new(0),
            release,
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr: SocketAddr = listener.local_addr()?;
        let state = inner.clone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("stub-wrapper")
            .enable_all()
            .build()?;
        std::thread::Builder::new()
            .name("stub-wrapper".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .expect("registering the stub listener");
                    // Small replies must not wait for a delayed ACK (Nagle).
                    let listener = listener.tap_io(|tcp| {
                        let _ = tcp.set_nodelay(true);
                    });
                    let app = Router::new().fallback(handle).with_state(state);
                    if let Err(error) = axum::serve(listener, app).await {
                        eprintln!("stub wrapper stopped: {error}");
                    }
                })
            })?;
        Ok(Stub {
            inner,
            url: format!("http://{addr}"),
        })
    }

    /// Requests answered so far.
    pub fn served(&self) -> u64 {
        self.inner.served.load(Ordering::Relaxed)
    }

    /// Requests being held right now.
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

async fn handle(
    State(stub): State<Arc<Inner>>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if body["goal"] == HOLD_GOAL {
        let mut release = stub.release.subscribe();
        release.borrow_and_update();
        stub.held.fetch_add(1, Ordering::Relaxed);
        let _ = tokio::time::timeout(MAX_HOLD, release.changed()).await;
        stub.held.fetch_sub(1, Ordering::Relaxed);
    }
    let trace_id = headers
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .and_then(|tp| tp.split('-').nth(1))
        .unwrap_or_default();
    stub.served.fetch_add(1, Ordering::Relaxed);
    axum::Json(reply(&body, trace_id, uri.path() == "/v1/run_graph")).into_response()
}

/// A success reply as the agent wrapper sends it.
fn reply(body: &Value, trace_id: &str, graph: bool) -> Value {
    json!({
        "output": format!("stub answer to: {}", body["goal"].as_str().unwrap_or_default()),
        "framework": if graph { "langgraph" } else { "crewai" },
        "federation_session_id": body["federation_session_id"],
        "request_id": body["request_id"],
        "resumed": false,
        "trace_id": trace_id,
        "llm": {"provider": "offline", "model": "offline-deterministic"},
        "steps": [
            {"name": "research", "agent": "researcher", "output": "notes", "resumed_from_checkpoint": false},
            {"name": "write", "agent": "writer", "output": "answer", "resumed_from_checkpoint": false}
        ],
        "history": [],
        "state": {"store": "file", "run_count": 1, "checkpoint": null},
    })
}
