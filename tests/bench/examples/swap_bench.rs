//! Hot-swap figures: time from an adapter file written to the first task served by the
//! new version (cold compile, compile-cache hit, in-memory swap back), and failed
//! requests during swaps under load. Prints figures; asserts nothing.
//!
//! `cargo run --release -p federation-bench --example swap_bench` (after
//! `scripts/build-adapters.sh`). See docs/performance.md.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use clap::Parser;
use federation_host::ServeArgs;
use federation_proto::TaskRequest;
use federation_proto::federation_service_client::FederationServiceClient;
use tonic::transport::Channel;

const SWAPS_UNDER_LOAD: usize = 40;
const LOAD_WORKERS: usize = 16;

fn dist(version: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../dist/test-adapters/test-faults-{version}.wasm"
    ));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-adapters.sh", path.display()))
}

fn install(dir: &Path, bytes: &[u8]) {
    let tmp = dir.join(".test-faults.wasm.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join("test-faults.wasm")).unwrap();
}

/// A host serving `dir` in this process; its client.
async fn start_host(dir: &Path, cache: &Path) -> FederationServiceClient<Channel> {
    /// `agent-federation serve`'s flags.
    #[derive(Parser)]
    struct Serve {
        #[command(flatten)]
        args: ServeArgs,
    }
    let Serve { args } = Serve::parse_from([
        "agent-federation",
        "--listen",
        "127.0.0.1:0",
        "--wrapper-url",
        "http://127.0.0.1:9",
        "--adapters-dir",
        dir.to_str().unwrap(),
        "--compile-cache-dir",
        cache.to_str().unwrap(),
        "--rescan-interval-ms",
        "0",
    ]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(federation_host::serve(
        args,
        listener,
        std::future::pending(),
    ));
    let endpoint = format!("http://{addr}");
    loop {
        if let Ok(client) = FederationServiceClient::connect(endpoint.clone()).await {
            return client;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn echo() -> TaskRequest {
    TaskRequest {
        goal: "echo".into(),
        backend: "test-faults".into(),
        ..Default::default()
    }
}

async fn version(client: &mut FederationServiceClient<Channel>) -> Option<String> {
    client
        .run_agent_task(echo())
        .await
        .ok()
        .map(|r| r.into_inner().adapter_version)
}

/// Writes `bytes` and polls (every 1 ms) until a task runs on `want`; the time taken.
async fn time_to_first_task(
    client: &mut FederationServiceClient<Channel>,
    dir: &Path,
    bytes: &[u8],
    want: &str,
) -> Duration {
    let written = Instant::now();
    install(dir, bytes);
    loop {
        if version(client).await.as_deref() == Some(want) {
            return written.elapsed();
        }
        assert!(
            written.elapsed() < Duration::from_secs(120),
            "{want} never served"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1e3)
}

#[tokio::main]
async fn main() {
    let (v1, v2) = (dist("1.0.0"), dist("2.0.0"));
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    println!(
        "swap_bench on {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );

    // 1. A version never seen: compile (empty cache).
    let dir = root.path().join("a");
    std::fs::create_dir_all(&dir).unwrap();
    install(&dir, &v1);
    let mut client = start_host(&dir, &cache).await;
    while version(&mut client).await.as_deref() != Some("1.0.0") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cold = time_to_first_task(&mut client, &dir, &v2, "2.0.0").await;
    // 2. Back to a version still in memory (the previous build).
    let memory = time_to_first_task(&mut client, &dir, &v1, "1.0.0").await;

    // 3. A second host: v2 is not in its memory but is in the compile cache.
    let dir_b = root.path().join("b");
    std::fs::create_dir_all(&dir_b).unwrap();
    install(&dir_b, &v1);
    let mut client_b = start_host(&dir_b, &cache).await;
    while version(&mut client_b).await.as_deref() != Some("1.0.0") {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let cached = time_to_first_task(&mut client_b, &dir_b, &v2, "2.0.0").await;

    println!(
        "file written -> first task on the new version (includes the watcher's 50 ms settle):"
    );
    println!("  never seen, compiled:          {}", ms(cold));
    println!("  in the compile cache (disk):   {}", ms(cached));
    println!("  previous build (in memory):    {}", ms(memory));

    // 4. Swaps under load.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for _ in 0..LOAD_WORKERS {
        let (mut client, stop, ok, failed) =
            (client.clone(), stop.clone(), ok.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match client.run_agent_task(echo()).await {
                    Ok(_) => ok.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    let started = Instant::now();
    let mut swap_times = Vec::new();
    for swap in 0..SWAPS_UNDER_LOAD {
        let (bytes, want) = if swap % 2 == 0 {
            (&v2, "2.0.0")
        } else {
            (&v1, "1.0.0")
        };
        swap_times.push(time_to_first_task(&mut client, &dir, bytes, want).await);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    swap_times.sort();
    let (ok, failed) = (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    println!(
        "{SWAPS_UNDER_LOAD} swaps under {LOAD_WORKERS} concurrent request loops in {}: {ok} requests ({:.0}/s), {failed} failed",
        ms(elapsed),
        ok as f64 / elapsed.as_secs_f64()
    );
    println!(
        "  swap (in memory) p50 {}, max {}",
        ms(swap_times[swap_times.len() / 2]),
        ms(*swap_times.last().unwrap())
    );
}
