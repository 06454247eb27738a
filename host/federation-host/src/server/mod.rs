//! Start-up and serving: builds the host ([`host`]: engine, adapters loaded,
//! services), keeps watching its adapters directory and registry sources, and serves
//! FederationService (callers authenticated, see `auth`), AdminService (when a token
//! is set), gRPC health (per backend too, kept from the lifecycle's events, see
//! [`health`]) and reflection until SIGTERM/Ctrl-C; over TLS (optionally mTLS) when
//! configured, within the HTTP/2 limits of the serve flags. Without caller
//! authentication it serves on loopback only, unless told otherwise ([`listen`]).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use opentelemetry_http::HeaderExtractor;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Server, ServerTlsConfig};
use tonic_health::pb::health_server::{Health, HealthServer};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use federation_proto::admin_service_server::AdminServiceServer;
use federation_proto::federation_service_server::FederationServiceServer;
use federation_runtime::AdapterRuntime;

use crate::admin::require_token;
use crate::auth::{Authenticate, Authentication};
use crate::config::ServeArgs;
use crate::deadline::stamp_arrival;
use crate::doors::{Listeners, Stops};
use crate::fleet::FleetMetrics;
use crate::lifecycle::watcher;
use crate::service::{Executor, Federation};
use host::Host;
pub(crate) use listen::check_listen_address;
use listen::{auth_name, authentication, incoming, tls_config};

mod health;
mod host;
mod listen;

/// Builds everything and serves on `listener` until `shutdown` resolves.
pub async fn serve(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    serve_with(args, listener, shutdown, Arc::clone, true).await
}

/// [`serve`], with tasks run by the executor `executor` makes from the host's runtime
/// (which still loads, checks and names the adapters), and TCP_NODELAY on accepted
/// connections only when `tcp_nodelay` (the benchmark's native baseline varies both).
pub async fn serve_with<E: Executor>(
    args: ServeArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    executor: impl FnOnce(&Arc<AdapterRuntime>) -> Arc<E>,
    tcp_nodelay: bool,
) -> anyhow::Result<()> {
    let addr = listener.local_addr()?;
    let auth = authentication(&args)?;
    check_listen_address(addr, &auth, args.allow_unauthenticated)?;
    let tls = tls_config(&args)?;
    // The HTTP doors (crate::doors), bound up front so a bad address fails the start.
    let doors = Listeners::bind(&args, &auth).await?;
    let (health, health_service) = tonic_health::server::health_reporter();
    let host = Host::build(&args, &health, executor).await?;
    let _fleet_metrics = FleetMetrics::register(host.registry.clone(), host.sources.clone());
    if host.registry.names().is_empty() {
        tracing::warn!(dir = %args.adapters_dir.display(), "no adapters loaded; every task will get NOT_FOUND until one is added");
    }
    health
        .set_serving::<FederationServiceServer<Federation<E>>>()
        .await;
    let listening = Listening {
        addr,
        args,
        auth,
        tls,
        listener,
        tcp_nodelay,
        doors,
    };
    listening.serve(host, health_service, shutdown).await
}

/// The listeners of a host being started and how it serves on them.
struct Listening {
    /// The gRPC listener's address.
    addr: SocketAddr,
    args: ServeArgs,
    auth: Authentication,
    tls: Option<ServerTlsConfig>,
    listener: TcpListener,
    tcp_nodelay: bool,
    /// The HTTP doors' listeners.
    doors: Listeners,
}

