//! The serve command's settings: every flag has an environment twin
//! (`agent-federation serve --help`).

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Args;
use url::Url;

use crate::admin::AdminToken;
use crate::lifecycle::registry_sources::SourceSpec;
use crate::oci_registry::RegistryArgs;

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port). Without caller authentication
    /// (--auth-file or --tls-client-ca) only a loopback address is accepted, unless
    /// --allow-unauthenticated.
    #[arg(long, env = "FEDERATION_LISTEN", default_value = "127.0.0.1:50075")]
    pub listen: SocketAddr,
    /// Serve on a non-loopback address without authenticating callers (anyone who can
    /// reach the port may run tasks and read sessions).
    #[arg(long, env = "FEDERATION_ALLOW_UNAUTHENTICATED", default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub allow_unauthenticated: bool,
    /// Also serve A2A 1.0 (JSON-RPC over HTTP with SSE; docs/a2a-and-mcp.md) on this
    /// address, e.g. 127.0.0.1:50076 (port 0 picks a free port): every agent of
    /// ListAgents as an A2A agent, callers authenticated as on gRPC, the same loopback
    /// rule without authentication. Unset: no A2A listener.
    #[arg(long, env = "FEDERATION_A2A_LISTEN")]
    pub a2a_listen: Option<SocketAddr>,
    /// Scheme and authority the A2A agent cards name (e.g. https://agents.example.com
    /// behind a proxy). Unset: each card request's Host.
    #[arg(long, env = "FEDERATION_A2A_PUBLIC_URL")]
    pub a2a_public_url: Option<String>,
    /// Also serve MCP (streamable HTTP at /mcp; docs/a2a-and-mcp.md) on this address,
    /// e.g. 127.0.0.1:50077 (port 0 picks a free port): every agent of ListAgents as an
    /// MCP tool, callers authenticated as on gRPC, the same loopback rule without
    /// authentication. Not with --tls-cert (TLS is not served on it yet). Unset: no
    /// MCP listener.
    #[arg(long, env = "FEDERATION_MCP_LISTEN")]
    pub mcp_listen: Option<SocketAddr>,
    /// TLS certificate chain (PEM) of the gRPC server; with --tls-key, the host
    /// serves TLS only.
    #[arg(long, env = "FEDERATION_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM) of --tls-cert.
    #[arg(long, env = "FEDERATION_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that sign client certificates: every connection must
    /// then present one (mTLS). Needs --tls-cert.
    #[arg(long, env = "FEDERATION_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<PathBuf>,
    /// Callers (TOML): principals known by bearer token (sha256 or plain) and/or mTLS
    /// client identity, each optionally limited to some backends and agents
    /// (docs/security.md). Unset: no caller authentication.
    #[arg(long, env = "FEDERATION_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// TLS handshake timeout, ms; a connection that sends nothing at all is closed
    /// after this too.
    #[arg(
        long,
        env = "FEDERATION_HANDSHAKE_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    pub handshake_timeout_ms: u64,
    /// Concurrent HTTP/2 streams (calls) per connection.
    #[arg(
        long,
        env = "FEDERATION_MAX_CONCURRENT_STREAMS",
        default_value_t = 1024
    )]
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval, ms (0: no pings).
    #[arg(
        long,
        env = "FEDERATION_KEEPALIVE_INTERVAL_MS",
        default_value_t = 60_000
    )]
    pub keepalive_interval_ms: u64,
    /// A connection whose keep-alive ping is not answered within this is closed, ms.
    #[arg(
        long,
        env = "FEDERATION_KEEPALIVE_TIMEOUT_MS",
        default_value_t = 20_000
    )]
    pub keepalive_timeout_ms: u64,
    /// Connections are closed after this age, ms, gracefully (GOAWAY; calls in flight
    /// finish, clients reconnect). 0: never.
    #[arg(
        long,
        env = "FEDERATION_MAX_CONNECTION_AGE_MS",
        default_value_t = 3_600_000
    )]
    pub max_connection_age_ms: u64,
    /// Largest HTTP/2 header list (all metadata of one call), bytes.
    #[arg(long, env = "FEDERATION_MAX_HEADER_LIST_BYTES", default_value_t = 64 * 1024)]
    pub max_header_list_bytes: u32,
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
    /// Must be owned by the host's user and writable only by it (the host refuses to
    /// start otherwise); artifacts carry a MAC checked before loading. Unset: no cache.
    #[arg(long, env = "FEDERATION_COMPILE_CACHE_DIR")]
    pub compile_cache_dir: Option<PathBuf>,
    /// PEM file of extra CA certificates trusted for outbound https (the wrapper,
    /// adapters' allowed origins), beside the system's roots.
    #[arg(long, env = "FEDERATION_OUTBOUND_CA_FILE")]
    pub outbound_ca_file: Option<PathBuf>,
    /// Proxy for all outbound HTTP (`http://host:port`). Unset: no proxy, whatever
    /// HTTP_PROXY/HTTPS_PROXY/ALL_PROXY say.
    #[arg(long, env = "FEDERATION_OUTBOUND_PROXY")]
    pub outbound_proxy: Option<Url>,
    /// File (mode 0600) holding the secret the host sends to the wrapper as
    /// `x-federation-host-credential` (the wrapper's AGENT_WRAPPER_HOST_CREDENTIAL_FILE).
    /// Only the wrapper's origin gets it; adapters can neither read nor set it.
    #[arg(long, env = "FEDERATION_WRAPPER_CREDENTIAL_FILE")]
    pub wrapper_credential_file: Option<PathBuf>,
    /// Directory a policy manifest's `value_file` secrets must lie in. Unset:
    /// `value_file` is refused.
    #[arg(long, env = "FEDERATION_SECRETS_DIR")]
    pub secrets_dir: Option<PathBuf>,
    /// Prefix of the environment variables a manifest's `value_env` may read.
    #[arg(long, env = "FEDERATION_SECRET_ENV_PREFIX", default_value = federation_runtime::DEFAULT_SECRET_ENV_PREFIX, value_parser = parse_secret_prefix)]
    pub secret_env_prefix: String,
    /// Bytes of results of finished background tasks (StartAgentTask) kept for
    /// GetAgentTask, MiB; over it the oldest results are evicted (GetAgentTask then
    /// answers from the wrapper's run record).
    #[arg(long, env = "FEDERATION_BACKGROUND_RESULTS_MIB", default_value_t = 64)]
    pub background_results_mib: usize,
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
    /// An adapter that follows an OCI registry, NAME=oci://REGISTRY/REPO:TAG (follows
    /// the tag) or NAME=oci://REGISTRY/REPO@sha256:HEX (pinned); repeatable. Each new
    /// digest is validated, self-tested and swapped in like a new file.
    #[arg(
        long = "adapter-source",
        env = "FEDERATION_ADAPTER_SOURCES",
        value_delimiter = ',',
        value_name = "NAME=oci://..."
    )]
    pub adapter_sources: Vec<SourceSpec>,
    /// How often registry sources are polled (a HEAD of the tag's manifest), ms.
    #[arg(
        long,
        env = "FEDERATION_SOURCE_POLL_INTERVAL_MS",
        default_value_t = 10_000
    )]
    pub source_poll_interval_ms: u64,
    #[command(flatten)]
    pub registry: RegistryArgs,
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

/// A `value_env` prefix (clap's parser): an empty one would open every variable.
pub fn parse_secret_prefix(raw: &str) -> Result<String, String> {
    if raw.is_empty() {
        Err("the secret prefix must not be empty".to_string())
    } else {
        Ok(raw.to_string())
    }
}

/// The admin token of a flag (clap's parser); an empty one is refused.
pub fn parse_admin_token(raw: &str) -> Result<AdminToken, String> {
    AdminToken::new(raw.to_string()).ok_or_else(|| "the admin token is empty".to_string())
}
