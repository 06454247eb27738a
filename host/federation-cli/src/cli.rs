//! The command line: `serve` (the host's settings are `federation_host::ServeArgs`),
//! the client subcommands and the adapter author's tools. Every setting is a flag with
//! an env-var twin.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use federation_host::AdminToken;
use federation_host::ServeArgs;
use federation_host::oci_registry::RegistryArgs;
use federation_host::parse_admin_token;

#[derive(Parser, Debug)]
#[command(
    name = "agent-federation",
    version,
    about = "Run AI agent frameworks behind one gRPC API, each adapter sandboxed in WebAssembly"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve FederationService (plus health and reflection) over gRPC.
    // Boxed: the serve flags dwarf the other commands' (clippy::large_enum_variant).
    Serve(Box<ServeArgs>),
    /// Send one RunAgentTask to a running host and print the result and its trace id.
    Call(CallArgs),
    /// Start a task in the background (StartAgentTask) and print its task id.
    Start(StartArgs),
    /// Report a background task (GetAgentTask): its state, and its result when done.
    Get(TaskIdArgs),
    /// Cancel a background task (CancelAgentTask) and print its state.
    Cancel(TaskIdArgs),
    /// Rejoin a task's events (WatchAgentTask) after the last seq seen, on any host
    /// replica: prints them as `call --stream` does, up to the last one.
    Watch(WatchArgs),
    /// List the agents a running host's wrapper can run (ListAgents), with the
    /// backends that run each.
    Agents(AgentsArgs),
    /// Ask a running host's grpc.health.v1 service; exit 0 when SERVING (for probes).
    Health(HealthArgs),
    /// Operate a running host's adapters through AdminService (needs the admin token).
    Adapters(AdaptersArgs),
    /// Write a development CA, a server certificate for localhost/127.0.0.1, a client
    /// certificate, a fresh token and an auth file into DIR, and print the serve and
    /// call flags that use them (TLS + token, or mTLS).
    DevCerts(DevCertsArgs),
    /// Local tools for adapter authors (no host needed).
    #[command(subcommand)]
    Adapter(AdapterCommand),
}

#[derive(Args, Debug, Clone)]
pub struct DevCertsArgs {
    /// Directory to write (created; existing files are not overwritten).
    pub dir: PathBuf,
    /// The principal the token and the client certificate name.
    #[arg(long, default_value = "dev")]
    pub principal: String,
}

