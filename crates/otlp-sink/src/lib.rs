//! otlp-sink: a real OTLP trace receiver that keeps every span it gets.
//!
//! It accepts OTLP/gRPC (`TraceService/Export`) and OTLP/HTTP (`POST /v1/traces`,
//! protobuf, optionally gzip) and stores spans in memory, so tests and the demo can
//! assert or print one trace that crossed several services. The HTTP listener also
//! serves `GET /spans[?trace_id=]` (JSON) and `GET /tree?trace_id=` (text).

mod grpc;
mod http;
mod span;
mod store;
mod tree;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::oneshot};

pub use span::RecordedSpan;
use store::SpanStore;

/// A running receiver; stops when dropped or shut down.
pub struct OtlpSink {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    store: SpanStore,
    stop: Vec<oneshot::Sender<()>>,
}

impl OtlpSink {
    /// Binds both receivers on 127.0.0.1:0 and serves them on the current runtime.
    pub async fn start() -> anyhow::Result<OtlpSink> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(any, any).await
    }

    /// Binds the gRPC and HTTP receivers on the given addresses.
    pub async fn start_on(grpc: SocketAddr, http: SocketAddr) -> anyhow::Result<OtlpSink> {
        let store = SpanStore::default();
        let grpc_listener = TcpListener::bind(grpc)
            .await
            .with_context(|| format!("binding the OTLP/gRPC receiver on {grpc}"))?;
        let http_listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("binding the OTLP/HTTP receiver on {http}"))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let (grpc_stop, grpc_stopped) = oneshot::channel();
        let (http_stop, http_stopped) = oneshot::channel();
        tokio::spawn(grpc::serve(grpc_listener, store.clone(), grpc_stopped));
        tokio::spawn(http::serve(http_listener, store.clone(), http_stopped));
        Ok(OtlpSink {
            grpc_addr,
            http_addr,
            store,
            stop: vec![grpc_stop, http_stop],
        })
    }

    /// Endpoint for an OTLP/gRPC exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Base endpoint for an OTLP/HTTP exporter (traces go to `{base}/v1/traces`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.store.all()
    }

    /// The spans of one trace.
    pub fn trace(&self, trace_id: &str) -> Vec<RecordedSpan> {
        self.store.trace(trace_id)
    }

    /// Waits until `pred` holds for the spans received, or fails after `timeout`
    /// listing what arrived.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedSpan]) -> bool,
    ) -> anyhow::Result<Vec<RecordedSpan>> {
        self.store.wait_for(timeout, pred).await
    }

    /// The trace as an indented tree (see [`tree::render`]).
    pub fn render_tree(&self, trace_id: &str) -> String {
        tree::render(&self.store.trace(trace_id))
    }

    /// Stops both receivers.
    pub async fn shutdown(mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}
