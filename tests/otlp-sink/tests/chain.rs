//! The trace-shape helpers on spans built in memory (no servers needed).

mod common;

use common::{export, span};
use opentelemetry_proto::tonic::trace::v1::{Span, span::SpanKind};
use otlp_sink::{
    RecordedSpan, children_of, descendants_of, find_chain, find_named_chain, named, render_spans,
};

/// Spans as the sink records them: flattened through a real round trip of the library.
async fn recorded(spans: Vec<Span>) -> Vec<RecordedSpan> {
    use prost::Message;
    let sink = otlp_sink::OtlpSink::start().await.unwrap();
    let response = common::post_traces(
        &sink.http_endpoint(),
        "application/x-protobuf",
        export("svc", spans).encode_to_vec(),
        false,
    )
    .await;
    assert_eq!(response.status(), 200);
    sink.spans()
}

#[tokio::test]
async fn find_chain_backtracks_past_a_dead_end_branch() {
    // Two spans named "step": only the later one has the "call" → "server" chain below.
    let spans = recorded(vec![
        span("root", 1, None, SpanKind::Server),
        span("step", 2, Some(1), SpanKind::Internal),
        span("step", 3, Some(1), SpanKind::Internal),
        span("call", 4, Some(2), SpanKind::Internal),
        span("call", 5, Some(3), SpanKind::Client),
        span("server", 6, Some(5), SpanKind::Server),
    ])
    .await;

    let chain = find_chain(
        &spans,
        &[&named("step"), &|s| s.kind == "client", &named("server")],
    )
    .unwrap_or_else(|| panic!("{}", render_spans(&spans)));
    let ids: Vec<_> = chain.iter().map(|s| s.span_id.as_str()).collect();
    assert_eq!(
        ids,
        [common::span_id(3), common::span_id(5), common::span_id(6)]
    );

    assert!(find_named_chain(&spans, &["root", "step", "call", "server"]).is_some());
    assert!(find_named_chain(&spans, &["root", "server"]).is_none());
    assert!(find_named_chain(&spans, &["server", "root"]).is_none());
    assert!(find_chain(&spans, &[]).is_none());

    let root = &spans[0];
    let children: Vec<_> = children_of(&spans, root)
        .iter()
        .map(|s| &s.span_id)
        .collect();
    assert_eq!(children, [&common::span_id(2), &common::span_id(3)]);
    assert_eq!(descendants_of(&spans, root).len(), 5);
    assert!(root.is_parent_of(&spans[1]));
    assert!(!spans[1].is_parent_of(root));
}

#[tokio::test]
async fn a_span_id_in_another_trace_is_not_a_parent() {
    let mut other = span("child", 2, Some(1), SpanKind::Internal);
    other.trace_id = vec![0xcd; 16];
    let spans = recorded(vec![span("root", 1, None, SpanKind::Server), other]).await;
    assert!(find_named_chain(&spans, &["root", "child"]).is_none());
    assert!(children_of(&spans, &spans[0]).is_empty());
}
