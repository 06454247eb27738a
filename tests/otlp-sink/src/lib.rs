//! otlp-sink: a real OTLP receiver that keeps every span and every metric data point it
//! gets.
//!
//! It accepts OTLP/gRPC (trace and metrics `Export`, optionally gzip) and OTLP/HTTP
//! (`POST /v1/traces`, `POST /v1/metrics`, protobuf or JSON, optionally gzip) and keeps
//! them in memory, so tests and the demo can assert or print one trace that crossed
//! several services.
//! The HTTP listener also serves `GET /spans[?trace_id=]` (JSON), `GET /tree?trace_id=`
//! (text) and `GET /healthz`.

mod chain;
mod grpc;
mod http;
mod metrics;
mod span;
mod store;
mod tree;

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

pub use chain::{SpanMatch, children_of, descendants_of, find_chain, find_named_chain, named};
pub use metrics::MetricPoint;
pub use span::RecordedSpan;
pub use tree::{ORPHAN_MARKER, render as render_spans};

use metrics::MetricStore;
use store::SpanStore;

/// The largest export request either receiver accepts.
const MAX_EXPORT_BYTES: usize = 64 * 1024 * 1024;

/// A running receiver; stops when shut down or dropped.
pub struct OtlpSink {
    grpc_addr: SocketAddr,
    http_addr: SocketAddr,
    store: SpanStore,
    metrics: MetricStore,
    stop: Vec<oneshot::Sender<()>>,
    servers: Vec<JoinHandle<()>>,
}

impl OtlpSink {
    /// Binds both receivers on 127.0.0.1:0 and serves them on the current tokio runtime.
    pub async fn start() -> anyhow::Result<OtlpSink> {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(any, any).await
    }

    /// Binds the gRPC and HTTP receivers on the given addresses.
    pub async fn start_on(grpc: SocketAddr, http: SocketAddr) -> anyhow::Result<OtlpSink> {
        let grpc_listener = TcpListener::bind(grpc)
            .await
            .with_context(|| format!("binding the OTLP/gRPC receiver on {grpc}"))?;
        let http_listener = TcpListener::bind(http)
            .await
            .with_context(|| format!("binding the OTLP/HTTP receiver on {http}"))?;
        let grpc_addr = grpc_listener.local_addr()?;
        let http_addr = http_listener.local_addr()?;
        let store = SpanStore::default();
        let metrics = MetricStore::default();
        let (grpc_stop, grpc_stopped) = oneshot::channel();
        let (http_stop, http_stopped) = oneshot::channel();
        let servers = vec![
            tokio::spawn(grpc::serve(
                grpc_listener,
                store.clone(),
                metrics.clone(),
                grpc_stopped,
            )),
            tokio::spawn(http::serve(
                http_listener,
                store.clone(),
                metrics.clone(),
                http_stopped,
            )),
        ];
        Ok(OtlpSink {
            grpc_addr,
            http_addr,
            store,
            metrics,
            stop: vec![grpc_stop, http_stop],
            servers,
        })
    }

    /// Endpoint for an OTLP/gRPC exporter (`OTEL_EXPORTER_OTLP_ENDPOINT`).
    pub fn grpc_endpoint(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }

    /// Base endpoint for an OTLP/HTTP exporter (traces go to `{base}/v1/traces`,
    /// metrics to `{base}/v1/metrics`).
    pub fn http_endpoint(&self) -> String {
        format!("http://{}", self.http_addr)
    }

    /// Every span received so far, in arrival order.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.store.all()
    }

    /// The spans of one trace (id in hex, either case), in arrival order.
    pub fn trace(&self, trace_id: &str) -> Vec<RecordedSpan> {
        self.store.trace(trace_id)
    }

    /// Waits until `pred` holds for all spans received, waking on each arrival; after
    /// `timeout` fails with a listing of what arrived.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedSpan]) -> bool,
    ) -> anyhow::Result<Vec<RecordedSpan>> {
        self.store.wait_for(timeout, pred).await
    }

    /// Waits until more than `seen` spans have arrived and returns the ones after the
    /// first `seen` (for streaming spans out as they come).
    pub async fn spans_after(&self, seen: usize) -> Vec<RecordedSpan> {
        self.store.after(seen).await
    }

    /// Every metric data point received so far (either transport), in arrival order.
    pub fn metric_points(&self) -> Vec<MetricPoint> {
        self.metrics.all()
    }

    /// Waits until `pred` holds for the metric points received; after `timeout` fails
    /// with the names of the metrics that did arrive.
    pub async fn wait_for_metrics(
        &self,
        timeout: Duration,
        pred: impl Fn(&[MetricPoint]) -> bool,
    ) -> anyhow::Result<Vec<MetricPoint>> {
        self.metrics.wait_for(timeout, pred).await
    }

    /// One trace as an indented tree (see [`render_spans`]).
    pub fn render_tree(&self, trace_id: &str) -> String {
        tree::render(&self.store.trace(trace_id))
    }

    /// Stops both receivers and waits for them to finish in-flight requests.
    pub async fn shutdown(mut self) {
        self.signal_stop();
        for server in self.servers.drain(..) {
            let abort = server.abort_handle();
            // Graceful shutdown waits for open connections; don't hang on a stuck client.
            if tokio::time::timeout(Duration::from_secs(5), server)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }

    fn signal_stop(&mut self) {
        for stop in self.stop.drain(..) {
            let _ = stop.send(());
        }
    }
}

impl Drop for OtlpSink {
    fn drop(&mut self) {
        self.signal_stop();
    }
}
