//! The load client: `concurrency` workers, each sending `RunAgentTask` back to back over
//! a few shared HTTP/2 connections for a fixed time, recording every latency; and the
//! memory phase's "hold N tasks in flight" step.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use anyhow::Context;
use federation_proto::TaskRequest;
use federation_proto::federation_service_client::FederationServiceClient;
use prost_types::{Struct, Value, value::Kind};
use tonic::transport::{Channel, Endpoint};

/// Deadline every benchmark request carries (the servers derive their budget from it).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// `connections` HTTP/2 connections to `endpoint`, opened now.
pub async fn connect(endpoint: &str, connections: usize) -> anyhow::Result<Vec<Channel>> {
    let mut channels = Vec::with_capacity(connections);
    for _ in 0..connections.max(1) {
        let channel = Endpoint::from_shared(endpoint.to_string())?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {endpoint}"))?;
        channels.push(channel);
    }
    Ok(channels)
}

/// The task every request carries: small, as an orchestrator's typical one.
pub fn request(backend: &str, goal: &str) -> TaskRequest {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.into())),
    };
    let input = Struct {
        fields: [
            ("topic".to_string(), string("revenue")),
            (
                "priority".to_string(),
                Value {
                    kind: Some(Kind::NumberValue(2.0)),
                },
            ),
            (
                "tags".to_string(),
                Value {
                    kind: Some(Kind::ListValue(prost_types::ListValue {
                        values: vec![string("finance"), string("q3")],
                    })),
                },
            ),
        ]
        .into(),
    };
    TaskRequest {
        goal: goal.into(),
        context: "The board meets on Friday; keep it under 200 words.".into(),
        input_data: Some(input),
        federation_session_id: String::new(),
        backend: backend.into(),
        request_id: String::new(),
        metadata: [("team".to_string(), "bench".to_string())].into(),
        ..Default::default()
    }
}

/// One target at one concurrency level.
#[derive(Debug, Default)]
pub struct LevelResult {
    pub ok: u64,
    /// Failed calls by gRPC code.
    pub errors: BTreeMap<String, u64>,
    /// Latencies of the successful calls that ended inside the measured window, µs, sorted.
    pub latencies_us: Vec<u64>,
    pub window: Duration,
    /// CPU time the server process used during the window.
    pub server_cpu: Duration,
}

impl LevelResult {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.window.as_secs_f64()
    }

    /// The `q` quantile of the latencies, ms.
    pub fn latency_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies_us.len() as f64 - 1.0) * q).round() as usize;
        self.latencies_us[index] as f64 / 1000.0
    }

    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// Server CPU per successful request, µs.
    pub fn cpu_per_request_us(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.ok.max(1) as f64
    }
}

/// Runs `concurrency` workers for `warmup + duration`; counts calls that end in the last
/// `duration`. `server_cpu` reads the server's CPU time (sampled at the window's ends).
pub async fn run_level(
    channels: &[Channel],
    template: &TaskRequest,
    concurrency: usize,
    warmup: Duration,
    duration: Duration,
    server_cpu: impl Fn() -> Duration,
) -> LevelResult {
    let start = Instant::now();
    let window_start = start + warmup;
    let end = window_start + duration;
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let mut client = FederationServiceClient::new(channels[worker % channels.len()].clone());
        let template = template.clone();
        workers.push(tokio::spawn(async move {
            let mut result = LevelResult::default();
            loop {
                let sent = Instant::now();
                if sent >= end {
                    break;
                }
                let mut request = tonic::Request::new(template.clone());
                request.set_timeout(REQUEST_TIMEOUT);
                let outcome = client.run_agent_task(request).await;
                let done = Instant::now();
                if done < window_start || done > end {
                    continue;
                }
                match outcome {
                    Ok(_) => {
                        result.ok += 1;
                        result
                            .latencies_us
                            .push(u64::try_from((done - sent).as_micros()).unwrap_or(u64::MAX));
                    }
                    Err(status) => {
                        *result
                            .errors
                            .entry(format!("{:?}", status.code()))
                            .or_default() += 1;
                    }
                }
            }
            result
        }));
    }
    tokio::time::sleep_until(window_start.into()).await;
    let cpu_before = server_cpu();
    tokio::time::sleep_until(end.into()).await;
    let cpu_after = server_cpu();
    let mut total = LevelResult {
        window: duration,
        server_cpu: cpu_after.saturating_sub(cpu_before),
        ..LevelResult::default()
    };
    for worker in workers {
        let Ok(result) = worker.await else {
            *total.errors.entry("worker panicked".into()).or_default() += 1;
            continue;
        };
        total.ok += result.ok;
        total.latencies_us.extend(result.latencies_us);
        for (code, count) in result.errors {
            *total.errors.entry(code).or_default() += count;
        }
    }
    total.latencies_us.sort_unstable();
    total
}

/// Sends `n` requests at once and returns their handles (the caller releases them).
pub fn send_all(
    channels: &[Channel],
    template: &TaskRequest,
    n: usize,
) -> Vec<tokio::task::JoinHandle<Result<(), tonic::Status>>> {
    (0..n)
        .map(|i| {
            let mut client = FederationServiceClient::new(channels[i % channels.len()].clone());
            let template = template.clone();
            tokio::spawn(async move {
                let mut request = tonic::Request::new(template);
                request.set_timeout(Duration::from_secs(120));
                client.run_agent_task(request).await.map(|_| ())
            })
        })
        .collect()
}
