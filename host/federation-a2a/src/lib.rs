//! The host's A2A door (protocol 1.0, JSON-RPC 2.0 over HTTP with Server-Sent Events):
//! every agent the host can run (`ListAgents`) is one A2A agent with its own card and
//! URL, `/agents/{name}`. The door holds no task logic of its own: each method calls the
//! host's `FederationService` in-process with the caller's authenticated request, so
//! principals, session ownership, idempotency, deadlines, run records and traces are
//! the gRPC API's (see `service`; the mapping table is in `mapping`).
//!
//! The host wires it in: [`router`] with its service and an [`Authenticator`] that
//! authenticates a call exactly as its gRPC interceptor does, then [`serve`] on the
//! `--a2a-listen` listener.

mod card;
mod error;
mod http;
mod mapping;
mod service;
mod tasks;
pub mod types;

use std::{future::Future, sync::Arc};

use federation_proto::federation_service_server::FederationService;

pub use card::Security;
pub use error::A2aError;

/// Authenticates a call as the host's gRPC API does (one contract for both doors).
pub use federation_proto::doors::Authenticator;

/// The door's settings.
#[derive(Clone, Debug)]
pub struct A2aConfig {
    /// What callers must present (the cards' `securitySchemes`).
    pub security: Security,
    /// Scheme and authority of the cards' URLs; `None`: from each request's `Host`.
    pub public_url: Option<String>,
    /// Whether the listener serves TLS (the URLs' scheme when taken from `Host`).
    pub tls: bool,
    /// Largest JSON-RPC request body, bytes.
    pub max_body_bytes: usize,
}

impl Default for A2aConfig {
    fn default() -> Self {
        A2aConfig {
            security: Security::default(),
            public_url: None,
            tls: false,
            // A task's goal (64 KiB), context (256 KiB), input and resume (256 KiB
            // each) with room for JSON escaping.
            max_body_bytes: 2 << 20,
        }
    }
}

/// The A2A routes over `service`, calls authenticated by `auth`.
pub fn router(
    service: Arc<dyn FederationService>,
    auth: Arc<dyn Authenticator>,
    config: A2aConfig,
) -> axum::Router {
    http::routes(Arc::new(http::Shared {
        door: service::Door {
            service,
            tasks: Arc::default(),
        },
        auth,
        config,
    }))
}

/// Serves `router` on `listener` (plain HTTP/1.1 and h2c) until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
