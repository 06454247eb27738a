//! The sink's receivers against real clients: OTLP/gRPC through the generated
//! TraceService client (plain and gzip), OTLP/HTTP through real POSTs (protobuf, gzip,
//! JSON), and the read side (`/spans`, `/tree`, `/healthz`).

mod common;

use std::time::Duration;

use common::{TRACE, Value, export, kv, post_traces, span, span_id};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use opentelemetry_proto::tonic::common::v1::{AnyValue, ArrayValue, KeyValueList};
use opentelemetry_proto::tonic::trace::v1::{Status, span::SpanKind, status::StatusCode};
use otlp_sink::{OtlpSink, RecordedSpan, find_named_chain};
use prost::Message;
use tonic::codec::CompressionEncoding;

const PROTOBUF: &str = "application/x-protobuf";
const WAIT: Duration = Duration::from_secs(10);

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
    let base = sink.http_endpoint();
    let child = export(
        "python",
        vec![span("child", 2, Some(1), SpanKind::Internal)],
    );
    let response = post_traces(&base, PROTOBUF, child.encode_to_vec(), false).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], PROTOBUF);
    let grandchild = export(
        "python",
        vec![span("grandchild", 3, Some(2), SpanKind::Client)],
    );
    let response = post_traces(&base, PROTOBUF, grandchild.encode_to_vec(), true).await;
    assert_eq!(response.status(), 200);

    let spans = sink.wait_for(WAIT, |spans| spans.len() == 3).await.unwrap();
    let root = spans.iter().find(|s| s.name == "root").unwrap();
    assert_eq!(root.trace_id, TRACE);
    assert_eq!(root.span_id, "0101010101010101");
    assert_eq!(root.parent_span_id, None);
    assert!(root.is_root());
    assert_eq!(root.kind, "server");
    assert_eq!(root.service_name, "rust-host");
    assert_eq!(root.scope_name, "test.scope");
    assert_eq!(root.received_via, "grpc");
    assert_eq!(root.attr_i64("http.response.status_code"), Some(200));
    assert_eq!(root.duration(), Duration::from_millis(2));
    let child = spans.iter().find(|s| s.name == "child").unwrap();
    assert_eq!(child.parent_span_id, Some(span_id(1)));
    assert_eq!(child.service_name, "python");
    assert_eq!(child.received_via, "http");

    let chain = find_named_chain(&spans, &["root", "child", "grandchild"]).expect("one chain");
    assert_eq!(chain[2].kind, "client");
    assert_eq!(sink.trace(&TRACE.to_uppercase()).len(), 3);
    assert!(sink.trace("00000000000000000000000000000001").is_empty());

    let tree = sink.render_tree(TRACE);
    let lines: Vec<_> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert_eq!(lines[0], "root [rust-host] server (2.0 ms)", "{tree}");
    assert!(lines[1].starts_with("  child [python] internal"), "{tree}");
    assert!(
        lines[2].starts_with("    grandchild [python] client"),
        "{tree}"
    );

    let listed: Vec<RecordedSpan> = reqwest::get(format!("{base}/spans?trace_id={TRACE}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, spans);
    let other: Vec<RecordedSpan> = reqwest::get(format!("{base}/spans?trace_id=ff"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(other.is_empty());
    let served_tree = reqwest::get(format!("{base}/tree?trace_id={TRACE}"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(served_tree, tree);
    let health = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    sink.shutdown().await;
}

#[tokio::test]
async fn every_attribute_type_status_and_a_missing_service_name_are_kept() {
    let sink = OtlpSink::start().await.unwrap();
    let any = |value| AnyValue { value: Some(value) };
    let mut failed = span("failed", 7, None, SpanKind::Consumer);
    failed.attributes = vec![
        kv("s", Value::StringValue("text".into())),
        kv("b", Value::BoolValue(false)),
        kv("i", Value::IntValue(-3)),
        kv("d", Value::DoubleValue(0.5)),
        kv("bytes", Value::BytesValue(vec![0xde, 0xad])),
        kv(
            "list",
            Value::ArrayValue(ArrayValue {
                values: vec![any(Value::IntValue(1)), any(Value::StringValue("x".into()))],
            }),
        ),
        kv(
            "map",
            Value::KvlistValue(KeyValueList {
                values: vec![kv("k", Value::BoolValue(true))],
            }),
        ),
    ];
    failed.status = Some(Status {
        code: StatusCode::Error as i32,
        message: "boom".into(),
    });
    let mut client = TraceServiceClient::connect(sink.grpc_endpoint())
        .await
        .unwrap()
        .send_compressed(CompressionEncoding::Gzip);
    client.export(export("", vec![failed])).await.unwrap();

    let spans = sink.spans();
    let failed = &spans[0];
    assert_eq!(failed.service_name, "");
    assert_eq!(failed.kind, "consumer");
    assert_eq!(failed.status_code, "error");
    assert_eq!(failed.status_message, "boom");
    assert_eq!(
        serde_json::to_value(&failed.attributes).unwrap(),
        serde_json::json!({
            "s": "text", "b": false, "i": -3, "d": 0.5, "bytes": "dead",
            "list": [1, "x"], "map": {"k": true},
        })
    );
    assert_eq!(failed.attr_str("s"), Some("text"));
    assert_eq!(failed.attr_str("i"), None);
    assert!(
        sink.render_tree(TRACE).contains(r#"ERROR "boom""#),
        "{}",
        sink.render_tree(TRACE)
    );
}

#[tokio::test]
async fn otlp_json_bodies_are_accepted() {
    let sink = OtlpSink::start().await.unwrap();
    // The shape of the OTLP/HTTP JSON example: hex ids (any case), camelCase, enums as
    // integers, 64-bit integers as strings.
    let body = serde_json::json!({
        "resourceSpans": [{
            "resource": {"attributes": [
                {"key": "service.name", "value": {"stringValue": "json-svc"}}
            ]},
            "scopeSpans": [{
                "scope": {"name": "my.library", "version": "1.0.0"},
                "spans": [{
                    "traceId": "5B8EFFF798038103D269B633813FC60C",
                    "spanId": "EEE19B7EC3C1B174",
                    "parentSpanId": "EEE19B7EC3C1B173",
                    "name": "I'm a server span",
                    "startTimeUnixNano": "1544712660000000000",
                    "endTimeUnixNano": "1544712661000000000",
                    "kind": 2,
                    "attributes": [
                        {"key": "my.span.attr", "value": {"stringValue": "some value"}},
                        {"key": "n", "value": {"intValue": "42"}}
                    ],
                    "status": {}
                }]
            }]
        }]
    });
    let response = post_traces(
        &sink.http_endpoint(),
        "application/json",
        body.to_string().into_bytes(),
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(response.text().await.unwrap(), "{}");

    let spans = sink.spans();
    assert_eq!(spans.len(), 1);
    let span = &spans[0];
    assert_eq!(span.trace_id, "5b8efff798038103d269b633813fc60c");
    assert_eq!(span.span_id, "eee19b7ec3c1b174");
    assert_eq!(span.parent_span_id.as_deref(), Some("eee19b7ec3c1b173"));
    assert_eq!(span.kind, "server");
    assert_eq!(span.service_name, "json-svc");
    assert_eq!(span.scope_name, "my.library");
    assert_eq!(span.attr_str("my.span.attr"), Some("some value"));
    assert_eq!(span.attr_i64("n"), Some(42));
    assert_eq!(span.status_code, "unset");
    assert_eq!(span.duration(), Duration::from_secs(1));
}

#[tokio::test]
async fn bad_requests_are_rejected_with_a_reason() {
    let sink = OtlpSink::start().await.unwrap();
    let base = sink.http_endpoint();

    let response = post_traces(&base, PROTOBUF, b"\xff\xff\xffnot protobuf".to_vec(), false).await;
    assert_eq!(response.status(), 400);
    let reason = response.text().await.unwrap();
    assert!(reason.contains("ExportTraceServiceRequest"), "{reason}");

    let mut not_gzip = reqwest::Client::new()
        .post(format!("{base}/v1/traces"))
        .header("content-type", PROTOBUF)
        .header("content-encoding", "gzip")
        .body("plain text")
        .send()
        .await
        .unwrap();
    assert_eq!(not_gzip.status(), 400);
    assert!(not_gzip.chunk().await.unwrap().is_some());

    let response = post_traces(&base, "application/json", b"{not json".to_vec(), false).await;
    assert_eq!(response.status(), 400);
    let response = post_traces(&base, "text/plain", b"hello".to_vec(), false).await;
    assert_eq!(response.status(), 415);
    let response = reqwest::get(format!("{base}/tree")).await.unwrap();
    assert_eq!(response.status(), 400);

    assert!(sink.spans().is_empty());
}

#[tokio::test]
async fn wait_for_wakes_on_a_later_arrival() {
    let sink = OtlpSink::start().await.unwrap();
    let endpoint = sink.grpc_endpoint();
    let waiting = sink.wait_for(WAIT, |spans| spans.iter().any(|s| s.name == "late"));
    let sending = async {
        let mut client = TraceServiceClient::connect(endpoint).await.unwrap();
        client
            .export(export("svc", vec![span("late", 1, None, SpanKind::Server)]))
            .await
            .unwrap();
    };
    let (spans, ()) = tokio::join!(waiting, sending);
    assert_eq!(spans.unwrap()[0].name, "late");
}

#[tokio::test]
async fn wait_for_reports_what_arrived_on_timeout() {
    let sink = OtlpSink::start().await.unwrap();
    let base = sink.http_endpoint();
    let only = export("svc", vec![span("only", 4, Some(9), SpanKind::Internal)]);
    post_traces(&base, PROTOBUF, only.encode_to_vec(), false).await;
    let error = sink
        .wait_for(Duration::from_millis(20), |spans| spans.len() > 1)
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("1 spans received"), "{error}");
    assert!(error.contains("only [svc] internal"), "{error}");
}

#[tokio::test]
async fn spans_whose_parent_never_arrived_are_marked_orphans_at_the_root() {
    let sink = OtlpSink::start().await.unwrap();
    let spans = vec![
        span("root", 1, None, SpanKind::Server),
        span("lost", 5, Some(4), SpanKind::Server),
        span("under-lost", 6, Some(5), SpanKind::Client),
    ];
    post_traces(
        &sink.http_endpoint(),
        PROTOBUF,
        export("svc", spans).encode_to_vec(),
        false,
    )
    .await;
    let tree = sink.render_tree(TRACE);
    let lines: Vec<_> = tree.lines().collect();
    assert_eq!(lines.len(), 3, "{tree}");
    assert_eq!(lines[0], "root [svc] server (2.0 ms)");
    assert_eq!(
        lines[1],
        format!(
            "lost [svc] server (2.0 ms) {} parent {} not received",
            otlp_sink::ORPHAN_MARKER,
            span_id(4)
        )
    );
    assert!(lines[2].starts_with("  under-lost [svc] client"), "{tree}");
}
