//! Starting and stopping the stack's processes by pid, on ports chosen at run time,
//! with their logs kept (and printed when a test fails).

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use federation_proto::federation_service_client::FederationServiceClient;
use otlp_sink::OtlpSink;
use tonic::transport::Channel;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the end-to-end suite through scripts/test.sh")
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that dies with the test thread and is killed on drop.
struct Process {
    name: &'static str,
    child: Option<Child>,
    log: PathBuf,
}

impl Process {
    fn spawn(name: &'static str, mut command: Command, log: PathBuf) -> Process {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        command.stderr(file.try_clone().unwrap());
        if command.get_program().to_string_lossy().ends_with("python") {
            command.stdout(file);
        } else {
            command.stdout(Stdio::piped());
        }
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        Process {
            name,
            child: Some(child),
            log,
        }
    }

    /// Kills the process (SIGKILL: no chance to clean up) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!(
                "---- {} log {} ----\n{}",
                self.name,
                self.log.display(),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
        }
    }
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
        wait_http_ok(
            &mut wrapper,
            wrapper_port,
            "/healthz",
            Duration::from_secs(90),
        );

        let mut command = Command::new(required_env("FEDERATION_E2E_HOST_BIN"));
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .arg("--wrapper-url")
            .arg(format!("http://127.0.0.1:{wrapper_port}"))
            .arg("--adapters-dir")
            .arg(repo_root().join("dist/adapters"))
            .arg("--compile-cache-dir")
            .arg(dir.path().join("compile-cache"))
            .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint())
            .env("OTEL_BSP_SCHEDULE_DELAY", "100");
        let mut host = Process::spawn("host", command, dir.path().join("host.log"));
        let stdout = host.child.as_mut().unwrap().stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let host_addr = line
            .trim()
            .strip_prefix("agent-federation listening on ")
            .unwrap_or_else(|| panic!("host did not start: {line:?}"))
            .parse()
            .unwrap();
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
        wait_http_ok(
            &mut self.wrapper,
            self.wrapper_port,
            "/healthz",
            Duration::from_secs(90),
        );
    }

    /// The wrapper's base URL.
    pub fn wrapper_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.wrapper_port)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn host_log(&self) -> String {
        std::fs::read_to_string(&self.host.log).unwrap_or_default()
    }
}

fn start_wrapper(sink: &OtlpSink, dir: &Path, port: u16, env: &[(String, String)]) -> Process {
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
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint())
        .env("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
        .env("OTEL_BSP_SCHEDULE_DELAY", "100")
        .env_remove("OTEL_SERVICE_NAME")
        .envs(env.iter().map(|(k, v)| (k, v)));
    Process::spawn("wrapper", command, dir.join("wrapper.log"))
}

/// Polls `GET path` on 127.0.0.1:`port` until it answers 200; fails at once if the
/// process exits.
fn wait_http_ok(process: &mut Process, port: u16, path: &str, timeout: Duration) {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if let Some(status) = process
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!(
                "{} exited with {status} before answering on {path}",
                process.name
            );
        }
        if let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) {
            let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
            let mut reply = String::new();
            let _ = stream.read_to_string(&mut reply);
            if reply.starts_with("HTTP/1.1 200") || reply.starts_with("HTTP/1.0 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing answered 200 on 127.0.0.1:{port}{path} within {timeout:?}");
}
