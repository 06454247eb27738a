//! Command line and environment: every setting is a flag with an env-var twin.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};
use url::Url;

use crate::admin::AdminToken;

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
    Serve(ServeArgs),
    /// Send one RunAgentTask to a running host and print the result and its trace id.
    Call(CallArgs),
    /// List the agents a running host's wrapper can run (ListAgents), with the
    /// backends that run each.
    Agents(AgentsArgs),
    /// Ask a running host's grpc.health.v1 service; exit 0 when SERVING (for probes).
    Health(HealthArgs),
    /// Operate a running host's adapters through AdminService (needs the admin token).
    Adapters(AdaptersArgs),
    /// Local tools for adapter authors (no host needed).
    #[command(subcommand)]
    Adapter(AdapterCommand),
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
    /// The host's admin token.
    #[arg(long, env = "FEDERATION_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: AdminToken,
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
    /// Upload a component file, validate it and swap it in.
    Load {
        file: PathBuf,
        /// Its policy manifest (TOML); the host's defaults when omitted.
        #[arg(long)]
        policy: Option<PathBuf>,
    },
}

/// Where a client subcommand finds the host.
#[derive(Args, Debug, Clone)]
pub struct HostAddress {
    /// Host address.
    #[arg(
        long = "addr",
        env = "FEDERATION_ADDR",
        default_value = "http://127.0.0.1:50075"
    )]
    pub addr: String,
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
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "FEDERATION_LISTEN", default_value = "0.0.0.0:50075")]
    pub listen: SocketAddr,
    /// Directory of adapter components (`*.wasm`), loaded at start-up.
    #[arg(long, env = "FEDERATION_ADAPTERS_DIR", default_value = "dist/adapters")]
    pub adapters_dir: PathBuf,
    /// Watch the adapters directory and apply changes while serving (new, changed and
    /// removed `*.wasm` files). `false`: load once at start-up.
    #[arg(long, env = "FEDERATION_WATCH_ADAPTERS", default_value_t = true, action = clap::ArgAction::Set)]
    pub watch_adapters: bool,
    /// Also rescan the adapters directory this often, ms (catches changes that file
    /// events miss, e.g. on network filesystems). 0: events only.
    #[arg(long, env = "FEDERATION_RESCAN_INTERVAL_MS", default_value_t = 2_000)]
    pub rescan_interval_ms: u64,
    /// Before accepting an adapter, run one task on it with all network denied; a trap
    /// or hang rejects it (a typed error passes).
    #[arg(long, env = "FEDERATION_ADAPTER_SELF_TEST", default_value_t = true, action = clap::ArgAction::Set)]
    pub adapter_self_test: bool,
    /// Token for AdminService (`authorization: Bearer <token>`). Unset (and no
    /// --admin-token-file): AdminService is not served.
    #[arg(long, env = "FEDERATION_ADMIN_TOKEN", hide_env_values = true, value_parser = parse_admin_token)]
    pub admin_token: Option<AdminToken>,
    /// File holding the admin token (e.g. a mounted secret); used when --admin-token is unset.
    #[arg(long, env = "FEDERATION_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Largest adapter component AdminService.LoadAdapter accepts, MiB.
    #[arg(long, env = "FEDERATION_MAX_UPLOAD_MIB", default_value_t = 64)]
    pub max_upload_mib: usize,
    /// Directory caching compiled adapters by digest (skips recompiling on restart).
    /// Must be writable only by the host's user. Unset: no cache.
    #[arg(long, env = "FEDERATION_COMPILE_CACHE_DIR")]
    pub compile_cache_dir: Option<PathBuf>,
    /// Base URL of the agent wrapper, handed to adapters and allowed by their policy.
    #[arg(
        long,
        env = "FEDERATION_WRAPPER_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub wrapper_url: Url,
    /// Budget of a task whose caller set no gRPC deadline (and the cap on any deadline), ms.
    #[arg(long, env = "FEDERATION_TASK_TIMEOUT_MS", default_value_t = 300_000)]
    pub task_timeout_ms: u64,
    /// Timeout of one outbound HTTP request, ms (the task deadline also bounds it).
    #[arg(
        long,
        env = "FEDERATION_OUTBOUND_TIMEOUT_MS",
        default_value_t = 300_000
    )]
    pub outbound_timeout_ms: u64,
    /// TCP connect timeout of outbound requests, ms.
    #[arg(long, env = "FEDERATION_CONNECT_TIMEOUT_MS", default_value_t = 5_000)]
    pub connect_timeout_ms: u64,
    /// Largest outbound response body an adapter may receive, bytes.
    #[arg(long, env = "FEDERATION_MAX_RESPONSE_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub max_response_bytes: u64,
    /// Largest linear memory of one adapter instance, MiB.
    #[arg(long, env = "FEDERATION_MAX_MEMORY_MIB", default_value_t = 64)]
    pub max_memory_mib: usize,
    /// Default guest CPU time per task, ms (time waiting on outbound calls not counted);
    /// a task over it gets RESOURCE_EXHAUSTED. A policy manifest may set its own.
    #[arg(long, env = "FEDERATION_CPU_BUDGET_MS", default_value_t = 30_000)]
    pub cpu_budget_ms: u64,
    /// Default limit of tasks in flight per adapter (0: the host-wide limit); more get
    /// RESOURCE_EXHAUSTED. A policy manifest may set its own.
    #[arg(long, env = "FEDERATION_MAX_TASKS_PER_ADAPTER", default_value_t = 0)]
    pub max_tasks_per_adapter: u32,
    /// Default outbound requests one task may send.
    #[arg(long, env = "FEDERATION_MAX_REQUESTS_PER_TASK", default_value_t = 64)]
    pub max_requests_per_task: u32,
    /// Default outbound requests in flight at once per adapter (across its tasks).
    #[arg(
        long,
        env = "FEDERATION_MAX_CONCURRENT_REQUESTS",
        default_value_t = 256
    )]
    pub max_concurrent_requests: u32,
    /// Largest task output (output + structured result) an adapter may return, bytes;
    /// more gets RESOURCE_EXHAUSTED.
    #[arg(long, env = "FEDERATION_MAX_OUTPUT_BYTES", default_value_t = 4_000_000)]
    pub max_output_bytes: usize,
    /// Tasks in flight at once; more get RESOURCE_EXHAUSTED.
    #[arg(long, env = "FEDERATION_MAX_CONCURRENT_TASKS", default_value_t = 512)]
    pub max_concurrent_tasks: u32,
    /// On SIGTERM/Ctrl-C, how long in-flight tasks get to finish, ms.
    #[arg(long, env = "FEDERATION_SHUTDOWN_GRACE_MS", default_value_t = 30_000)]
    pub shutdown_grace_ms: u64,
}

