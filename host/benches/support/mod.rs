//! Bench support: a loopback HTTP stub standing in for the agent wrapper, a store
//! context whose `outbound-http.send` answers in-process (no socket), engines with the
//! pooling and the on-demand allocator, and a percentile summary.

use std::{
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use agent_federation::outbound_http::{Origin, ResponseStream};
use agent_federation::policy::{PolicyDefaults, SandboxPolicy};
use agent_federation::runtime::bindings::federation::agent_backend::{
    interaction, log, outbound_http, outbound_stream, progress, types,
};
use agent_federation::runtime::bindings::{
    AgentBackend, AgentBackendPre, HttpError, Level, Request, Response, Task,
};
use agent_federation::runtime::engine::{EPOCH_TICK, EngineLimits, build_engine};
use axum::{Router, body::Bytes, http::HeaderMap, response::IntoResponse};
use serde_json::{Value, json};
use wasmtime::component::{Component, HasSelf, Linker, Resource, ResourceTable};
use wasmtime::{
    Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store,
    StoreLimits, StoreLimitsBuilder, UpdateDeadline,
};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

/// Largest linear memory per instance, as the host's default (`--max-memory-mib 64`).
pub const MAX_MEMORY_BYTES: usize = 64 << 20;
/// Pool slots, as the host's default (`--max-concurrent-tasks 512` + 8).
pub const POOL_INSTANCES: u32 = 512 + 8;

/// The sandbox policy the host gives an adapter without a manifest, with the host's
/// default flags (`agent-federation serve --help`).
pub fn host_default_policy(wrapper: Origin) -> SandboxPolicy {
    SandboxPolicy::defaults(&PolicyDefaults {
        wrapper,
        outbound_timeout: Duration::from_secs(300),
        max_response_bytes: 8 << 20,
        max_requests_per_task: 64,
        max_concurrent_requests: 256,
        max_memory_bytes: MAX_MEMORY_BYTES,
        cpu_budget: Duration::from_secs(30),
        max_concurrent_tasks: 512,
    })
}

/// The shipped adapters the benches run, as `(name, path)`; `None` when not built.
pub fn adapters() -> Option<Vec<(&'static str, PathBuf)>> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist/adapters");
    let list: Vec<_> = ["crewai", "langgraph"]
        .into_iter()
        .map(|name| (name, dist.join(format!("{name}.wasm"))))
        .collect();
    if list.iter().all(|(_, path)| path.exists()) {
        Some(list)
    } else {
        eprintln!(
            "{} has no crewai.wasm/langgraph.wasm: run scripts/build-adapters.sh; adapter benches skipped",
            dist.display()
        );
        None
    }
}

/// Which instance allocator an engine uses.
#[derive(Clone, Copy, Debug)]
pub enum Allocator {
    /// The host's engine (`build_engine`): pooling allocator, one slot per task.
    Pooling,
    /// The host's pool plus keep-resident resets (`memset` instead of `madvise` for
    /// the first bytes of each linear memory, table and async stack, and the
    /// `PAGEMAP_SCAN` ioctl where the kernel has it): a candidate `build_engine` change.
    PoolingResident,
    /// The same configuration with wasmtime's default on-demand allocator.
    OnDemand,
}

impl Allocator {
    pub const ALL: [Allocator; 3] = [
        Allocator::Pooling,
        Allocator::PoolingResident,
        Allocator::OnDemand,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Allocator::Pooling => "pooling",
            Allocator::PoolingResident => "pooling+resident",
            Allocator::OnDemand => "on-demand",
        }
    }

    /// An engine configured like the host's, with this allocator.
    pub fn engine(self) -> Engine {
        match self {
            Allocator::Pooling => build_engine(&EngineLimits {
                max_instances: POOL_INSTANCES,
                max_memory_bytes: MAX_MEMORY_BYTES,
            })
            .expect("building the host's engine"),
            // Both mirror `build_engine` (the host has no switch for these).
            Allocator::PoolingResident => {
                let instances = POOL_INSTANCES;
                let mut pool = PoolingAllocationConfig::default();
                pool.total_component_instances(instances)
                    .total_core_instances(instances * 4)
                    .total_memories(instances * 2)
                    .total_tables(instances * 4)
                    .max_memory_size(MAX_MEMORY_BYTES)
                    .total_stacks(instances)
                    .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
                    .table_keep_resident(KEEP_RESIDENT_TABLE)
                    .async_stack_keep_resident(KEEP_RESIDENT_STACK)
                    .pagemap_scan(Enabled::Auto);
                with_ticker(InstanceAllocationStrategy::Pooling(pool))
            }
            Allocator::OnDemand => with_ticker(InstanceAllocationStrategy::OnDemand),
        }
    }
}

