//! Who may connect and how: caller authentication from the serve flags, the
//! loopback-only rule without it, TLS (optionally mTLS) settings, and the accepted
//! connections (TCP_NODELAY, silent sockets closed before HTTP/2 holds them).

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::{Certificate, Identity, ServerTlsConfig};

use crate::auth::{Authentication, Principals};
use crate::config::ServeArgs;

/// How callers are authenticated: the auth file's principals, or (mTLS without an auth
/// file) the client certificate's identity, or not at all.
pub(super) fn authentication(args: &ServeArgs) -> anyhow::Result<Authentication> {
    Ok(match (&args.auth_file, &args.tls_client_ca) {
        (Some(file), _) => Authentication::Principals(Arc::new(Principals::load(file)?)),
        (None, Some(_)) => Authentication::CertificateOnly,
        (None, None) => Authentication::None,
    })
}

pub(super) fn auth_name(auth: &Authentication) -> &'static str {
    match auth {
        Authentication::None => "none",
        Authentication::CertificateOnly => "client certificate",
        Authentication::Principals(_) => "auth file",
    }
}

/// Without caller authentication, only loopback callers can reach the host, unless the
/// operator said otherwise.
pub(crate) fn check_listen_address(
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
pub(super) fn tls_config(args: &ServeArgs) -> anyhow::Result<Option<ServerTlsConfig>> {
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
pub(super) fn incoming(
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
