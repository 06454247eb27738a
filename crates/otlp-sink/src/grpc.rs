//! The OTLP/gRPC receiver (`opentelemetry.proto.collector.trace.v1.TraceService`).

use tokio::{net::TcpListener, sync::oneshot};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
    trace_service_server::{TraceService, TraceServiceServer},
};

use crate::{span::flatten, store::SpanStore};

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

pub async fn serve(listener: TcpListener, store: SpanStore, stop: oneshot::Receiver<()>) {
    let result = tonic::transport::Server::builder()
        .add_service(TraceServiceServer::new(Receiver { store }))
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
            let _ = stop.await;
        })
        .await;
    if let Err(error) = result {
        eprintln!("otlp-sink: gRPC receiver failed: {error}");
    }
}
