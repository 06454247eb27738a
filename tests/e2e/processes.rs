//! Starting and stopping the stack's processes by pid, on ports chosen at run time,
//! with their logs kept (and printed when a test fails).

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use federation_proto::federation_service_client::FederationServiceClient;
use federation_testkit::process::{Host, Launch, Process, free_port};
use otlp_sink::OtlpSink;
use tonic::transport::Channel;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end suite through scripts/test.sh")
    })
}

/// Wrapper + host + OTLP sink.
pub struct Stack {
    // Fields drop in order: processes (printing their logs on failure) before the
    // directory holding those logs.
    host: Process,
    wrapper: Process,
    pub sink: OtlpSink,
    wrapper_port: u16,
    wrapper_env: Vec<(String, String)>,
    pub host_addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub async fn start() -> Stack {
        Self::start_with_wrapper_env(&[]).await
    }

    /// A stack whose wrapper gets extra environment (e.g. its test-only step delay).
    pub async fn start_with_wrapper_env(wrapper_env: &[(&str, &str)]) -> Stack {
        let wrapper_env: Vec<(String, String)> = wrapper_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let sink = OtlpSink::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let wrapper_port = free_port();
        let mut wrapper = start_wrapper(&sink, dir.path(), wrapper_port, &wrapper_env);
        wrapper.wait_http_ok(wrapper_port, "/healthz", Duration::from_secs(90));

        let host = Host::new(
            federation_testkit::process::host_bin(),
            &format!("http://127.0.0.1:{wrapper_port}"),
            &repo_root().join("dist/adapters"),
        )
        .arg("--compile-cache-dir")
        .arg(dir.path().join("compile-cache"))
        .otlp(&sink.grpc_endpoint())
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .start(dir.path().join("host.log"));
        let host_addr = host.addr();
        Stack {
            sink,
            dir,
            wrapper,
            wrapper_port,
            wrapper_env,
            host,
            host_addr,
        }
    }

    pub async fn client(&self) -> FederationServiceClient<Channel> {
        FederationServiceClient::connect(format!("http://{}", self.host_addr))
            .await
            .unwrap()
    }

    /// Kills the wrapper with SIGKILL (no graceful shutdown, like a crash).
    pub fn kill_wrapper(&mut self) {
        self.wrapper.kill();
    }

    /// Starts the wrapper again on the same port and state directory.
    pub fn restart_wrapper(&mut self) {
        self.wrapper.kill();
        self.wrapper = start_wrapper(
            &self.sink,
            self.dir.path(),
            self.wrapper_port,
            &self.wrapper_env,
        );
        self.wrapper
            .wait_http_ok(self.wrapper_port, "/healthz", Duration::from_secs(90));
    }

    /// The wrapper's base URL.
    pub fn wrapper_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.wrapper_port)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn host_log(&self) -> String {
        self.host.log()
    }
}

pub fn start_wrapper(sink: &OtlpSink, dir: &Path, port: u16, env: &[(String, String)]) -> Process {
    let venv = PathBuf::from(required_env("AGENT_WRAPPER_VENV"));
    let mut command = Command::new(venv.join("bin/python"));
    command
        .args(["-m", "agent_wrapper", "--host", "127.0.0.1", "--port"])
        .arg(port.to_string())
        .current_dir(dir)
        // This checkout's wrapper, whatever checkout the cached venv was made from.
        .env("PYTHONPATH", repo_root().join("agent-wrapper/src"))
        .env("AGENT_WRAPPER_STORE", "file")
        .env("AGENT_WRAPPER_STATE_DIR", dir.join("state"))
        .env("AGENT_WRAPPER_LLM_PROVIDER", "offline")
        // One process per wrapper (the default is one per core): each worker imports
        // CrewAI and LangChain (~375 MiB); tests that want several ask for them.
        .env("AGENT_WRAPPER_WORKERS", "1")
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Launch::new("wrapper", command, dir.join("wrapper.log"))
        .start()
        .unwrap_or_else(|e| panic!("{e:#}"))
}

/// Two workers and two hosts; host `i` talks to worker `i`; both workers share a state
/// directory (one SQLite database holding sessions, run records and the run queue).
pub struct Fleet {
    pub hosts: Vec<Process>,
    pub workers: Vec<Process>,
    _sink: OtlpSink,
    _dir: tempfile::TempDir,
}

impl Fleet {
    pub async fn start(worker_env: &[(&str, &str)]) -> Fleet {
        let sink = OtlpSink::start().await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let env: Vec<(String, String)> = [
            ("AGENT_WRAPPER_STORE", "sqlite"),
            ("AGENT_WRAPPER_RUN_POLL_MS", "50"),
        ]
        .iter()
        .chain(worker_env)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let mut workers = Vec::new();
        let mut hosts = Vec::new();
        for i in 0..2 {
            let port = free_port();
            let mut worker = start_wrapper(&sink, dir.path(), port, &env);
            worker.wait_http_ok(port, "/healthz", Duration::from_secs(90));
            workers.push(worker);
            hosts.push(
                Host::new(
                    federation_testkit::process::host_bin(),
                    &format!("http://127.0.0.1:{port}"),
                    &repo_root().join("dist/adapters"),
                )
                .arg("--compile-cache-dir")
                .arg(dir.path().join("compile-cache"))
                .otlp(&sink.grpc_endpoint())
                .start(dir.path().join(format!("host-{i}.log"))),
            );
        }
        Fleet {
            hosts,
            workers,
            _sink: sink,
            _dir: dir,
        }
    }

    pub async fn status(&self, host: usize, task_id: &str) -> federation_proto::AgentTaskStatus {
        self.hosts[host]
            .client()
            .await
            .get_agent_task(federation_proto::GetAgentTaskRequest {
                task_id: task_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
    }

    /// Host `host`'s WatchAgentTask of `task_id` after `after_seq`, to its end.
    pub async fn watch(
        &self,
        host: usize,
        task_id: &str,
        after_seq: u64,
    ) -> Vec<federation_proto::TaskEvent> {
        use tokio_stream::StreamExt;
        let mut stream = self.hosts[host]
            .client()
            .await
            .watch_agent_task(federation_proto::WatchAgentTaskRequest {
                task_id: task_id.into(),
                after_seq,
            })
            .await
            .unwrap()
            .into_inner();
        let mut events = Vec::new();
        while let Some(event) = stream.next().await {
            events.push(event.unwrap());
        }
        events
    }
}
