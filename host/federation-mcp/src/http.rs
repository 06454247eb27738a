//! The HTTP side: the SDK's streamable HTTP server (`rmcp`'s `StreamableHttpService`)
//! at `/mcp`, behind the host's authentication. Every request (POST, the GET stream,
//! DELETE) is authenticated as the gRPC API does it before the SDK sees it: no or a
//! wrong credential is HTTP 401 (`WWW-Authenticate: Bearer`); the caller is put in the
//! request's extensions, where the handler finds it for each call.

use std::sync::Arc;

use axum::{
    Json, Router,
    extract::{Request, State},
    http::{StatusCode, header},
    middleware::{self, Next},
    response::{IntoResponse, Response},
};
use federation_proto::doors;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::json;

use crate::service::{Call, Door};
use crate::{Authenticator, McpConfig};

/// The path of the MCP server.
pub const PATH: &str = "/mcp";

pub(crate) fn routes(door: Door, auth: Arc<dyn Authenticator>, config: McpConfig) -> Router {
    let server_config = StreamableHttpServerConfig::default()
        .with_allowed_hosts(config.allowed_hosts)
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_cancellation_token(config.stop);
    let mcp = StreamableHttpService::new(
        move || Ok(door.clone()),
        Arc::new(LocalSessionManager::default()),
        server_config,
    );
    Router::new()
        .route_service(PATH, mcp)
        .layer(middleware::from_fn_with_state(auth, authenticate))
}

/// Authenticates a request from its headers as the gRPC API would; 401 when it fails.
async fn authenticate(
    State(auth): State<Arc<dyn Authenticator>>,
    mut request: Request,
    next: Next,
) -> Response {
    let extensions = request.extensions().clone();
    match doors::authenticate(auth.as_ref(), request.headers(), extensions) {
        Ok(call) => {
            request.extensions_mut().insert::<Call>(call);
            next.run(request).await
        }
        Err(status) => {
            let body = json!({
                "jsonrpc": "2.0",
                "id": null,
                "error": {"code": -32040, "message": status.message()},
            });
            (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Bearer")],
                Json(body),
            )
                .into_response()
        }
    }
}