#[derive(Subcommand, Debug, Clone)]
pub enum AdapterCommand {
    /// Load FILE.wasm as the host would and run conformance checks against a built-in
    /// stub wrapper; exits 1 with a report when any check fails.
    Check {
        file: PathBuf,
        /// Policy manifest (default: FILE.toml beside the component, if any).
        #[arg(long)]
        policy: Option<PathBuf>,
    },
    /// Create a new Rust adapter crate NAME from the template (builds with
    /// `cargo build --release --target wasm32-wasip2`).
    New {
        /// The adapter's backend name: 1..64 of [a-z0-9-], starting with a letter.
        name: String,
        /// Directory to create (default: ./NAME).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The SDK crate, `adapters/sdk` of an agent-federation checkout (default:
        /// found above the current directory).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

#[derive(Args, Debug, Clone)]
pub struct AdaptersArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// Print the outcome as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The host's admin token (every action but `push`).
    #[arg(long, env = "FEDERATION_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: Option<AdminToken>,
    #[command(subcommand)]
    pub action: AdaptersAction,
}

#[derive(Subcommand, Debug, Clone)]
pub enum AdaptersAction {
    /// Adapters served (current and previous builds) and recent rejections.
    List,
    /// Re-read the adapters directory now and print what changed.
    Reload,
    /// Make the previous build of NAME current again.
    Rollback { name: String },
    /// Publish a component to an OCI registry (the wkg/wasmCloud layout: one
    /// `application/wasm` layer, digest = the component's sha256), for hosts whose
    /// `--adapter-source` follows REFERENCE. Talks to the registry, not to a host.
    Push {
        file: PathBuf,
        /// oci://REGISTRY/REPO:TAG
        reference: String,
        /// Its policy manifest (TOML), published as a second layer; default: FILE.toml
        /// beside the component, if any.
        #[arg(long)]
        policy: Option<PathBuf>,
        #[command(flatten)]
        registry: RegistryArgs,
    },
    /// Upload a component file, validate it and swap it in.
    Load {
        file: PathBuf,
        /// Its policy manifest (TOML); the host's defaults when omitted.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

/// Where a client subcommand finds the host, and how it proves who it is.
#[derive(Args, Debug, Clone)]
pub struct HostAddress {
    /// Host address (`https://…` for a host serving TLS).
    #[arg(
        long = "addr",
        env = "FEDERATION_ADDR",
        default_value = "http://127.0.0.1:50075"
    )]
    pub addr: String,
    /// CA certificate (PEM) that signed the host's TLS certificate (default: the
    /// public web roots).
    #[arg(long, env = "FEDERATION_TLS_CA")]
    pub tls_ca: Option<PathBuf>,
    /// Client certificate (PEM) for a host that requires mTLS.
    #[arg(long, env = "FEDERATION_CLIENT_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// Private key (PEM) of --tls-cert.
    #[arg(long, env = "FEDERATION_CLIENT_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Bearer token sent as `authorization: Bearer …` (not for `adapters`, which sends
    /// the admin token).
    #[arg(long, env = "FEDERATION_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// File holding the bearer token; used when --token is unset.
    #[arg(long, env = "FEDERATION_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct AgentsArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// Only the agents this backend (adapter name) can run.
    #[arg(long, default_value = "")]
    pub backend: String,
    /// Print the list as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct HealthArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// Service to check: empty for the whole host, `backend/<name>` for one adapter.
    #[arg(long, default_value = "")]
    pub service: String,
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct TaskIdArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// The task id StartAgentTask answered (`<federation_session_id>/<request_id>`).
    pub task_id: String,
    /// Print the task's status as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct WatchArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// The task id (`<federation_session_id>/<request_id>`, as `call --stream` prints it).
    pub task_id: String,
    /// The last seq seen: print the events after it (0: all).
    #[arg(long, default_value_t = 0)]
    pub after: u64,
    /// One JSON event per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct StartArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Print the reply as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone)]
pub struct CallArgs {
    #[command(flatten)]
    pub task: TaskArgs,
    /// Watch the task run (StreamAgentTask): print each progress event as it comes.
    #[arg(long)]
    pub stream: bool,
    /// Print the whole response as JSON (with --stream: one JSON event per line).
    #[arg(long)]
    pub json: bool,
    /// With --stream: the task runs on when the stream breaks off (`on_disconnect`
    /// CONTINUE); `watch TASK_ID --after N` rejoins it.
    #[arg(long, requires = "stream")]
    pub keep_running: bool,
}

/// A task, as `call` and `start` send it. `--input`, `--context` and `--resume` take
/// their value as given, from `@FILE`, or from standard input with `-`.
#[derive(Args, Debug, Clone)]
pub struct TaskArgs {
    #[command(flatten)]
    pub host: HostAddress,
    /// Adapter to run (e.g. crewai, langgraph).
    #[arg(long)]
    pub backend: String,
    /// Agent to run, one the wrapper registered for the backend's framework (see
    /// `agents`); the backend's default when omitted.
    #[arg(long, default_value = "")]
    pub agent: String,
    /// Answer to the question the session's run asked (a task that ended
    /// INPUT_REQUIRED), as JSON, @FILE holding it, or - for stdin: continues that run.
    #[arg(long, value_name = "JSON|@FILE|-")]
    pub resume: Option<String>,
    /// What the agents should achieve.
    #[arg(long)]
    pub goal: String,
    /// Background for the agents (text, @FILE, or - for stdin).
    #[arg(long, default_value = "", value_name = "TEXT|@FILE|-")]
    pub context: String,
    /// input_data as a JSON object (or @FILE, or - for stdin).
    #[arg(long, default_value = "{}", value_name = "JSON|@FILE|-")]
    pub input: String,
    /// Session to run in (resumes its state); a new one when omitted.
    #[arg(long, default_value = "")]
    pub session: String,
    /// Request id; generated by the host when omitted.
    #[arg(long, default_value = "")]
    pub request_id: String,
    /// Deadline for the call, ms.
    #[arg(long, default_value_t = 120_000)]
    pub timeout_ms: u64,
    /// W3C traceparent to continue (as an orchestrator would send).
    #[arg(long)]
    pub traceparent: Option<String>,
    /// Caller metadata passed to the adapter, KEY=VALUE (repeatable).
    #[arg(long = "metadata", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub metadata: Vec<(String, String)>,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}
