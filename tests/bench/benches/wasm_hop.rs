//! What the WASM hop costs: micro benchmarks of the host's per-task sandbox.
//!
//! `cargo bench -p federation-bench --bench wasm_hop` (adapters built first by
//! `scripts/build-adapters.sh`). Criterion groups:
//!
//! - `hop_stubbed`: the host's `AdapterRuntime::run` (store + instantiate + run-task +
//!   drop) per adapter, pooling vs on-demand allocator, with the outbound transport
//!   swapped for one that answers in-process (no socket): the hop and the host's own
//!   outbound checks.
//! - `instantiate_only`: store + instantiate + drop.
//! - `warm_call`: run-task on an instance that already exists (what a per-task fresh
//!   instance costs on top).
//! - `runtime_run`: the host's own `AdapterRuntime::run`, outbound call answered by a
//!   loopback HTTP stub wrapper (the hop plus a real HTTP round trip).
//! - `outbound`: the outbound import's own work (`OutboundHttp::send` over the
//!   in-process transport: policy check, headers, trace span, `traceparent`
//!   injection) and `OutboundHttp::send` against a bare reqwest POST.
//!
//! After criterion, with `--bench`, a plain timing loop prints p50/p90/p99 of the same
//! paths (criterion reports means). `FEDERATION_BENCH_PERCENTILES=0` skips it;
//! `FEDERATION_BENCH_ITERATIONS` sets its sample count (default 20000).
//! Telemetry is the host's own (`Telemetry::init`, spans sampled, exporter `none`).

mod support;

use std::{
    future::Future,
    hint::black_box,
    sync::Arc,
    time::{Duration, Instant},
};

use criterion::Criterion;
use federation_host::Telemetry;
use federation_runtime::bindings::{Method, Request, Task};
use federation_runtime::outbound::{Origin, OutboundHttp};
use federation_runtime::{Adapter, AdapterRuntime, SandboxPolicy};
use support::{Allocator, CannedReply, StubAdapter};
use tokio::runtime::Runtime;
use url::Url;

/// Everything the benches share, built once.
struct Fixture {
    rt: Runtime,
    wrapper_url: String,
    outbound: Arc<OutboundHttp>,
    /// The same client over the in-process transport.
    in_process: OutboundHttp,
    policy: Arc<SandboxPolicy>,
    /// Per adapter and allocator: the in-process-stub build and the host runtime's build.
    adapters: Vec<AdapterFixture>,
}

struct AdapterFixture {
    name: &'static str,
    allocator: Allocator,
    stubbed: StubAdapter,
    runtime: AdapterRuntime,
    loaded: Adapter,
}

fn outbound() -> OutboundHttp {
    OutboundHttp::new(support::host_default_limits()).expect("building the outbound client")
}

impl Fixture {
    fn new() -> Fixture {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap();
        // SAFETY: no other thread reads the environment yet.
        unsafe { std::env::set_var("OTEL_TRACES_EXPORTER", "none") };
        let telemetry = rt.block_on(async { Telemetry::init() });
        std::mem::forget(telemetry.expect("telemetry"));
        let wrapper_url = rt.block_on(support::start_stub_wrapper());
        let outbound = Arc::new(outbound());
        let origin = Origin::of(&Url::parse(&wrapper_url).unwrap()).unwrap();
        let policy = Arc::new(support::host_default_policy(origin));
        let mut adapters = Vec::new();
        for allocator in Allocator::ALL {
            let engine = allocator.engine();
            for (name, path) in support::adapters().unwrap_or_default() {
                let runtime = AdapterRuntime::new(engine.clone(), outbound.clone(), None, false)
                    .expect("building the adapter runtime");
                let loaded = rt
                    .block_on(runtime.load_file(&path, policy.clone()))
                    .expect("loading the adapter");
                let stubbed = rt.block_on(StubAdapter::load(&engine, &path, policy.clone()));
                adapters.push(AdapterFixture {
                    name,
                    allocator,
                    stubbed,
                    runtime,
                    loaded,
                });
            }
        }
        let in_process = OutboundHttp::with_transport(
            support::host_default_limits(),
            Arc::new(CannedReply::new(false)),
        );
        Fixture {
            rt,
            wrapper_url,
            outbound,
            in_process,
            policy,
            adapters,
        }
    }

    fn task(&self) -> Task {
        support::task(&self.wrapper_url)
    }

