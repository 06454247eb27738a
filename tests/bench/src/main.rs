//! `federation-bench`: host throughput, latency and memory through the WASM adapter,
//! side by side with a native Rust baseline of the same gRPC service.
//!
//! One run starts a stub agent wrapper (in this process, on a runtime of its own), the
//! real host (`agent-federation serve`, a child process on port 0) and the native
//! baseline (`federation-bench native-serve`, a child process), then for each target:
//! memory at idle and with N tasks held in flight (the stub holds them), and
//! `RunAgentTask` at each concurrency level for a fixed time, printing requests/s,
//! latency percentiles, errors, server CPU per request and the WASM/native ratio.
//!
//! `cargo build --release -p federation-cli -p federation-bench` then
//! `target/release/federation-bench [--duration 10s] [--concurrency 1,16,64,256]`;
//! `scripts/bench.sh` does both. Smoke mode: `--duration 1s --warmup 0s
//! --concurrency 4 --memory-tasks 8`. See docs/performance.md.

mod load;
mod native;
mod procs;

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand};

use federation_testkit::process::{HOST_READY, Launch, Process, pin_current};
use federation_testkit::{HOLD_GOAL, StubWrapper};
use load::LevelResult;
use procs::Memory;

/// Throughput through WASM at 64 concurrent requests, as a share of native's (target).
const TARGET_RATIO_AT_64: f64 = 0.85;
/// Requests/s through WASM at 64 concurrent requests (target).
const TARGET_RPS_AT_64: f64 = 15_000.0;
/// Host memory per in-flight task above idle, KiB (target).
const TARGET_KIB_PER_TASK: f64 = 256.0;

#[derive(Parser, Debug)]
#[command(
    name = "federation-bench",
    about = "Load and memory benchmark: the WASM host against a native baseline",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand, Debug)]
enum Sub {
    /// Serve the native baseline (started by the benchmark itself).
    #[command(hide = true)]
    NativeServe(native::NativeArgs),
}

#[derive(Args, Debug)]
struct RunArgs {
    /// Measured time per concurrency level and target (e.g. 10s, 500ms, 1m).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured time before each measured window.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent requests (workers) per level.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64,256")]
    concurrency: Vec<usize>,
    /// HTTP/2 connections per target, shared round-robin by the workers.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Tasks held in flight for the memory figures (0: skip the memory phase).
    #[arg(long, value_delimiter = ',', default_value = "64,256")]
    memory_tasks: Vec<usize>,
    /// Backend (adapter) the tasks name.
    #[arg(long, default_value = "crewai")]
    backend: String,
    /// Which targets to run: wasm, native or both.
    #[arg(long, value_delimiter = ',', default_value = "wasm,native")]
    targets: Vec<String>,
    /// The host binary (default: `agent-federation` next to this binary).
    #[arg(long)]
    host_bin: Option<PathBuf>,
    /// The host's adapters directory.
    #[arg(long, default_value = "dist/adapters")]
    adapters_dir: PathBuf,
    /// Worker threads of the stub wrapper's runtime (default: one per CPU).
    #[arg(long)]
    stub_threads: Option<usize>,
    /// Pin the servers to CPU 1 and this process (load client, stub) to CPU 0.
    #[arg(long)]
    pin: bool,
    /// Serve the native baseline without TCP_NODELAY on accepted connections, as a
    /// host that serves a plain `TcpListenerStream` does (shows that cost alone).
    #[arg(long)]
    native_no_nodelay: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, unit) = match text.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let seconds = match unit {
        "ms" => value / 1000.0,
        "s" => value,
        "m" => value * 60.0,
        _ => return Err(format!("bad unit in {text:?} (ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Sub::NativeServe(args)) = cli.command {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?;
        return runtime.block_on(native::serve(args));
    }
    let args = cli.run;
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = args.pin && cpus >= 2;
    if pinned {
        pin_current(0);
    }
    // Not recording: the load sends millions of requests.
    let stub = StubWrapper::start_detached(args.stub_threads.unwrap_or(cpus), false)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args, stub, pinned))
}

/// One target under load: its process and its connections.
struct Target {
    label: &'static str,
    process: Process,
    channels: Vec<tonic::transport::Channel>,
}

