//! Bench support: the host's runtime with its outbound transport swapped for one that
//! answers in-process (no socket) with the stub wrapper's reply, engines with the
//! pooling and the on-demand allocator, the test kit's stub wrapper over loopback HTTP,
//! and a percentile summary.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use federation_runtime::bindings::{HttpError, Task};
use federation_runtime::engine::{self, EngineLimits};
use federation_runtime::outbound::{
    Origin, OutboundHttp, OutboundLimits, Transport, TransportRequest, TransportResponse,
};
use federation_runtime::{Adapter, AdapterCtx, AdapterRuntime, PolicyDefaults, SandboxPolicy};
use federation_testkit::stub;
use federation_wire::routes;
use futures::future::BoxFuture;
use serde_json::json;
use wasmtime::{Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store};

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
        secrets: Default::default(),
    })
}

/// The host's outbound limits at its default flags.
pub fn host_default_limits() -> OutboundLimits {
    OutboundLimits {
        max_response_bytes: 8 << 20,
        default_timeout: Duration::from_secs(300),
        connect_timeout: Duration::from_secs(5),
    }
}

/// The shipped adapters the benches run, as `(name, path)`; `None` when not built.
pub fn adapters() -> Option<Vec<(&'static str, PathBuf)>> {
    let dist = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist/adapters");
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
    /// The pool with keep-resident resets (`memset` instead of `madvise` for the first
    /// bytes of each linear memory, table and async stack, and the `PAGEMAP_SCAN`
    /// ioctl where the kernel has it). `build_engine` adopted these settings, so this
    /// is the host's engine again; kept so figures compare with earlier runs.
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

    /// An engine configured like the host's (`federation_runtime::engine::config`),
    /// with this allocator.
    pub fn engine(self) -> Engine {
        let limits = EngineLimits {
            max_instances: POOL_INSTANCES,
            max_memory_bytes: MAX_MEMORY_BYTES,
        };
        let mut config = engine::config(&limits);
        match self {
            Allocator::Pooling => {}
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
                config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
            }
            Allocator::OnDemand => {
                config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            }
        }
        let engine = Engine::new(&config).expect("building an engine");
        engine::start_epoch_ticker(&engine).expect("starting the epoch ticker");
        engine
    }
}

/// Bytes of each linear memory reset with `memset` and kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_MEMORY: usize = 1 << 20;
/// Bytes of each table kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_TABLE: usize = 64 << 10;
/// Bytes of each async stack kept resident (`PoolingResident`).
pub const KEEP_RESIDENT_STACK: usize = 128 << 10;

/// Starts the test kit's stub wrapper (loopback HTTP) on the current runtime; returns
/// its base URL and keeps it running.
pub async fn start_stub_wrapper() -> String {
    let stub = federation_testkit::StubWrapper::start().await;
    let url = stub.url();
    std::mem::forget(stub);
    url
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

/// A transport that answers every request at once with one canned wrapper reply,
/// without leaving the process: what remains of a task is the WASM hop and the host's
/// own outbound checks.
pub struct CannedReply {
    reply: Bytes,
}

impl CannedReply {
    /// The stub wrapper's reply to the bench's task.
    pub fn new(graph: bool) -> CannedReply {
        let route = if graph {
            routes::RUN_GRAPH
        } else {
            routes::RUN_CREW
        };
        let body = json!({"goal": "g", "federation_session_id": "bench-session-0001", "request_id": "bench-request-0001"});
        let reply = stub::reply("g", route, &body, "0af7651916cd43dd8448eb211c80319c");
        CannedReply {
            reply: serde_json::to_vec(&reply).unwrap().into(),
        }
    }
}

impl Transport for CannedReply {
    fn send(
        &self,
        _request: TransportRequest,
    ) -> BoxFuture<'static, Result<TransportResponse, HttpError>> {
        let body = self.reply.clone();
        Box::pin(async move {
            Ok(TransportResponse {
                status: 200,
                headers: vec![("content-type".into(), "application/json".into())],
                content_length: Some(body.len() as u64),
                body: Box::pin(futures::stream::once(async move { Ok(body) })),
            })
        })
    }
}

/// An adapter loaded by the host's runtime whose outbound calls get [`CannedReply`].
pub struct StubAdapter {
    pub runtime: AdapterRuntime,
    pub adapter: Adapter,
}

impl StubAdapter {
    pub async fn load(
        engine: &Engine,
        path: &std::path::Path,
        policy: Arc<SandboxPolicy>,
    ) -> StubAdapter {
        let graph = path.to_string_lossy().contains("langgraph");
        let outbound =
            OutboundHttp::with_transport(host_default_limits(), Arc::new(CannedReply::new(graph)));
        let runtime = AdapterRuntime::new(engine.clone(), Arc::new(outbound), None, false)
            .expect("building the adapter runtime");
        let adapter = runtime
            .load_file(path, policy)
            .await
            .expect("loading the adapter");
        StubAdapter { runtime, adapter }
    }

    /// A store set up as the host's `AdapterRuntime::run` sets one up.
    pub fn store(&self) -> Store<AdapterCtx> {
        self.runtime
            .store(&self.adapter, Instant::now() + Duration::from_secs(30))
    }

    /// One hop: store + instantiate + run-task + drop, as `AdapterRuntime::run` does.
    pub async fn hop(&self, task: &Task) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let (outcome, _usage) = self
            .runtime
            .run(&self.adapter, task.clone(), deadline)
            .await;
        let outcome = outcome.expect("the task failed");
        std::hint::black_box(outcome.response);
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
