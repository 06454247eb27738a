//! Servers under test as child processes: the host (or any server that prints its
//! address on its first stdout line), the agent wrapper, the benchmark's baseline.
//!
//! A [`Process`] dies with the thread that started it (even if the test binary
//! aborts), is killed when dropped, and keeps its stderr (and its stdout, unless the
//! ready line is read from it) in a log file that is printed when a test panics.

use std::{
    ffi::OsString,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    os::unix::process::CommandExt,
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::{TaskEvent, TaskRequest};
use tonic::transport::Channel;

/// The line `agent-federation serve` prints once it listens, before the address.
pub const HOST_READY: &str = "agent-federation listening on ";

/// How to start a [`Process`].
pub struct Launch {
    name: String,
    command: Command,
    log: PathBuf,
    ready: Option<String>,
    cpu: Option<usize>,
}

impl Launch {
    /// `command`, called `name` in messages, logging to `log` (appended to).
    pub fn new(name: impl Into<String>, command: Command, log: impl Into<PathBuf>) -> Launch {
        Launch {
            name: name.into(),
            command,
            log: log.into(),
            ready: None,
            cpu: None,
        }
    }

    /// Wait for the first stdout line, which must be `prefix` and then the address the
    /// process listens on.
    pub fn ready_line(mut self, prefix: impl Into<String>) -> Launch {
        self.ready = Some(prefix.into());
        self
    }

    /// Run the process (and every thread it starts) on `cpu` only.
    pub fn pin_to_cpu(mut self, cpu: Option<usize>) -> Launch {
        self.cpu = cpu;
        self
    }

    pub fn start(self) -> anyhow::Result<Process> {
        let Launch {
            name,
            mut command,
            log,
            ready,
            cpu,
        } = self;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        command.stderr(file.try_clone()?);
        if ready.is_some() {
            command.stdout(Stdio::piped());
        } else {
            command.stdout(file);
        }
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            command.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(cpu) = cpu {
                    pin_current(cpu);
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("starting {name} ({command:?})"))?;
        let mut process = Process {
            name,
            child: Some(child),
            log,
            addr: None,
        };
        if let Some(prefix) = ready {
            let stdout = process.child.as_mut().and_then(|c| c.stdout.take());
            let mut line = String::new();
            BufReader::new(stdout.context("no stdout")?).read_line(&mut line)?;
            let Some(addr) = line.trim().strip_prefix(prefix.trim_end()) else {
                bail!(
                    "{} did not start (first line {line:?}); its log:\n{}",
                    process.name,
                    process.log()
                );
            };
            process.addr = Some(addr.trim().parse().context("parsing the listen address")?);
        }
        Ok(process)
    }
}

/// A running child process.
pub struct Process {
    name: String,
    child: Option<Child>,
    log: PathBuf,
    addr: Option<SocketAddr>,
}

impl Process {
    /// The address its ready line gave.
    pub fn addr(&self) -> SocketAddr {
        self.addr.expect("started with a ready line")
    }

    /// `http://ADDR`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Its exit status, if it has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Kills it (SIGKILL: no chance to clean up, like a crash) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends SIGTERM and waits for it to exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("still running");
        // SAFETY: kill() only sends a signal to our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        child.wait().expect("waiting for the process")
    }

    /// Polls `GET path` on 127.0.0.1:`port` until it answers 200; fails at once if
    /// the process exits.
    pub fn wait_http_ok(&mut self, port: u16, path: &str, timeout: Duration) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.try_wait() {
                panic!(
                    "{} exited with {status} before answering on {path}",
                    self.name
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

    /// A `FederationService` client of the server at its address.
    pub async fn client(&self) -> FederationServiceClient<Channel> {
        FederationServiceClient::connect(self.endpoint())
            .await
            .expect("connecting to the host")
    }

    /// A channel to its address.
    pub async fn channel(&self) -> Channel {
        Channel::from_shared(self.endpoint())
            .expect("an http endpoint")
            .connect()
            .await
            .expect("connecting to the host")
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
                self.log()
            );
        }
    }
}

/// `agent-federation serve` with what every test host needs: loopback port 0, the
/// wrapper URL, the adapters directory, an OTLP endpoint, and more flags and
/// environment as given.
pub struct Host {
    bin: PathBuf,
    args: Vec<OsString>,
    envs: Vec<(OsString, OsString)>,
}

impl Host {
    /// The host binary `bin` serving `adapters_dir` for the wrapper at `wrapper_url`.
    pub fn new(bin: impl Into<PathBuf>, wrapper_url: &str, adapters_dir: &Path) -> Host {
        let mut args: Vec<OsString> = ["serve", "--listen", "127.0.0.1:0", "--wrapper-url"]
            .map(OsString::from)
            .into();
        args.push(wrapper_url.into());
        args.push("--adapters-dir".into());
        args.push(adapters_dir.into());
        Host {
            bin: bin.into(),
            args,
            envs: Vec::new(),
        }
    }

    /// Another flag (or flag value).
    pub fn arg(mut self, arg: impl Into<OsString>) -> Host {
        self.args.push(arg.into());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: Into<OsString>>(mut self, args: I) -> Host {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> Host {
        self.envs.push((key.into(), value.into()));
        self
    }

    /// Where its spans and metrics go (OTLP/gRPC).
    pub fn otlp(self, endpoint: &str) -> Host {
        self.env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
    }

    /// Starts it, logging to `log`; panics with its log when it does not come up.
    pub fn start(self, log: impl Into<PathBuf>) -> Process {
        let mut command = Command::new(&self.bin);
        command.args(&self.args).envs(self.envs);
        Launch::new("host", command, log)
            .ready_line(HOST_READY)
            .start()
            .unwrap_or_else(|e| panic!("{e:#}"))
    }
}

/// Every event of a `StreamAgentTask` call, in order; the error when the call is
/// refused or the stream breaks.
pub async fn stream_events(
    client: &mut FederationServiceClient<Channel>,
    request: impl tonic::IntoRequest<TaskRequest>,
) -> Result<Vec<TaskEvent>, tonic::Status> {
    let mut stream = client.stream_agent_task(request).await?.into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.message().await? {
        events.push(event);
    }
    Ok(events)
}

/// Pins the calling thread (and the threads it starts later) to `cpu`.
pub fn pin_current(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the calls only read it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// An http URL on a loopback port nothing listens on.
pub fn unused_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    format!("http://{}", listener.local_addr().expect("its address"))
}

/// The `agent-federation` binary the cross-process suites run: `FEDERATION_HOST_BIN`,
/// or the one cargo built into the same target directory as the running test
/// (`target/debug/deps/<test>` → `target/debug/agent-federation`). The suites live in
/// another package than the binary, so cargo's `CARGO_BIN_EXE_*` does not reach them;
/// `cargo build -p federation-cli` must run first (scripts/test.sh does).
pub fn host_bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        let bin = std::env::var("FEDERATION_HOST_BIN")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                let exe = std::env::current_exe().expect("the test's own path");
                // deps/ → the profile directory (debug/ or release/).
                let profile = exe
                    .parent()
                    .and_then(Path::parent)
                    .expect("a cargo target layout");
                profile.join("agent-federation")
            });
        assert!(
            bin.is_file(),
            "no host binary at {}: run `cargo build -p federation-cli` first, or set \
             FEDERATION_HOST_BIN",
            bin.display()
        );
        bin.to_string_lossy().into_owned()
    })
}

/// A free loopback port (free when asked; another process may take it after).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