async fn run(args: RunArgs, stub: StubWrapper, pinned: bool) -> anyhow::Result<()> {
    let logs = std::env::temp_dir().join(format!("federation-bench-{}", std::process::id()));
    std::fs::create_dir_all(&logs)?;
    let server_cpu = pinned.then_some(1);
    println!("federation-bench");
    println!("  machine: {}", procs::machine());
    if pinned {
        println!("  pinned: servers on CPU 1; load client and stub wrapper on CPU 0");
    } else {
        println!(
            "  unpinned: load client, stub wrapper and both servers share every CPU (nothing is isolated)"
        );
    }
    println!(
        "  backend {}, {} HTTP/2 connections per target, {:?} measured per level after {:?} warm-up",
        args.backend, args.connections, args.duration, args.warmup
    );
    println!("  servers run with OTEL_TRACES_EXPORTER=none (spans made and sampled, not exported)");
    println!("  stub wrapper: {}", stub.url());

    let mut targets = Vec::new();
    for name in &args.targets {
        let started = Instant::now();
        // Both serve with the host's flags: `agent-federation serve` and the
        // baseline's `native-serve` (the same service over a native executor).
        let (label, bin, subcommand) = match name.as_str() {
            "wasm" => {
                let bin = match &args.host_bin {
                    Some(bin) => bin.clone(),
                    None => procs::sibling_binary("agent-federation")?,
                };
                ("wasm", bin, "serve")
            }
            "native" => ("native", std::env::current_exe()?, "native-serve"),
            other => bail!("unknown target {other:?} (wasm, native)"),
        };
        let mut command = Command::new(&bin);
        command
            .args([
                subcommand,
                "--listen",
                "127.0.0.1:0",
                "--wrapper-url",
                &stub.url(),
            ])
            .arg("--adapters-dir")
            .arg(&args.adapters_dir)
            .env("OTEL_TRACES_EXPORTER", "none");
        if label == "native" && args.native_no_nodelay {
            command.arg("--no-nodelay");
        }
        let process = Launch::new(label, command, logs.join(format!("{label}.log")))
            .ready_line(HOST_READY)
            .pin_to_cpu(server_cpu)
            .start()?;
        println!(
            "  {label}: pid {}, {}, ready in {:.2} s, log {}",
            process.pid(),
            process.endpoint(),
            started.elapsed().as_secs_f64(),
            process.log_path().display()
        );
        let channels = load::connect(&process.endpoint(), args.connections).await?;
        targets.push(Target {
            label,
            process,
            channels,
        });
    }
    if targets.is_empty() {
        bail!("no targets");
    }

    // One real call each: the reply must be the stub's, with a trace id.
    let template = load::request(
        &args.backend,
        "Summarise the quarterly report for the board",
    );
    for target in &targets {
        let mut client = federation_proto::federation_service_client::FederationServiceClient::new(
            target.channels[0].clone(),
        );
        let reply = client
            .run_agent_task(template.clone())
            .await
            .with_context(|| format!("first call to {}", target.label))?
            .into_inner();
        if !reply.output.starts_with("stub answer to:") || reply.trace_id.len() != 32 {
            bail!(
                "{} answered unexpectedly: output {:?}, trace id {:?}",
                target.label,
                reply.output,
                reply.trace_id
            );
        }
    }

    if args.memory_tasks.iter().any(|&n| n > 0) {
        memory_phase(&args, &stub, &targets).await?;
    }

    println!();
    println!(
        "== Throughput: RunAgentTask, {} ==",
        if pinned {
            "servers pinned to CPU 1"
        } else {
            "client + stub + server on shared CPUs"
        }
    );
    println!(
        "{:>5} {:<7} {:>9} {:>8} {:>8} {:>8} {:>8} {:>7} {:>11}",
        "conc", "target", "req/s", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors", "cpu µs/req"
    );
    let mut at_64: Vec<(&str, f64)> = Vec::new();
    for &concurrency in &args.concurrency {
        let mut rates = Vec::new();
        for target in &targets {
            let pid = target.process.pid();
            let result = load::run_level(
                &target.channels,
                &template,
                concurrency,
                args.warmup,
                args.duration,
                || procs::cpu_time(pid).unwrap_or_default(),
            )
            .await;
            print_level(concurrency, target.label, &result);
            rates.push((target.label, result.rps()));
            if concurrency == 64 {
                at_64.push((target.label, result.rps()));
            }
        }
        if let (Some(wasm), Some(native)) = (rate(&rates, "wasm"), rate(&rates, "native")) {
            println!(
                "{:>5} wasm/native throughput: {:.3}",
                "",
                wasm / native.max(f64::MIN_POSITIVE)
            );
        }
    }
    for target in &targets {
        let memory = Memory::of(target.process.pid())?;
        println!(
            "  {} after the run: VmRSS {} KiB, VmHWM {} KiB, {} threads",
            target.label,
            memory.rss,
            memory.hwm,
            procs::threads(target.process.pid())
        );
    }
    println!("  stub wrapper answered {} requests", stub.served());

    println!();
    println!("== Targets (throughput) ==");
    match (rate(&at_64, "wasm"), rate(&at_64, "native")) {
        (Some(wasm), native) => {
            println!(
                "  WASM at 64 concurrent: {wasm:.0} req/s (target ≥ {TARGET_RPS_AT_64:.0}): {}",
                verdict(wasm >= TARGET_RPS_AT_64)
            );
            if let Some(native) = native {
                let ratio = wasm / native;
                println!(
                    "  WASM/native at 64 concurrent: {ratio:.3} (target ≥ {TARGET_RATIO_AT_64}): {}",
                    verdict(ratio >= TARGET_RATIO_AT_64)
                );
            }
        }
        _ => println!("  (no WASM run at concurrency 64)"),
    }
    Ok(())
}