    fn request(&self, task: &Task) -> Request {
        Request {
            method: Method::Post,
            url: format!("{}/v1/run_crew", self.wrapper_url),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("accept".into(), "application/json".into()),
            ],
            body: serde_json::to_vec(&serde_json::json!({
                "goal": task.goal, "context": task.context,
                "federation_session_id": task.federation_session_id,
                "request_id": task.request_id,
            }))
            .unwrap(),
            timeout_ms: Some(30_000),
        }
    }
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(30)
}

/// Times `iters` runs of `one`, one after the other, on `rt`.
fn timed<F: Future<Output = ()>>(rt: &Runtime, iters: u64, mut one: impl FnMut() -> F) -> Duration {
    rt.block_on(async {
        let start = Instant::now();
        for _ in 0..iters {
            one().await;
        }
        start.elapsed()
    })
}

fn bench_hops(c: &mut Criterion, fx: &Fixture) {
    let task = &fx.task();
    let mut group = c.benchmark_group("hop_stubbed");
    for a in &fx.adapters {
        group.bench_function(format!("{}/{}", a.name, a.allocator.label()), |b| {
            b.iter_custom(|iters| timed(&fx.rt, iters, || a.stubbed.hop(task)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("instantiate_only");
    for a in &fx.adapters {
        group.bench_function(format!("{}/{}", a.name, a.allocator.label()), |b| {
            b.iter_custom(|iters| {
                timed(&fx.rt, iters, || async {
                    let mut store = a.stubbed.store();
                    let pre = a.stubbed.adapter.instance_pre();
                    let instance = pre.instantiate_async(&mut store).await.unwrap();
                    black_box(&instance);
                    drop(store);
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("warm_call");
    for a in fx
        .adapters
        .iter()
        .filter(|a| matches!(a.allocator, Allocator::Pooling))
    {
        group.bench_function(a.name, |b| {
            b.iter_custom(|iters| {
                fx.rt.block_on(async {
                    let mut store = a.stubbed.store();
                    let pre = a.stubbed.adapter.instance_pre();
                    let instance = pre.instantiate_async(&mut store).await.unwrap();
                    let start = Instant::now();
                    for _ in 0..iters {
                        let response = instance.call_run_task(&mut store, task).await.unwrap();
                        assert!(response.is_ok());
                    }
                    start.elapsed()
                })
            })
        });
    }
    group.finish();

    let mut group = c.benchmark_group("runtime_run");
    for a in &fx.adapters {
        group.bench_function(format!("{}/{}", a.name, a.allocator.label()), |b| {
            b.iter_custom(|iters| {
                timed(&fx.rt, iters, || async {
                    let (outcome, usage) = a.runtime.run(&a.loaded, task.clone(), deadline()).await;
                    black_box((outcome.expect("task failed").response, usage));
                })
            })
        });
    }
    group.finish();
}

fn bench_outbound(c: &mut Criterion, fx: &Fixture) {
    let task = fx.task();
    let request = fx.request(&task);
    let url = Url::parse(&request.url).unwrap();
    let raw = reqwest::Client::builder()
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut group = c.benchmark_group("outbound");
    group.bench_function("policy_check", |b| {
        b.iter(|| fx.policy.outbound.check(black_box(&url)).unwrap())
    });
    let request = &request;
    for (label, outbound) in [
        (
            "host_send (OutboundHttp::send, in-process transport)",
            &fx.in_process,
        ),
        (
            "host_send (OutboundHttp::send, loopback stub)",
            &*fx.outbound,
        ),
    ] {
        group.bench_function(label, |b| {
            b.iter_custom(|iters| {
                timed(&fx.rt, iters, || async {
                    let response = outbound
                        .send(&fx.policy.outbound, request.clone(), deadline(), None)
                        .await
                        .unwrap();
                    assert_eq!(response.status, 200);
                })
            })
        });
    }
    group.bench_function("raw_reqwest (same POST, loopback stub)", |b| {
        b.iter_custom(|iters| timed(&fx.rt, iters, || raw_post(&raw, request)))
    });
    group.finish();
}

async fn raw_post(client: &reqwest::Client, request: &Request) {
    let mut builder = client.post(&request.url);
    for (name, value) in &request.headers {
        builder = builder.header(name, value);
    }
    let response = builder.body(request.body.clone()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    black_box(response.bytes().await.unwrap());
}

/// Plain timing loops: percentiles that criterion's means hide.
fn print_percentiles(fx: &Fixture) {
    let iterations: usize = std::env::var("FEDERATION_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let warmup = (iterations / 10).max(100);
    let only = std::env::var("FEDERATION_BENCH_ONLY").ok();
    let wanted = |label: &str| only.as_deref().is_none_or(|only| label.contains(only));
    let task = fx.task();
    println!();
    println!(
        "== WASM hop percentiles ({iterations} sequential iterations after {warmup} warm-up, µs) =="
    );
    println!("{}", support::percentile_header());
    fx.rt.block_on(async {
        for a in &fx.adapters {
            let label = format!(
                "hop {} {} (in-process transport)",
                a.name,
                a.allocator.label()
            );
            if !wanted(&label) {
                continue;
            }
            let mut samples = Vec::with_capacity(iterations);
            for i in 0..warmup + iterations {
                let start = Instant::now();
                a.stubbed.hop(&task).await;
                if i >= warmup {
                    samples.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            println!("{}", support::percentile_row(&label, &mut samples));
        }
        for a in fx
            .adapters
            .iter()
            .filter(|a| matches!(a.allocator, Allocator::Pooling))
        {
            let label = format!("warm call {} (existing instance)", a.name);
            if !wanted(&label) {
                continue;
            }
            let mut store = a.stubbed.store();
            let pre = a.stubbed.adapter.instance_pre();
            let instance = pre.instantiate_async(&mut store).await.unwrap();
            let mut samples = Vec::with_capacity(iterations);
            for i in 0..warmup + iterations {
                let start = Instant::now();
                let response = instance.call_run_task(&mut store, &task).await.unwrap();
                assert!(response.is_ok());
                if i >= warmup {
                    samples.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            println!("{}", support::percentile_row(&label, &mut samples));
        }
        let http_iterations = (iterations / 4).max(100);
        for a in fx.adapters.iter().filter(|a| {
            !matches!(a.allocator, Allocator::OnDemand)
                && wanted(&format!("AdapterRuntime::run {}", a.name))
        }) {
            let mut total = Vec::with_capacity(http_iterations);
            let mut hop = Vec::with_capacity(http_iterations);
            for i in 0..warmup + http_iterations {
                let start = Instant::now();
                let (outcome, usage) = a.runtime.run(&a.loaded, task.clone(), deadline()).await;
                let outcome = outcome.expect("task failed");
                let outbound = usage.outbound_time;
                let inside = outcome.instantiate_time + outcome.call_time;
                drop(outcome);
                if i >= warmup {
                    total.push(start.elapsed().as_secs_f64() * 1e6);
                    hop.push(inside.saturating_sub(outbound).as_secs_f64() * 1e6);
                }
            }
            let label = format!(
                "AdapterRuntime::run {} {} (loopback HTTP)",
                a.name,
                a.allocator.label()
            );
            println!("{}", support::percentile_row(&label, &mut total));
            let label = format!("  of which hop (run minus outbound) {}", a.name);
            println!("{}", support::percentile_row(&label, &mut hop));
        }
        if !wanted("outbound") {
            return;
        }
        let request = fx.request(&task);
        let raw = reqwest::Client::builder()
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let http_iterations = (iterations / 4).max(100);
        let mut host = Vec::with_capacity(http_iterations);
        let mut bare = Vec::with_capacity(http_iterations);
        for i in 0..warmup + http_iterations {
            let start = Instant::now();
            fx.outbound
                .send(&fx.policy.outbound, request.clone(), deadline(), None)
                .await
                .unwrap();
            let middle = Instant::now();
            raw_post(&raw, &request).await;
            if i >= warmup {
                host.push((middle - start).as_secs_f64() * 1e6);
                bare.push(middle.elapsed().as_secs_f64() * 1e6);
            }
        }
        println!(
            "{}",
            support::percentile_row("OutboundHttp::send (loopback HTTP)", &mut host)
        );
        println!(
            "{}",
            support::percentile_row("bare reqwest POST (loopback HTTP)", &mut bare)
        );
        let mut prepare = Vec::with_capacity(iterations);
        for _ in 0..iterations {
            let start = Instant::now();
            let response = fx
                .in_process
                .send(&fx.policy.outbound, request.clone(), deadline(), None)
                .await
                .unwrap();
            black_box(response);
            prepare.push(start.elapsed().as_secs_f64() * 1e6);
        }
        println!(
            "{}",
            support::percentile_row("OutboundHttp::send (in-process transport)", &mut prepare)
        );
    });
}

fn main() {
    let fx = Fixture::new();
    let mut criterion = Criterion::default().configure_from_args();
    bench_hops(&mut criterion, &fx);
    bench_outbound(&mut criterion, &fx);
    criterion.final_summary();
    let benching = std::env::args().any(|arg| arg == "--bench");
    let wanted = std::env::var("FEDERATION_BENCH_PERCENTILES").map_or(true, |v| v != "0");
    if benching && wanted && !fx.adapters.is_empty() {
        print_percentiles(&fx);
    }
}
