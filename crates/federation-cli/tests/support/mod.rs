//! Test support: the real `agent-federation` binary as a child process, a recording
//! stub wrapper, and a real OTLP receiver, all on loopback ports chosen at run time.
#![allow(dead_code)]

pub mod stub_wrapper;

use std::{
    io::{BufRead, BufReader},
    net::SocketAddr,
    os::unix::process::CommandExt,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::Duration,
};

use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::{TaskRequest, TaskResponse};
use otlp_sink::OtlpSink;
use stub_wrapper::StubWrapper;
use tonic::transport::Channel;

/// Directory holding the built adapters (see `scripts/build-adapters.sh`).
pub fn dist_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../dist")
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

/// The compiled-adapter cache shared by every host the tests start.
fn compile_cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("compile-cache")
}

/// A running host process; killed when dropped (its log is printed if a test failed).
pub struct HostProcess {
    child: Child,
    pub addr: SocketAddr,
    log: PathBuf,
}

impl HostProcess {
    /// Starts `agent-federation serve` on 127.0.0.1:0 with `extra` flags.
    pub fn start(wrapper_url: &str, otlp_endpoint: &str, extra: &[&str]) -> HostProcess {
        Self::start_in(&adapters_dir(), wrapper_url, otlp_endpoint, extra)
    }

    /// Like [`HostProcess::start`], serving the adapters in `dir`.
    pub fn start_in(
        dir: &std::path::Path,
        wrapper_url: &str,
        otlp_endpoint: &str,
        extra: &[&str],
    ) -> HostProcess {
        let log = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "host-{}-{}.log",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let log_file = std::fs::File::create(&log).unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_agent-federation"));
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--wrapper-url",
                wrapper_url,
            ])
            .arg("--adapters-dir")
            .arg(dir)
            .arg("--compile-cache-dir")
            .arg(compile_cache_dir())
            .args(extra)
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint)
            .env("OTEL_BSP_SCHEDULE_DELAY", "50")
            .env("OTEL_METRIC_EXPORT_INTERVAL", "200")
            .env(
                "RUST_LOG",
                "info,federation_host=debug,federation_runtime=debug",
            )
            .stdout(Stdio::piped())
            .stderr(log_file);
        // The host dies with the thread that started it, even if the test binary aborts.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let mut child = command.spawn().expect("starting agent-federation");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("agent-federation listening on ")
            .unwrap_or_else(|| {
                panic!(
                    "host did not start ({line:?}); log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            })
            .parse()
            .unwrap();
        HostProcess { child, addr, log }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    pub async fn client(&self) -> FederationServiceClient<Channel> {
        FederationServiceClient::connect(self.endpoint())
            .await
            .unwrap()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        self.child.wait().unwrap()
    }
}

static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- host log {} ----\n{}", self.log.display(), self.log());
        }
    }
}

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
                let (stub, addr) = StubWrapper::start().await;
                let sink = OtlpSink::start().await.unwrap();
                let stub_url = format!("http://{addr}");
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
    let (stub, addr) = StubWrapper::start().await;
    let sink = OtlpSink::start().await.unwrap();
    (stub, format!("http://{addr}"), sink)
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

/// An http URL on a loopback port nothing listens on.
pub fn unused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    format!("http://{}", listener.local_addr().unwrap())
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
