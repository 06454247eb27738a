//! Builders for OTLP export requests shared by the test files.

#![allow(dead_code)] // each test file uses its own subset

use std::io::Write;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};

pub use opentelemetry_proto::tonic::common::v1::any_value::Value;

pub const TRACE: &str = "abababababababababababababababab";

pub fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// One resource (with `service.name` unless `service` is empty) and one scope "test.scope".
pub fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    let attributes = if service.is_empty() {
        vec![]
    } else {
        vec![kv("service.name", Value::StringValue(service.into()))]
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes,
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "test.scope".into(),
                    ..Default::default()
                }),
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// A span of trace [`TRACE`] with id `[id; 8]`, starting at `id` ms and lasting 2 ms.
pub fn span(name: &str, id: u8, parent: Option<u8>, kind: SpanKind) -> Span {
    Span {
        trace_id: hex::decode(TRACE).unwrap(),
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: 1_000_000 * u64::from(id),
        end_time_unix_nano: 1_000_000 * u64::from(id) + 2_000_000,
        attributes: vec![kv("http.response.status_code", Value::IntValue(200))],
        ..Default::default()
    }
}

pub fn span_id(id: u8) -> String {
    hex::encode([id; 8])
}

pub fn gzip(body: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(body).unwrap();
    encoder.finish().unwrap()
}

/// POSTs `body` to `{base}/v1/traces` with the given content type, gzipped if asked.
pub async fn post_traces(
    base: &str,
    content_type: &str,
    body: Vec<u8>,
    gzipped: bool,
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/v1/traces"))
        .header("content-type", content_type);
    let body = if gzipped {
        request = request.header("content-encoding", "gzip");
        gzip(&body)
    } else {
        body
    };
    request.body(body).send().await.unwrap()
}
