//! Test support: the real `agent-federation` binary as a child process, the test
//! kit's recording stub wrapper, and a real OTLP receiver, all on loopback ports chosen
//! at run time.
#![allow(dead_code, unused_imports)]

use std::{
    ops::{Deref, DerefMut},
    path::{Path, PathBuf},
    sync::OnceLock,
    time::Duration,
};

use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::{TaskRequest, TaskResponse};
pub use federation_testkit::process::unused_url;
use federation_testkit::process::{Host, Process};
pub use federation_testkit::stub as stub_wrapper;
use federation_testkit::stub::StubWrapper;
use otlp_sink::OtlpSink;
use tonic::transport::Channel;

pub mod peer;

/// Directory holding the built adapters (see `scripts/build-adapters.sh`).
pub fn dist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../dist")
}

/// A directory with the shipped adapters plus the test-only ones.
pub fn adapters_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("adapters-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (from, name) in [
            ("adapters/crewai.wasm", "crewai.wasm"),
            ("adapters/langgraph.wasm", "langgraph.wasm"),
            ("test-adapters/test-faults.wasm", "test-faults.wasm"),
        ] {
            let source = dist_dir().join(from);
            assert!(
                source.exists(),
                "{} is missing: run scripts/build-adapters.sh first",
                source.display()
            );
            std::fs::copy(&source, dir.join(name)).unwrap();
        }
        dir
    })
    .clone()
}

/// Runs `agent-federation adapter check FILE` with `extra` flags; its exit code and
/// report (stdout).
pub fn adapter_check(file: &Path, extra: &[&str]) -> (i32, String) {
    let output = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["adapter", "check"])
        .arg(file)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// An adapter that imports `interaction` (contract 0.1.2) passed its checks: it passes
/// a task's agent and resume on, and asks for input on an interrupt.
pub fn assert_interaction_checks_pass(report: &str) {
    assert!(
        report.contains("PASS passes the task's agent and resume"),
        "{report}"
    );
    assert!(
        report.contains("PASS asks for input on an interrupt"),
        "{report}"
    );
}

/// The compiled-adapter cache shared by every host the tests start.
fn compile_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// A running `agent-federation serve`; killed when dropped (its log is printed if a
/// test failed).
pub struct HostProcess(Process);

impl HostProcess {
    /// Starts `agent-federation serve` on 127.0.0.1:0 with `extra` flags.
    pub fn start(wrapper_url: &str, otlp_endpoint: &str, extra: &[&str]) -> HostProcess {
        Self::start_in(&adapters_dir(), wrapper_url, otlp_endpoint, extra)
    }

    /// Like [`HostProcess::start`], serving the adapters in `dir`.
    pub fn start_in(
        dir: &Path,
        wrapper_url: &str,
        otlp_endpoint: &str,
        extra: &[&str],
    ) -> HostProcess {
        Self::start_with(dir, wrapper_url, |host| {
            host.args(extra).otlp(otlp_endpoint)
        })
    }

    /// Like [`HostProcess::start_in`], with more environment variables.
    pub fn start_with_env(
        dir: &Path,
        wrapper_url: &str,
        otlp_endpoint: &str,
        extra: &[&str],
        envs: &[(&str, &str)],
    ) -> HostProcess {
        Self::start_with(dir, wrapper_url, |host| {
            envs.iter()
                .fold(host, |host, (key, value)| host.env(*key, *value))
                .args(extra)
                .otlp(otlp_endpoint)
        })
    }

    /// Like [`HostProcess::start_in`], with `configure` setting the flags and the
    /// environment (the OTLP variables among them).
    pub fn start_with(
        dir: &Path,
        wrapper_url: &str,
        configure: impl FnOnce(Host) -> Host,
    ) -> HostProcess {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "host-{}-{}.log",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let host = Host::new(federation_testkit::process::host_bin(), wrapper_url, dir)
            .arg("--compile-cache-dir")
            .arg(compile_cache_dir());
        let host = configure(host)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
            .env(
                "RUST_LOG",
                "info,federation_host=debug,federation_runtime=debug",
            )
            .start(log);
        HostProcess(host)
    }
}

impl Deref for HostProcess {
    type Target = Process;

    fn deref(&self) -> &Process {
        &self.0
    }
}

impl DerefMut for HostProcess {
    fn deref_mut(&mut self) -> &mut Process {
        &mut self.0
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// The stub wrapper, the OTLP sink and one host, started once per test binary on a
/// runtime of their own (so they outlive each test's runtime).
pub struct Env {
    pub stub: StubWrapper,
    pub stub_url: String,
    pub sink: OtlpSink,
    pub host: HostProcess,
}

pub fn env() -> &'static Env {
    static ENV: OnceLock<Env> = OnceLock::new();
    ENV.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            runtime.block_on(async move {
                let (stub, stub_url, sink) = start_stub_and_sink().await;
                let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
                tx.send(Env {
                    stub,
                    stub_url,
                    sink,
                    host,
                })
                .unwrap();
                std::future::pending::<()>().await;
            });
        });
        rx.recv().unwrap()
    })
}

/// Starts the stub and the sink on the calling test's runtime (for tests that need a
/// host of their own).
pub async fn start_stub_and_sink() -> (StubWrapper, String, OtlpSink) {
    let stub = StubWrapper::start().await;
    let sink = OtlpSink::start().await.unwrap();
    let url = stub.url();
    (stub, url, sink)
}

/// A request for `backend` with a unique request id.
pub fn task(backend: &str, goal: &str) -> TaskRequest {
    TaskRequest {
        goal: goal.into(),
        backend: backend.into(),
        request_id: format!("req-{}", uuid_like()),
        ..Default::default()
    }
}

pub fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The deadline the tests that expect DEADLINE_EXCEEDED give a task. The host keeps a
/// tenth of it back (at most 250 ms, `deadline::margin`) so its own answer beats tonic's
/// timer, which answers a bare CANCELLED: 30 ms of a 300 ms deadline was missed at a
/// load of 7 on 2 cores. Shorter than the slow stubs (5 s), so they still overrun it.
pub const TEST_DEADLINE: Duration = Duration::from_secs(3);

/// Sends `request` with an optional `traceparent` and deadline.
pub async fn run(
    client: &mut FederationServiceClient<Channel>,
    request: TaskRequest,
    traceparent: Option<&str>,
    timeout: Option<Duration>,
) -> Result<TaskResponse, tonic::Status> {
    let mut request = tonic::Request::new(request);
    if let Some(tp) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    if let Some(timeout) = timeout {
        request.set_timeout(timeout);
    }
    client.run_agent_task(request).await.map(|r| r.into_inner())
}

/// Polls `check` until it returns true, failing after `limit` (a hang guard, not a
/// timing assertion).
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
