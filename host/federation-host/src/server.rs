//! Start-up and serving: builds the engine, loads adapters (and keeps watching their
//! directory), and serves FederationService (callers authenticated, see `auth`),
//! AdminService (when a token is set), gRPC health (per backend too, kept from the
//! lifecycle's events) and reflection until SIGTERM/Ctrl-C; over TLS (optionally
//! mTLS) when configured, within the HTTP/2 limits of the serve flags. Without caller
//! authentication it serves on loopback only, unless told otherwise.

use std::{future::Future, sync::Arc, time::Duration};

use anyhow::Context;
use futures::future::BoxFuture;
use opentelemetry_http::HeaderExtractor;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic_health::{ServingStatus, server::HealthReporter};
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use federation_proto::admin_service_server::AdminServiceServer;
use federation_proto::federation_service_server::FederationServiceServer;
use federation_runtime::engine::{EngineLimits, build_engine};
use federation_runtime::outbound::{
    HostCredential, NetSettings, Origin, OutboundHttp, OutboundLimits,
};
use federation_runtime::{
    AdapterRegistry, AdapterRuntime, CompileCache, PolicyDefaults, SecretSources,
};

use crate::admin::{Admin, require_token};
use crate::auth::{Authenticate, Authentication, Principals};
use crate::config::ServeArgs;
use crate::deadline::stamp_arrival;
use crate::fleet::FleetMetrics;
use crate::lifecycle::oci::RegistrySources;
use crate::lifecycle::{AdapterLifecycle, LifecycleEvent, LifecycleEvents, watcher};
use crate::oci::Registry;
use crate::service::{Executor, Federation, ServiceConfig};

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
    let engine = build_engine(&EngineLimits {
        max_instances: args.max_concurrent_tasks + 8,
        max_memory_bytes: args.max_memory_mib << 20,
    })?;
    let wrapper_origin = Origin::of(&args.wrapper_url)
        .with_context(|| format!("wrapper URL {} is not http(s)", args.wrapper_url))?;
    let net = NetSettings {
        ca_file: args.outbound_ca_file.clone(),
        proxy: args.outbound_proxy.clone(),
    };
    let credential = args
        .wrapper_credential_file
        .as_deref()
        .map(|file| HostCredential::from_file(file, wrapper_origin.clone()))
        .transpose()?;
    if credential.is_none() {
        tracing::info!(
            "no --wrapper-credential-file: requests to the wrapper carry no host credential"
        );
    }
    let outbound = OutboundHttp::configured(
        OutboundLimits {
            max_response_bytes: args.max_response_bytes,
            default_timeout: Duration::from_millis(args.outbound_timeout_ms),
            connect_timeout: Duration::from_millis(args.connect_timeout_ms),
        },
        &net,
        credential.clone(),
    )
    .context("building the outbound HTTP client")?
    .for_wrapper(wrapper_origin.clone());
    let admin_token = args.admin_token()?;
    let mut secrets = SecretSources {
        dir: args.secrets_dir.clone(),
        env_prefix: args.secret_env_prefix.clone(),
        forbidden: Vec::new(),
    };
    if let Some(token) = &admin_token {
        secrets.forbid(token.secret());
        secrets.forbid(token.bearer());
    }
    if let Some(credential) = &credential {
        secrets.forbid(credential.secret_bytes());
    }
    let max_concurrent_tasks = args.max_concurrent_tasks as usize;
    let policy_defaults = PolicyDefaults {
        wrapper: wrapper_origin,
        outbound_timeout: Duration::from_millis(args.outbound_timeout_ms),
        max_response_bytes: args.max_response_bytes,
        max_requests_per_task: args.max_requests_per_task,
        max_concurrent_requests: args.max_concurrent_requests as usize,
        max_memory_bytes: args.max_memory_mib << 20,
        cpu_budget: Duration::from_millis(args.cpu_budget_ms),
        max_concurrent_tasks: match args.max_tasks_per_adapter {
            0 => max_concurrent_tasks,
            n => n as usize,
        },
        secrets,
    };
    let cache = args
        .compile_cache_dir
        .as_deref()
        .map(|dir| {
            CompileCache::open(dir)
                .with_context(|| format!("opening the compile cache {}", dir.display()))
        })
        .transpose()?;
    let runtime = Arc::new(AdapterRuntime::new(
        engine,
        Arc::new(outbound),
        cache,
        args.adapter_self_test,
    )?);
    let registry = Arc::new(AdapterRegistry::default());
    let (health, health_service) = tonic_health::server::health_reporter();
    let lifecycle = Arc::new(AdapterLifecycle::new(
        runtime.clone(),
        registry.clone(),
        args.adapters_dir.clone(),
        policy_defaults,
        Arc::new(BackendHealth(health.clone())),
        (args.max_upload_mib as u64) << 20,
    ));
    lifecycle
        .reconcile(false)
        .await
        .context("loading adapters")?;
    let sources = if args.adapter_sources.is_empty() {
        None
    } else {
        // Registries trust what outbound HTTPS trusts unless given their own CA file.
        let mut registry_args = args.registry.clone();
        if registry_args.registry_ca_file.is_none() {
            registry_args.registry_ca_file = args.outbound_ca_file.clone();
        }
        let registry = Registry::new(
            &registry_args,
            Duration::from_millis(args.connect_timeout_ms),
        )
        .context("setting up the registry client")?;
        let sources = Arc::new(RegistrySources::new(
            lifecycle.clone(),
            registry,
            args.adapter_sources.clone(),
            args.max_upload_mib << 20,
        ));
        // One poll before serving: a reachable registry's adapters serve from the
        // first request; an unreachable one is retried on the interval.
        sources.poll_all().await;
        Some(sources)
    };
    let _fleet_metrics = FleetMetrics::register(registry.clone(), sources.clone());
    if registry.names().is_empty() {
        tracing::warn!(dir = %args.adapters_dir.display(), "no adapters loaded; every task will get NOT_FOUND until one is added");
    }
    health
        .set_serving::<FederationServiceServer<Federation<E>>>()
        .await;
    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(federation_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .context("building gRPC reflection")?;

    let federation = Federation::new(
        executor(&runtime),
        registry.clone(),
        ServiceConfig {
            wrapper_url: args.wrapper_url.as_str().trim_end_matches('/').to_string(),
            default_task_timeout: args.task_timeout(),
            max_concurrent_tasks: args.max_concurrent_tasks as usize,
            max_output_bytes: args.max_output_bytes,
            background_results_bytes: args.background_results_mib << 20,
            net,
            wrapper_credential: credential,
        },
    )?;

    let (watch_stop, watch_stopped) = tokio::sync::oneshot::channel::<()>();
    if args.watch_adapters {
        let rescan =
            (args.rescan_interval_ms > 0).then(|| Duration::from_millis(args.rescan_interval_ms));
        tokio::spawn(watcher::watch(lifecycle.clone(), rescan, async {
            let _ = watch_stopped.await;
        }));
    }
    let (sources_stop, sources_stopped) = tokio::sync::oneshot::channel::<()>();
    if let Some(sources) = &sources {
        let interval = Duration::from_millis(args.source_poll_interval_ms.max(1));
        tokio::spawn(sources.clone().run(interval, async {
            let _ = sources_stopped.await;
        }));
    }
    let admin = admin_token.map(|token| {
        let admin = Admin::new(
            lifecycle.clone(),
            sources.clone(),
            args.max_upload_mib << 20,
        );
        let max_message = admin.max_message_bytes();
        let server = AdminServiceServer::new(admin).max_decoding_message_size(max_message);
        tonic::service::interceptor::InterceptedService::new(server, require_token(token))
    });
    if admin.is_none() {
        tracing::info!("no admin token configured: AdminService is not served");
    }

    tracing::info!(%addr, adapters = ?registry.names(), wrapper = %args.wrapper_url, tls = tls.is_some(), authentication = auth_name(&auth), "serving");
    // One machine-readable line, so scripts and tests learn the port.
    println!("agent-federation listening on {addr}");

    let grace = Duration::from_millis(args.shutdown_grace_ms);
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
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
    let federation = tonic::service::interceptor::InterceptedService::new(
        FederationServiceServer::new(federation),
        Authenticate(auth),
    );
    let server = builder
        .trace_fn(server_span)
        .layer(tower::util::MapRequestLayer::new(stamp_arrival))
        .layer(tower::util::MapResponseLayer::new(
            crate::error::codec_error::<tonic::body::Body>,
        ))
        .add_service(health_service)
        .add_service(reflection)
        .add_service(federation)
        .add_optional_service(admin)
        .serve_with_incoming_shutdown(
            incoming(
                listener,
                tcp_nodelay,
                Duration::from_millis(args.handshake_timeout_ms),
            ),
            async {
                let _ = stop_rx.await;
            },
        );
    let mut server = std::pin::pin!(server);
    tokio::select! {
        result = &mut server => return result.context("gRPC server failed"),
        () = shutdown => {}
    }
    tracing::info!(?grace, "shutting down: letting in-flight tasks finish");
    let _ = watch_stop.send(());
    let _ = sources_stop.send(());
    let _ = stop_tx.send(());
    match tokio::time::timeout(grace, server).await {
        Ok(result) => result.context("gRPC server failed during shutdown"),
        Err(_) => {
            tracing::warn!("shutdown grace period over; dropping unfinished tasks");
            Ok(())
        }
    }
}