/// Bytes of each linear memory reset with `memset` and kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// Bytes of each table kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_TABLE: usize = 64 << 10;
/// Bytes of each async stack kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_STACK: usize = 128 << 10;

/// An engine like the host's with `strategy`, and its epoch ticker.
fn with_ticker(strategy: InstanceAllocationStrategy) -> Engine {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .allocation_strategy(strategy);
    let engine = Engine::new(&config).expect("building an engine");
    let ticker = engine.weak();
    std::thread::spawn(move || {
        while let Some(engine) = ticker.upgrade() {
            engine.increment_epoch();
            drop(engine);
            std::thread::sleep(EPOCH_TICK);
        }
    });
    engine
}

/// The wrapper reply the stubs send, shaped like the agent wrapper's `RunResponse`
/// (`agent-wrapper/src/agent_wrapper/api/schemas.py`).
pub fn wrapper_reply(body: &Value, trace_id: &str, graph: bool) -> Value {
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

/// Starts the loopback stub wrapper on the current runtime; returns its base URL.
pub async fn start_stub_wrapper() -> String {
    async fn handle(uri: axum::http::Uri, headers: HeaderMap, body: Bytes) -> impl IntoResponse {
        let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let trace_id = headers
            .get("traceparent")
            .and_then(|v| v.to_str().ok())
            .and_then(|tp| tp.split('-').nth(1))
            .unwrap_or_default();
        axum::Json(wrapper_reply(
            &body,
            trace_id,
            uri.path() == "/v1/run_graph",
        ))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binding the stub wrapper");
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, Router::new().fallback(handle))
            .await
            .unwrap()
    });
    format!("http://{addr}")
}

/// The task every bench runs: small, like an orchestrator's typical request.
pub fn task(wrapper_url: &str) -> Task {
    Task {
        goal: "Summarise the quarterly report for the board".into(),
        context: "The board meets on Friday; keep it under 200 words.".into(),
        input_data: r#"{"priority":2,"tags":["finance","q3"],"topic":"revenue"}"#.into(),
        federation_session_id: "bench-session-0001".into(),
        request_id: "bench-request-0001".into(),
        metadata: vec![("team".into(), "bench".into())],
        wrapper_url: wrapper_url.into(),
        deadline_ms: Some(30_000),
    }
}

/// Store data like the host's `AdapterCtx` (WASI with captured stderr, store limits,
/// epoch deadline), but `outbound-http.send` answers with a canned wrapper reply
/// without leaving the process: what remains is the WASM hop itself.
pub struct StubCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    _stderr: MemoryOutputPipe,
    reply: Arc<[u8]>,
    deadline: Instant,
}

impl StubCtx {
    pub fn new(reply: Arc<[u8]>, deadline: Instant) -> Self {
        let stderr = MemoryOutputPipe::new(16 * 1024);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        StubCtx {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: StoreLimitsBuilder::new()
                .memory_size(MAX_MEMORY_BYTES)
                .trap_on_grow_failure(true)
                .build(),
            _stderr: stderr,
            reply,
            deadline,
        }
    }
}

impl WasiView for StubCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for StubCtx {}

