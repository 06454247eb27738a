//! The OTLP/HTTP receiver (`POST /v1/traces` and `POST /v1/metrics`, protobuf or JSON,
//! optionally gzip) and the
//! read side on the same listener: `GET /spans[?trace_id=]`, `GET /tree?trace_id=`,
//! `GET /healthz`.

use std::io::Read;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRef, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde::{Deserialize, de::DeserializeOwned};
use tokio::{net::TcpListener, sync::oneshot};

use crate::{MAX_EXPORT_BYTES, metrics::MetricStore, span::flatten, store::SpanStore, tree};

/// What the HTTP handlers share: spans for `/v1/traces` and the read side, metric
/// points for `/v1/metrics`.
#[derive(Clone)]
struct Stores {
    spans: SpanStore,
    metrics: MetricStore,
}

impl FromRef<Stores> for SpanStore {
    fn from_ref(stores: &Stores) -> SpanStore {
        stores.spans.clone()
    }
}

pub async fn serve(
    listener: TcpListener,
    store: SpanStore,
    metrics: MetricStore,
    stop: oneshot::Receiver<()>,
) {
    let app = Router::new()
        // axum's default 2 MB limit is below what a batch of LLM spans can reach.
        .route(
            "/v1/traces",
            post(export_traces).layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES)),
        )
        .route(
            "/v1/metrics",
            post(export_metrics).layer(DefaultBodyLimit::max(MAX_EXPORT_BYTES)),
        )
        .route("/spans", get(spans))
        .route("/tree", get(tree_text))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(Stores {
            spans: store,
            metrics,
        });
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = stop.await;
        })
        .await;
    if let Err(error) = result {
        eprintln!("otlp-sink: HTTP receiver failed: {error}");
    }
}

#[derive(Clone, Copy)]
enum Encoding {
    Protobuf,
    Json,
}

type Rejection = (StatusCode, String);

async fn export_traces(
    State(stores): State<Stores>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (request, encoding) =
        decode::<ExportTraceServiceRequest>(&headers, &body, "ExportTraceServiceRequest")?;
    stores.spans.extend(flatten(request, "http"));
    Ok(reply::<ExportTraceServiceResponse>(encoding))
}

async fn export_metrics(
    State(stores): State<Stores>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, Rejection> {
    let (request, encoding) =
        decode::<ExportMetricsServiceRequest>(&headers, &body, "ExportMetricsServiceRequest")?;
    stores.metrics.extend(request, "http");
    Ok(reply::<ExportMetricsServiceResponse>(encoding))
}

/// An export request in either OTLP/HTTP encoding, optionally gzipped.
fn decode<T: Message + Default + DeserializeOwned>(
    headers: &HeaderMap,
    body: &[u8],
    what: &str,
) -> Result<(T, Encoding), Rejection> {
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
            flate2::read::GzDecoder::new(body)
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
    let bad = |e: &dyn std::fmt::Display| (StatusCode::BAD_REQUEST, format!("not an {what}: {e}"));
    let request = match encoding {
        Encoding::Protobuf => T::decode(&raw[..]).map_err(|e| bad(&e))?,
        Encoding::Json => serde_json::from_slice(&raw).map_err(|e| bad(&e))?,
    };
    Ok((request, encoding))
}

/// The empty export response, in the encoding of the request (as the OTLP/HTTP spec asks).
fn reply<T: Message + Default>(encoding: Encoding) -> Response {
    match encoding {
        Encoding::Protobuf => (
            [(header::CONTENT_TYPE, "application/x-protobuf")],
            T::default().encode_to_vec(),
        )
            .into_response(),
        // serde would spell the empty response `{"partialSuccess":null}`.
        Encoding::Json => ([(header::CONTENT_TYPE, "application/json")], "{}").into_response(),
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