impl Listening {
    /// The tonic wiring: serves `host` (with gRPC `health` and reflection) and its
    /// background work until `shutdown` resolves.
    async fn serve<E: Executor>(
        self,
        host: Host<E>,
        health: HealthServer<impl Health>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let reflection = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(federation_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .build_v1()
            .context("building gRPC reflection")?;
        let mut background = Background::start(&self.args, &host);
        let admin = host.admin.map(|(admin, token)| {
            let max_message = admin.max_message_bytes();
            let server = AdminServiceServer::new(admin).max_decoding_message_size(max_message);
            InterceptedService::new(server, require_token(token))
        });
        if admin.is_none() {
            tracing::info!("no admin token configured: AdminService is not served");
        }

        let addr = self.addr;
        tracing::info!(%addr, adapters = ?host.registry.names(), wrapper = %self.args.wrapper_url, tls = self.tls.is_some(), authentication = auth_name(&self.auth), "serving");
        // One machine-readable line, so scripts and tests learn the port.
        println!("agent-federation listening on {addr}");
        // The same service in-process; the doors' lines follow the first.
        background.doors = self.doors.spawn(&host.federation, &self.auth, &self.args)?;

        let federation = InterceptedService::new(
            FederationServiceServer::new(host.federation),
            Authenticate(self.auth),
        );
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let server = http2_server(&self.args, self.tls)?
            .trace_fn(server_span)
            .layer(tower::util::MapRequestLayer::new(stamp_arrival))
            .layer(tower::util::MapResponseLayer::new(
                crate::error::codec_error::<tonic::body::Body>,
            ))
            .add_service(health)
            .add_service(reflection)
            .add_service(federation)
            .add_optional_service(admin)
            .serve_with_incoming_shutdown(
                incoming(
                    self.listener,
                    self.tcp_nodelay,
                    Duration::from_millis(self.args.handshake_timeout_ms),
                ),
                async {
                    let _ = stop_rx.await;
                },
            );
        let grace = Duration::from_millis(self.args.shutdown_grace_ms);
        serve_until(server, shutdown, stop_tx, background, grace).await
    }
}

/// The gRPC server with TLS (when configured) and the HTTP/2 limits of the flags.
fn http2_server(args: &ServeArgs, tls: Option<ServerTlsConfig>) -> anyhow::Result<Server> {
    let mut builder = Server::builder();
    if let Some(tls) = tls {
        builder = builder.tls_config(tls).context("configuring TLS")?;
    }
    let keepalive =
        (args.keepalive_interval_ms > 0).then(|| Duration::from_millis(args.keepalive_interval_ms));
    builder = builder
        .max_concurrent_streams(args.max_concurrent_streams)
        .http2_keepalive_interval(keepalive)
        .http2_keepalive_timeout(Some(Duration::from_millis(args.keepalive_timeout_ms)))
        .http2_max_header_list_size(args.max_header_list_bytes);
    if args.max_connection_age_ms > 0 {
        builder = builder.max_connection_age(Duration::from_millis(args.max_connection_age_ms));
    }
    Ok(builder)
}

/// Runs `server` until it fails or `shutdown` resolves; then stops the background
/// work and the server (`stop_server`), letting in-flight calls finish within `grace`.
async fn serve_until(
    server: impl Future<Output = Result<(), tonic::transport::Error>>,
    shutdown: impl Future<Output = ()>,
    stop_server: oneshot::Sender<()>,
    background: Background,
    grace: Duration,
) -> anyhow::Result<()> {
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("gRPC server failed"),
        () = shutdown => {}
    }
    tracing::info!(?grace, "shutting down: letting in-flight tasks finish");
    background.stop();
    let _ = stop_server.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result.context("gRPC server failed during shutdown"),
        Err(_) => {
            tracing::warn!("shutdown grace period over; dropping unfinished tasks");
            Ok(())
        }
    }
}

/// The host's background work: the adapters directory watcher and the registry
/// sources' polls, each until stopped (or until this is dropped).
struct Background {
    watch_stop: oneshot::Sender<()>,
    sources_stop: oneshot::Sender<()>,
    /// The HTTP doors that `--a2a-listen` and `--mcp-listen` serve.
    doors: Stops,
}

impl Background {
    fn start<E: Executor>(args: &ServeArgs, host: &Host<E>) -> Background {
        let (watch_stop, watch_stopped) = oneshot::channel::<()>();
        if args.watch_adapters {
            let rescan = (args.rescan_interval_ms > 0)
                .then(|| Duration::from_millis(args.rescan_interval_ms));
            tokio::spawn(watcher::watch(host.lifecycle.clone(), rescan, async {
                let _ = watch_stopped.await;
            }));
        }
        let (sources_stop, sources_stopped) = oneshot::channel::<()>();
        if let Some(sources) = &host.sources {
            let interval = Duration::from_millis(args.source_poll_interval_ms.max(1));
            tokio::spawn(sources.clone().run(interval, async {
                let _ = sources_stopped.await;
            }));
        }
        Background {
            watch_stop,
            sources_stop,
            doors: Stops::default(),
        }
    }

    fn stop(self) {
        let _ = self.watch_stop.send(());
        let _ = self.sources_stop.send(());
        self.doors.stop();
    }
}

/// The server span of one RPC, continuing the caller's `traceparent` when it sent one.
pub fn server_span(request: &http::Request<()>) -> tracing::Span {
    let path = request.uri().path().trim_start_matches('/');
    let (service, method) = path.split_once('/').unwrap_or((path, ""));
    let span = tracing::info_span!(
        "grpc.server",
        otel.name = %path,
        otel.kind = "server",
        otel.status_code = Empty,
        rpc.system = "grpc",
        rpc.service = %service,
        rpc.method = %method,
        rpc.grpc.status_code = Empty,
    );
    let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(request.headers()))
    });
    let _ = span.set_parent(parent);
    span
}

/// Resolves on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
