//! The OTLP/HTTP receiver (`POST /v1/traces`, protobuf, optionally gzip) and the
//! read side: `GET /spans[?trace_id=]`, `GET /tree?trace_id=`, `GET /healthz`.

use std::io::Read;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{Query, State},
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
    routing::{get, post},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Deserialize;
use tokio::{net::TcpListener, sync::oneshot};

use crate::{span::flatten, store::SpanStore, tree};

pub async fn serve(listener: TcpListener, store: SpanStore, stop: oneshot::Receiver<()>) {
    let app = Router::new()
        .route("/v1/traces", post(export))
        .route("/spans", get(spans))
        .route("/tree", get(tree_text))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(store);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
    if let Err(error) = result {
        eprintln!("otlp-sink: HTTP receiver failed: {error}");
    }
}

async fn export(
    State(store): State<SpanStore>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.starts_with("application/x-protobuf") {
        return Err((
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("only application/x-protobuf is accepted, got {content_type:?}"),
        ));
    }
    let gzip = headers
        .get(header::CONTENT_ENCODING)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"gzip"));
    let raw = if gzip {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut out)
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
        out
    } else {
        body.to_vec()
    };
    let request = ExportTraceServiceRequest::decode(&raw[..]).map_err(|e| {
        (
            StatusCode::BAD_REQUEST,
            format!("not an ExportTraceServiceRequest: {e}"),
        )
    })?;
    store.extend(flatten(request, "http"));
    Ok((
        [(header::CONTENT_TYPE, "application/x-protobuf")],
        ExportTraceServiceResponse::default().encode_to_vec(),
    ))
}

#[derive(Deserialize)]
struct TraceQuery {
    trace_id: Option<String>,
}

async fn spans(
    State(store): State<SpanStore>,
    Query(query): Query<TraceQuery>,
) -> impl IntoResponse {
    Json(match query.trace_id {
        Some(id) => store.trace(&id),
        None => store.all(),
    })
}

async fn tree_text(
    State(store): State<SpanStore>,
    Query(query): Query<TraceQuery>,
) -> impl IntoResponse {
    match query.trace_id {
        Some(id) => Ok(tree::render(&store.trace(&id))),
        None => Err((StatusCode::BAD_REQUEST, "trace_id is required")),
    }
}