impl outbound_http::Host for StubCtx {
    async fn send(&mut self, _request: Request) -> Result<Response, HttpError> {
        Ok(Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: self.reply.to_vec(),
        })
    }
}

impl log::Host for StubCtx {
    async fn log(&mut self, _level: Level, _message: String) {}
}

// The hop's tasks run unwatched, so adapters never stream: these answer as a host
// with nothing to stream would.
impl outbound_stream::Host for StubCtx {
    async fn send(&mut self, _request: Request) -> Result<Resource<ResponseStream>, HttpError> {
        Err(HttpError::Denied(
            "the benchmark stub does not stream".into(),
        ))
    }
}

impl outbound_stream::HostResponseStream for StubCtx {
    async fn status(&mut self, _stream: Resource<ResponseStream>) -> u16 {
        0
    }

    async fn headers(&mut self, _stream: Resource<ResponseStream>) -> Vec<(String, String)> {
        Vec::new()
    }

    async fn read_line(
        &mut self,
        _stream: Resource<ResponseStream>,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        Ok(None)
    }

    async fn drop(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl progress::Host for StubCtx {
    async fn watched(&mut self) -> bool {
        false
    }

    async fn emit(&mut self, _event: agent_federation::runtime::bindings::ProgressEvent) {}
}

// The hop's tasks run the default agent and never resume or ask for input.
impl interaction::Host for StubCtx {
    async fn agent(&mut self) -> String {
        String::new()
    }

    async fn resume_json(&mut self) -> Option<String> {
        None
    }

    async fn input_required(&mut self, _value_json: String) {}
}

/// An adapter linked against [`StubCtx`].
pub struct StubAdapter {
    pub engine: Engine,
    pub pre: AgentBackendPre<StubCtx>,
    reply: Arc<[u8]>,
}

impl StubAdapter {
    pub fn load(engine: &Engine, path: &std::path::Path) -> StubAdapter {
        let mut linker = Linker::<StubCtx>::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
        AgentBackend::add_to_linker::<_, HasSelf<_>>(&mut linker, |ctx| ctx).unwrap();
        let component = Component::from_file(engine, path).expect("compiling the adapter");
        let pre = AgentBackendPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
        let graph = path.to_string_lossy().contains("langgraph");
        let body = json!({"goal": "g", "federation_session_id": "bench-session-0001", "request_id": "bench-request-0001"});
        let reply = serde_json::to_vec(&wrapper_reply(
            &body,
            "0af7651916cd43dd8448eb211c80319c",
            graph,
        ))
        .unwrap()
        .into();
        StubAdapter {
            engine: engine.clone(),
            pre,
            reply,
        }
    }

    /// A store set up as the host's `AdapterRuntime::run` sets one up.
    pub fn store(&self) -> Store<StubCtx> {
        let ctx = StubCtx::new(self.reply.clone(), Instant::now() + Duration::from_secs(30));
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| &mut ctx.limits);
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::msg("deadline"))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }

    /// One hop: store + instantiate + run-task + drop.
    pub async fn hop(&self, task: &Task) {
        let mut store = self.store();
        let instance = self.pre.instantiate_async(&mut store).await.unwrap();
        let response = instance.call_run_task(&mut store, task).await.unwrap();
        assert!(response.is_ok(), "adapter error: {response:?}");
        drop(store);
    }
}

/// p50/p90/p99/p99.9/max of `samples` (µs), formatted as one table row.
pub fn percentile_row(label: &str, samples: &mut [f64]) -> String {
    samples.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples[index]
    };
    format!(
        "{label:<44} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>9.1}",
        at(0.50),
        at(0.90),
        at(0.99),
        at(0.999),
        samples[samples.len() - 1]
    )
}

/// The header of [`percentile_row`]'s table.
pub fn percentile_header() -> String {
    format!(
        "{:<44} {:>8} {:>8} {:>8} {:>8} {:>9}",
        "µs", "p50", "p90", "p99", "p99.9", "max"
    )
}