/// How callers are authenticated: the auth file's principals, or (mTLS without an auth
/// file) the client certificate's identity, or not at all.
fn authentication(args: &ServeArgs) -> anyhow::Result<Authentication> {
    Ok(match (&args.auth_file, &args.tls_client_ca) {
        (Some(file), _) => Authentication::Principals(Arc::new(Principals::load(file)?)),
        (None, Some(_)) => Authentication::CertificateOnly,
        (None, None) => Authentication::None,
    })
}

fn auth_name(auth: &Authentication) -> &'static str {
    match auth {
        Authentication::None => "none",
        Authentication::CertificateOnly => "client certificate",
        Authentication::Principals(_) => "auth file",
    }
}

/// Without caller authentication, only loopback callers can reach the host, unless the
/// operator said otherwise.
fn check_listen_address(
    addr: std::net::SocketAddr,
    auth: &Authentication,
    allow_unauthenticated: bool,
) -> anyhow::Result<()> {
    if auth.is_configured() {
        return Ok(());
    }
    if addr.ip().is_loopback() {
        tracing::info!(%addr, "no caller authentication configured: serving on loopback only");
        return Ok(());
    }
    if allow_unauthenticated {
        tracing::warn!(%addr, "serving without caller authentication on a non-loopback address (--allow-unauthenticated): anyone who reaches it may run tasks");
        return Ok(());
    }
    anyhow::bail!(
        "refusing to listen on {addr} without caller authentication: set --auth-file (or \
         --tls-client-ca), listen on a loopback address (e.g. 127.0.0.1:50075), or pass \
         --allow-unauthenticated"
    )
}