fn rate(rates: &[(&str, f64)], label: &str) -> Option<f64> {
    rates.iter().find(|(l, _)| *l == label).map(|(_, r)| *r)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "MISSED" }
}

fn print_level(concurrency: usize, label: &str, result: &LevelResult) {
    let errors = if result.errors.is_empty() {
        "0".to_string()
    } else {
        format!("{} {:?}", result.error_count(), result.errors)
    };
    println!(
        "{:>5} {:<7} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>7} {:>11.0}",
        concurrency,
        label,
        result.rps(),
        result.latency_ms(0.50),
        result.latency_ms(0.90),
        result.latency_ms(0.99),
        result.latency_ms(1.0),
        errors,
        result.cpu_per_request_us()
    );
}

/// Idle memory (fresh, then after a short warm-up), then N tasks held in the stub:
/// growth per in-flight task.
async fn memory_phase(
    args: &RunArgs,
    stub: &StubWrapper,
    targets: &[Target],
) -> anyhow::Result<()> {
    println!();
    println!(
        "== Memory (KiB, /proc/PID/status; per task = (VmRSS with N held - idle VmRSS) / N) =="
    );
    println!(
        "{:<7} {:>10} {:>10} {:>5} {:>10} {:>10} {:>10} {:>9} {:>9} {:>10}",
        "target",
        "idle fresh",
        "idle warm",
        "N",
        "RSS held",
        "anon held",
        "shmem held",
        "KiB/task",
        "anon/task",
        "RSS after"
    );
    let hold = load::request(&args.backend, HOLD_GOAL);
    let warm = load::request(&args.backend, "warm-up");
    let mut worst: Vec<(&str, f64)> = Vec::new();
    for target in targets {
        let fresh = Memory::of(target.process.pid())?;
        // Warm up: lazily built things (connection pools, span machinery, instance
        // slots) exist after this, so the held figures show the per-task cost only.
        let warmup_concurrency = args.memory_tasks.iter().copied().max().unwrap_or(8).min(64);
        load::run_level(
            &target.channels,
            &warm,
            warmup_concurrency,
            Duration::ZERO,
            Duration::from_millis(500),
            || Duration::ZERO,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let idle = Memory::of(target.process.pid())?;
        for &n in args.memory_tasks.iter().filter(|&&n| n > 0) {
            let calls = load::send_all(&target.channels, &hold, n);
            if !stub.wait_held(n, Duration::from_secs(60)).await {
                stub.release();
                bail!(
                    "{}: only {} of {n} tasks reached the stub",
                    target.label,
                    stub.held()
                );
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let held = Memory::of(target.process.pid())?;
            stub.release();
            let mut failed = 0;
            for call in calls {
                if !matches!(call.await, Ok(Ok(()))) {
                    failed += 1;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let after = Memory::of(target.process.pid())?;
            let rss_per_task = per_task(held.rss, idle.rss, n);
            let anon_per_task = per_task(held.anon, idle.anon, n);
            println!(
                "{:<7} {:>10} {:>10} {:>5} {:>10} {:>10} {:>10} {:>9.1} {:>9.1} {:>10}{}",
                target.label,
                fresh.rss,
                idle.rss,
                n,
                held.rss,
                held.anon,
                held.shmem,
                rss_per_task,
                anon_per_task,
                after.rss,
                if failed > 0 {
                    format!("  ({failed} held calls failed)")
                } else {
                    String::new()
                }
            );
            if target.label == "wasm" {
                worst.push(("wasm", rss_per_task));
            }
        }
        let Memory { hwm, .. } = Memory::of(target.process.pid())?;
        println!("{:<7} VmHWM so far {hwm} KiB", target.label);
    }
    if let Some(max) = worst.iter().map(|(_, v)| *v).reduce(f64::max) {
        println!(
            "  target: ≤ {TARGET_KIB_PER_TASK:.0} KiB per in-flight task above idle (WASM host, worst N): {max:.1} KiB: {}",
            verdict(max <= TARGET_KIB_PER_TASK)
        );
    }
    Ok(())
}

/// Growth per task, KiB (negative when the process shrank).
fn per_task(held: u64, idle: u64, n: usize) -> f64 {
    (held as f64 - idle as f64) / n.max(1) as f64
}
