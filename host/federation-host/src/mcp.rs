//! The MCP door (`federation_mcp`) on its own listener (`--mcp-listen`): the host's
//! `FederationService` called in-process, each call authenticated by the same code as
//! the gRPC interceptor. Kept apart, as the A2A door (`crate::a2a`), so the serve path
//! only binds, spawns and stops it.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::Interceptor;

use federation_mcp::{Authenticator, McpConfig};

use crate::auth::{Authenticate, Authentication, Caller};
use crate::config::ServeArgs;
use crate::service::{Executor, Federation};

/// Authenticates an MCP call with the gRPC API's interceptor.
struct SameAsGrpc(Authenticate);

impl Authenticator for SameAsGrpc {
    fn authenticate(
        &self,
        request: tonic::Request<()>,
    ) -> Result<(tonic::Request<()>, String), tonic::Status> {
        let request = self.0.clone().call(request)?;
        let principal = Caller::of(&request).principal.to_string();
        Ok((request, principal))
    }
}

/// Binds `--mcp-listen` (under the gRPC listener's rules: without caller authentication
/// only a loopback address, unless allowed). TLS is not served on it yet: a host with
/// TLS refuses it rather than send tokens in the clear.
pub async fn bind(args: &ServeArgs, auth: &Authentication) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = args.mcp_listen else {
        return Ok(None);
    };
    if args.tls_cert.is_some() {
        anyhow::bail!(
            "--mcp-listen does not serve TLS yet: with --tls-cert, put the MCP listener behind a \
             TLS-terminating proxy on loopback instead"
        );
    }
    crate::server::check_listen_address(addr, auth, args.allow_unauthenticated)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the MCP listener {addr}"))?;
    Ok(Some(listener))
}

/// Serves the MCP door over `federation` on `listener` until `stop` fires.
pub fn spawn<E: Executor>(
    listener: TcpListener,
    federation: Federation<E>,
    auth: Authentication,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let mut config = McpConfig::default();
    // Without authentication the listener is loopback only and keeps the SDK's
    // loopback `Host` list (no DNS rebinding from a web page); with it, the callers'
    // credentials are the check and any `Host` (a proxy's name) is taken.
    if !matches!(auth, Authentication::None) {
        config.allowed_hosts.clear();
    }
    let cancel = config.stop.clone();
    let router = federation_mcp::router(
        Arc::new(federation),
        Arc::new(SameAsGrpc(Authenticate(auth))),
        config,
    );
    tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(error) = federation_mcp::serve(listener, router, cancel, stopped).await {
            tracing::error!(%error, "the MCP listener failed");
        }
    });
    Ok(addr)
}
