//! The A2A door (`federation_a2a`) on its own listener (`--a2a-listen`): the host's
//! `FederationService` called in-process, each call authenticated by the same code as
//! the gRPC interceptor. Kept apart so the serve path only binds, spawns and stops it.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::service::Interceptor;

use federation_a2a::{A2aConfig, Authenticator, Security};

use crate::auth::{Authenticate, Authentication, Caller};
use crate::config::ServeArgs;
use crate::service::{Executor, Federation};

/// Authenticates an A2A call with the gRPC API's interceptor.
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

/// Binds `--a2a-listen` (under the gRPC listener's rules: without caller authentication
/// only a loopback address, unless allowed). TLS is not served on it yet: a host with
/// TLS refuses it rather than send tokens in the clear.
pub async fn bind(args: &ServeArgs, auth: &Authentication) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = args.a2a_listen else {
        return Ok(None);
    };
    if args.tls_cert.is_some() {
        anyhow::bail!(
            "--a2a-listen does not serve TLS yet: with --tls-cert, put the A2A listener behind a \
             TLS-terminating proxy on loopback instead"
        );
    }
    crate::server::check_listen_address(addr, auth, args.allow_unauthenticated)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the A2A listener {addr}"))?;
    Ok(Some(listener))
}

/// Serves the A2A door over `federation` on `listener` until `stop` fires.
pub fn spawn<E: Executor>(
    listener: TcpListener,
    federation: Federation<E>,
    auth: Authentication,
    args: &ServeArgs,
    stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<SocketAddr> {
    let addr = listener.local_addr()?;
    let security = match &auth {
        Authentication::None => Security::default(),
        Authentication::CertificateOnly => Security {
            bearer: false,
            mtls: true,
        },
        Authentication::Principals(principals) => Security {
            bearer: principals.has_tokens(),
            mtls: args.tls_client_ca.is_some(),
        },
    };
    let config = A2aConfig {
        security,
        public_url: args.a2a_public_url.clone(),
        ..A2aConfig::default()
    };
    let router = federation_a2a::router(
        Arc::new(federation),
        Arc::new(SameAsGrpc(Authenticate(auth))),
        config,
    );
    tokio::spawn(async move {
        let stopped = async {
            let _ = stop.await;
        };
        if let Err(error) = federation_a2a::serve(listener, router, stopped).await {
            tracing::error!(%error, "the A2A listener failed");
        }
    });
    Ok(addr)
}
