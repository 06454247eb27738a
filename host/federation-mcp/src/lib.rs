//! The host's MCP door (streamable HTTP, served by `rmcp`, the official MCP Rust SDK):
//! every agent the host can run (`ListAgents`, with a loaded backend) is one MCP tool of
//! one server at `/mcp`. Like the A2A door it holds no task logic of its own: a
//! `tools/call` runs as the host's `StreamAgentTask`, called in-process with the
//! caller's authenticated request, so principals, session ownership, deadlines, run
//! records and traces are the gRPC API's (see `service`; the mapping is in `mapping`).
//!
//! The host wires it in as it does the A2A door: [`router`] with its service and an
//! [`Authenticator`] that authenticates a call exactly as its gRPC interceptor does,
//! then [`serve`] on the `--mcp-listen` listener.

mod error;
mod http;
mod mapping;
mod service;

use std::{future::Future, sync::Arc};

use federation_proto::federation_service_server::FederationService;

/// Authenticates a call as the host's gRPC API does (one contract for both doors).
pub use federation_proto::doors::Authenticator;

/// The door's settings.
#[derive(Clone, Debug)]
pub struct McpConfig {
    /// The `Host` header values (host or host:port) accepted; empty: any. A listener
    /// without authentication keeps the SDK's loopback-only list, so that a web page
    /// cannot reach it by DNS rebinding.
    pub allowed_hosts: Vec<String>,
    /// Largest request body, bytes.
    pub max_body_bytes: usize,
    /// Cancelled when the host stops: ends the MCP sessions and their open streams
    /// (else a client's open stream would hold the graceful shutdown).
    pub stop: tokio_util::sync::CancellationToken,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            // A task's goal (64 KiB), input and resume (256 KiB each) with room for
            // JSON escaping, as the A2A door.
            max_body_bytes: 2 << 20,
            stop: tokio_util::sync::CancellationToken::new(),
        }
    }
}

/// The MCP server (`/mcp`) over `service`, calls authenticated by `auth`.
pub fn router(
    service: Arc<dyn FederationService>,
    auth: Arc<dyn Authenticator>,
    config: McpConfig,
) -> axum::Router {
    http::routes(service::Door { service }, auth, config)
}

/// Serves `router` on `listener` (plain HTTP/1.1 and h2c) until `shutdown` resolves,
/// then cancels `stop` (the router's [`McpConfig::stop`]) so open streams end.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    stop: tokio_util::sync::CancellationToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown.await;
            stop.cancel();
        })
        .await
}
