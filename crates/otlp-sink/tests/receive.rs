//! The sink's two receivers against real clients: OTLP/gRPC through the generated
//! TraceService client, OTLP/HTTP through a real HTTP POST (plain and gzip).

use std::{io::Write, time::Duration};

use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, span::SpanKind};
use otlp_sink::OtlpSink;
use prost::Message;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn export(service: &str, spans: Vec<Span>) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue(service.into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

fn span(name: &str, id: u8, parent: Option<u8>, kind: SpanKind) -> Span {
    Span {
        trace_id: vec![0xab; 16],
        span_id: vec![id; 8],
        parent_span_id: parent.map(|p| vec![p; 8]).unwrap_or_default(),
        name: name.into(),
        kind: kind as i32,
        start_time_unix_nano: 1_000_000 * u64::from(id),
        end_time_unix_nano: 1_000_000 * u64::from(id) + 2_000_000,
        attributes: vec![
            kv("http.response.status_code", Value::IntValue(200)),
            kv("ok", Value::BoolValue(true)),
        ],
        ..Default::default()
    }
}

async fn post(url: &str, body: Vec<u8>, gzip: bool) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-protobuf");
    let body = if gzip {
        request = request.header("content-encoding", "gzip");
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(&body).unwrap();
        encoder.finish().unwrap()
    } else {
        body
    };
    request.body(body).send().await.unwrap()
}

#[tokio::test]
async fn grpc_and_http_spans_land_in_one_trace_tree() {
    let sink = OtlpSink::start().await.unwrap();
    let mut client = TraceServiceClient::connect(sink.grpc_endpoint())
        .await
        .unwrap();
    client
        .export(export(
            "rust-host",
            vec![span("root", 1, None, SpanKind::Server)],
        ))
        .await
        .unwrap();
    let traces = format!("{}/v1/traces", sink.http_endpoint());
    let plain = export(
        "python",
        vec![span("child", 2, Some(1), SpanKind::Internal)],
    );
    assert!(
        post(&traces, plain.encode_to_vec(), false)
            .await
            .status()
            .is_success()
    );
    let zipped = export(
        "python",
        vec![span("grandchild", 3, Some(2), SpanKind::Client)],
    );
    assert!(
        post(&traces, zipped.encode_to_vec(), true)
            .await
            .status()
            .is_success()
    );

    let spans = sink
        .wait_for(Duration::from_secs(5), |spans| spans.len() == 3)
        .await
        .unwrap();
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    assert_eq!(root.trace_id, "ab".repeat(16));
    assert_eq!(root.span_id, "01".repeat(8));
    assert_eq!(root.parent_span_id, None);
    assert_eq!(root.kind, "server");
    assert_eq!(root.service_name, "rust-host");
    assert_eq!(root.received_via, "grpc");
    assert_eq!(root.attributes["http.response.status_code"], 200);
    let child = spans.iter().find(|s| s.name == "child").unwrap();
    assert_eq!(child.parent_span_id.as_deref(), Some("0101010101010101"));
    assert_eq!(child.service_name, "python");
    assert_eq!(child.received_via, "http");

    let tree = sink.render_tree(&"ab".repeat(16));
    let lines: Vec<_> = tree.lines().collect();
    assert!(lines[0].starts_with("root [rust-host] server"), "{tree}");
    assert!(lines[1].starts_with("  child [python] internal"), "{tree}");
    assert!(
        lines[2].starts_with("    grandchild [python] client"),
        "{tree}"
    );

    let listed: Vec<otlp_sink::RecordedSpan> = reqwest::get(format!(
        "{}/spans?trace_id={}",
        sink.http_endpoint(),
        "ab".repeat(16)
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap_or_default();
    assert_eq!(listed.len(), 3);
}

#[tokio::test]
async fn garbage_bodies_are_rejected_with_a_reason() {
    let sink = OtlpSink::start().await.unwrap();
    let traces = format!("{}/v1/traces", sink.http_endpoint());
    let response = post(&traces, b"\xff\xff\xffnot protobuf".to_vec(), false).await;
    assert_eq!(response.status(), 400);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("ExportTraceServiceRequest")
    );
    let response = post(&traces, b"not gzip".to_vec(), true).await;
    assert_eq!(response.status(), 400);
    assert!(sink.spans().is_empty());
}

#[tokio::test]
async fn wait_for_reports_what_arrived_on_timeout() {
    let sink = OtlpSink::start().await.unwrap();
    let error = sink
        .wait_for(Duration::from_millis(50), |spans| !spans.is_empty())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("0 spans received"), "{error}");
}
