//! The HTTP doors, each on its own listener: A2A (`federation_a2a`, `--a2a-listen`) and
//! MCP (`federation_mcp`, `--mcp-listen`). Both are the host's `FederationService`
//! called in-process, each call authenticated by the same code as the gRPC interceptor.
//! Kept apart so the serve path only binds, spawns and stops them; what differs between
//! the doors is their settings, taken from the serve flags here.

use std::{future::Future, net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::Interceptor;

use federation_a2a::{A2aConfig, Security};
use federation_mcp::McpConfig;
use federation_proto::doors::Authenticator;

use crate::auth::{Authenticate, Authentication, Caller};
use crate::config::ServeArgs;
use crate::service::{Executor, Federation};

/// Authenticates a door's call with the gRPC API's interceptor.
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

fn same_as_grpc(auth: Authentication) -> Arc<dyn Authenticator> {
    Arc::new(SameAsGrpc(Authenticate(auth)))
}

/// The doors' listeners, bound up front so that a bad address fails the start.
pub struct Listeners {
    a2a: Option<TcpListener>,
    mcp: Option<TcpListener>,
}

/// What stops the doors that were started, when the host stops.
#[derive(Default)]
pub struct Stops(Vec<oneshot::Sender<()>>);

impl Stops {
    pub fn stop(self) {
        for stop in self.0 {
            let _ = stop.send(());
        }
    }
}

impl Listeners {
    /// Binds `--a2a-listen` and `--mcp-listen`, those given.
    pub async fn bind(args: &ServeArgs, auth: &Authentication) -> anyhow::Result<Listeners> {
        Ok(Listeners {
            a2a: bind(args.a2a_listen, "--a2a-listen", "A2A", args, auth).await?,
            mcp: bind(args.mcp_listen, "--mcp-listen", "MCP", args, auth).await?,
        })
    }

    /// Serves each bound door over `federation` (the same service, in-process), until
    /// the returned stops fire. Each door's line follows the gRPC listener's, A2A's first.
    pub fn spawn<E: Executor>(
        self,
        federation: &Federation<E>,
        auth: &Authentication,
        args: &ServeArgs,
    ) -> anyhow::Result<Stops> {
        let mut stops = Stops::default();
        if let Some(listener) = self.a2a {
            let config = a2a_config(auth, args);
            let router = federation_a2a::router(
                Arc::new(federation.clone()),
                same_as_grpc(auth.clone()),
                config,
            );
            let (a2a_addr, stop) = spawn("A2A", listener, |listener, stopped| {
                federation_a2a::serve(listener, router, stopped)
            })?;
            tracing::info!(%a2a_addr, "serving A2A");
            println!("agent-federation a2a listening on {a2a_addr}");
            stops.0.push(stop);
        }
        if let Some(listener) = self.mcp {
            let config = mcp_config(auth);
            let cancel = config.stop.clone();
            let router = federation_mcp::router(
                Arc::new(federation.clone()),
                same_as_grpc(auth.clone()),
                config,
            );
            let (mcp_addr, stop) = spawn("MCP", listener, |listener, stopped| {
                federation_mcp::serve(listener, router, cancel, stopped)
            })?;
            tracing::info!(%mcp_addr, "serving MCP");
            println!("agent-federation mcp listening on {mcp_addr}");
            stops.0.push(stop);
        }
        Ok(stops)
    }
}

/// Binds a door's listener `addr` (flag `flag`), under the gRPC listener's rules:
/// without caller authentication only a loopback address, unless allowed. TLS is not
/// served on it yet: a host with TLS refuses it rather than send tokens in the clear.
async fn bind(
    addr: Option<SocketAddr>,
    flag: &str,
    door: &str,
    args: &ServeArgs,
    auth: &Authentication,
) -> anyhow::Result<Option<TcpListener>> {
    let Some(addr) = addr else {
        return Ok(None);
    };
    if args.tls_cert.is_some() {
        anyhow::bail!(
            "{flag} does not serve TLS yet: with --tls-cert, put the {door} listener behind a \
             TLS-terminating proxy on loopback instead"
        );
    }
    crate::server::check_listen_address(addr, auth, args.allow_unauthenticated)?;
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the {door} listener {addr}"))?;
    Ok(Some(listener))
}

/// Serves a door on `listener` in the background (`serve`: the door's own serve, with
/// the future that resolves when the returned stop fires); its address.
fn spawn<F>(
    door: &'static str,
    listener: TcpListener,
    serve: impl FnOnce(TcpListener, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> F,
) -> anyhow::Result<(SocketAddr, oneshot::Sender<()>)>
where
    F: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let serving = serve(
        listener,
        Box::pin(async {
            let _ = stopped.await;
        }),
    );
    tokio::spawn(async move {
        if let Err(error) = serving.await {
            tracing::error!(%error, "the {door} listener failed");
        }
    });
    Ok((addr, stop))
}

/// The A2A door's settings: what its cards ask callers for, from how the host
/// authenticates them, and its public URL.
fn a2a_config(auth: &Authentication, args: &ServeArgs) -> A2aConfig {
    let security = match auth {
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
    A2aConfig {
        security,
        public_url: args.a2a_public_url.clone(),
        ..A2aConfig::default()
    }
}

/// The MCP door's settings.
fn mcp_config(auth: &Authentication) -> McpConfig {
    let mut config = McpConfig::default();
    // Without authentication the listener is loopback only and keeps the SDK's
    // loopback `Host` list (no DNS rebinding from a web page); with it, the callers'
    // credentials are the check and any `Host` (a proxy's name) is taken.
    if !matches!(auth, Authentication::None) {
        config.allowed_hosts.clear();
    }
    config
}
