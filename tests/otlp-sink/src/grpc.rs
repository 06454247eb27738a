//! The OTLP/gRPC receiver: `TraceService` here, `MetricsService` in [`crate::metrics`].

use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, codec::CompressionEncoding};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

use crate::{MAX_EXPORT_BYTES, metrics::MetricStore, span::flatten, store::SpanStore};

struct Receiver {
    store: SpanStore,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        self.store.extend(flatten(request.into_inner(), "grpc"));
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

pub async fn serve(
    listener: TcpListener,
    store: SpanStore,
    metrics: MetricStore,
    stop: oneshot::Receiver<()>,
) {
    let service = TraceServiceServer::new(Receiver { store })
        // Exporters compress when OTEL_EXPORTER_OTLP_COMPRESSION=gzip.
        .accept_compressed(CompressionEncoding::Gzip)
        // tonic's default 4 MB is below what a batch of LLM spans can reach.
        .max_decoding_message_size(MAX_EXPORT_BYTES);
    let result = tonic::transport::Server::builder()
        .add_service(service)
        .add_service(crate::metrics::service(metrics))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop.await;
        })
        .await;
    if let Err(error) = result {
        eprintln!("otlp-sink: gRPC receiver failed: {error}");
    }
}
