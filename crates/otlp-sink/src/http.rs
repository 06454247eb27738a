//! The OTLP/HTTP receiver (`POST /v1/traces`, protobuf or JSON, optionally gzip) and the
//! read side on the same listener: `GET /spans[?trace_id=]`, `GET /tree?trace_id=`,
//! `GET /healthz`.

use std::io::Read;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::Deserialize;
use tokio::{net::TcpListener, sync::oneshot};

use crate::{MAX_EXPORT_BYTES, span::flatten, store::SpanStore, tree};

pub async fn serve(listener: TcpListener, store: SpanStore, stop: oneshot::Receiver<()>) {
    let app = Router::new()
        // axum's default 2 MB limit is below what a batch of LLM spans can reach.
        .route(
            "/v1/traces",
            post(export).layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES)),
        )
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

enum Encoding {
    Protobuf,
    Json,
}

type Rejection = (StatusCode, String);

async fn export(
    State(store): State<SpanStore>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let header_value = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_ascii_lowercase()
    };
    let content_type = header_value(header::CONTENT_TYPE);
    let encoding = match content_type.split(';').next().unwrap_or_default().trim() {
        "application/x-protobuf" => Encoding::Protobuf,
        "application/json" => Encoding::Json,
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("expected application/x-protobuf or application/json, got {other:?}"),
            ));
        }
    };
    let raw = match header_value(header::CONTENT_ENCODING).as_str() {
        "" | "identity" => body.to_vec(),
        "gzip" => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(&body[..])
                .read_to_end(&mut out)
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad gzip body: {e}")))?;
            out
        }
        other => {
            return Err((
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!("unsupported content-encoding {other:?} (gzip or none)"),
            ));
        }
    };
    let bad = |e: &dyn std::fmt::Display| {
        (
            StatusCode::BAD_REQUEST,
            format!("not an ExportTraceServiceRequest: {e}"),
        )
    };
    // The OTLP/HTTP spec answers in the encoding of the request.
    match encoding {
        Encoding::Protobuf => {
            let request = ExportTraceServiceRequest::decode(&raw[..]).map_err(|e| bad(&e))?;
            store.extend(flatten(request, "http"));
            Ok((
                [(header::CONTENT_TYPE, "application/x-protobuf")],
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
                .into_response())
        }
        Encoding::Json => {
            let request: ExportTraceServiceRequest =
                serde_json::from_slice(&raw).map_err(|e| bad(&e))?;
            store.extend(flatten(request, "http"));
            // The empty response; serde would spell it `{"partialSuccess":null}`.
            Ok(([(header::CONTENT_TYPE, "application/json")], "{}").into_response())
        }
    }
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
) -> Result<String, Rejection> {
    match query.trace_id {
        Some(id) => Ok(tree::render(&store.trace(&id))),
        None => Err((StatusCode::BAD_REQUEST, "trace_id is required".into())),
    }
}