impl ServeArgs {
    pub fn task_timeout(&self) -> Duration {
        Duration::from_millis(self.task_timeout_ms)
    }

    /// The admin token, from the flag or the file; `None` disables AdminService.
    pub fn admin_token(&self) -> anyhow::Result<Option<AdminToken>> {
        use anyhow::Context;
        let raw = match (&self.admin_token, &self.admin_token_file) {
            (Some(token), _) => return Ok(Some(token.clone())),
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the admin token file {}", file.display()))?,
            (None, None) => return Ok(None),
        };
        match AdminToken::new(raw) {
            Some(token) => Ok(Some(token)),
            None => anyhow::bail!(
                "the admin token file {} is empty",
                self.admin_token_file
                    .as_ref()
                    .map(|f| f.display().to_string())
                    .unwrap_or_default()
            ),
        }
    }
}

fn parse_admin_token(raw: &str) -> Result<AdminToken, String> {
    AdminToken::new(raw.to_string()).ok_or_else(|| "the admin token is empty".to_string())
}

#[derive(Args, Debug, Clone)]
pub struct CallArgs {
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
    /// INPUT_REQUIRED), as JSON, or @FILE holding it: continues that run.
    #[arg(long, value_name = "JSON|@FILE")]
    pub resume: Option<String>,
    /// What the agents should achieve.
    #[arg(long)]
    pub goal: String,
    /// Background for the agents.
    #[arg(long, default_value = "")]
    pub context: String,
    /// input_data as a JSON object.
    #[arg(long, default_value = "{}")]
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
    /// Watch the task run (StreamAgentTask): print each progress event as it comes.
    #[arg(long)]
    pub stream: bool,
    /// Print the whole response as JSON (with --stream: one JSON event per line).
    #[arg(long)]
    pub json: bool,
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}