/// The server's TLS settings from the PEM files, when TLS is configured.
fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<ServerTlsConfig>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    // One crypto provider for every rustls user in the process (ring); a second
    // install (already set) is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let read = |path: &std::path::Path, what: &str| {
        std::fs::read(path).with_context(|| format!("reading the {what} {}", path.display()))
    };
    let mut tls = ServerTlsConfig::new()
        .identity(Identity::from_pem(
            read(cert, "TLS certificate")?,
            read(key, "TLS key")?,
        ))
        .timeout(Duration::from_millis(args.handshake_timeout_ms));
    if let Some(ca) = &args.tls_client_ca {
        tls = tls
            .client_ca_root(Certificate::from_pem(read(ca, "client CA")?))
            .client_auth_optional(false);
    }
    Ok(Some(tls))
}

/// The accepted connections, with TCP_NODELAY as asked (without it every small reply
/// waits ~40 ms on the client's delayed ACK: p50 44 ms instead of ~1 ms). A
/// connection that sends nothing within `first_byte_timeout` is closed before the
/// HTTP/2 (or TLS) layer holds it, so silent sockets cannot pile up.
fn incoming(
    listener: TcpListener,
    tcp_nodelay: bool,
    first_byte_timeout: Duration,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TcpStream>> {
    let (tx, rx) = tokio::sync::mpsc::channel(256);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => return,
            };
            let stream = match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(%error, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(tcp_nodelay);
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut byte = [0u8; 1];
                match tokio::time::timeout(first_byte_timeout, stream.peek(&mut byte)).await {
                    Ok(Ok(n)) if n > 0 => {
                        let _ = tx.send(Ok(stream)).await;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        tracing::debug!(peer = ?stream.peer_addr().ok(), "closed a connection that sent nothing");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
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

/// Health-check service name of one backend (`grpc.health.v1`), e.g. `backend/crewai`.
pub fn backend_health_name(backend: &str) -> String {
    format!("backend/{backend}")
}

/// Health-check service name of one registry source, e.g. `source/crewai`: SERVING
/// while its registry answers polls (the backend serves either way).
pub fn source_health_name(adapter: &str) -> String {
    format!("source/{adapter}")
}

/// Keeps each backend's gRPC health from the lifecycle's events.
struct BackendHealth(HealthReporter);

impl LifecycleEvents for BackendHealth {
    fn changed(&self, event: LifecycleEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match event {
                LifecycleEvent::Serving(name) => {
                    self.0
                        .set_service_status(backend_health_name(&name), ServingStatus::Serving)
                        .await;
                }
                LifecycleEvent::Unloaded(name) => {
                    self.0
                        .clone()
                        .clear_service_status(&backend_health_name(&name))
                        .await;
                }
                LifecycleEvent::SourceReachable { name, reachable } => {
                    let status = if reachable {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    self.0
                        .set_service_status(source_health_name(&name), status)
                        .await;
                }
            }
        })
    }
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
