//! `OTEL_EXPORTER_OTLP_PROTOCOL` and its per-signal variants: the real host sends its
//! spans and metrics to the real OTLP receiver over gRPC or OTLP/HTTP as configured,
//! and refuses to start on a protocol it does not speak.

mod support;

use std::time::Duration;

use otlp_sink::OtlpSink;
use support::{HostProcess, adapters_dir, run, start_stub_and_sink, task};

const WAIT: Duration = Duration::from_secs(20);
const HOST_SERVICE: &str = "agent-federation";

/// Runs one task on a host configured by `configure` and returns the transports its
/// spans and its metric points arrived over.
async fn transports_used(
    configure: impl FnOnce(&OtlpSink) -> Vec<(&'static str, String)>,
) -> (String, String) {
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let envs = configure(&sink);
    let host = HostProcess::start_with(&adapters_dir(), &stub_url, |mut host| {
        for (key, value) in envs {
            host = host.env(key, value);
        }
        host
    });
    let mut client = host.client().await;
    let response = run(&mut client, task("crewai", "protocol check"), None, None)
        .await
        .unwrap();
    let spans = sink
        .wait_for(WAIT, |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == response.trace_id && s.service_name == HOST_SERVICE)
        })
        .await
        .unwrap();
    let span_via = spans
        .iter()
        .find(|s| s.trace_id == response.trace_id)
        .map(|s| s.received_via.clone())
        .unwrap();
    // Every span of the trace came the same way.
    assert!(
        spans
            .iter()
            .filter(|s| s.trace_id == response.trace_id)
            .all(|s| s.received_via == span_via)
    );
    let points = sink
        .wait_for_metrics(WAIT, |points| {
            points.iter().any(|p| p.service_name == HOST_SERVICE)
        })
        .await
        .unwrap();
    let metrics_via = points
        .iter()
        .find(|p| p.service_name == HOST_SERVICE)
        .map(|p| p.received_via.clone())
        .unwrap();
    (span_via, metrics_via)
}

#[tokio::test]
async fn http_protobuf_sends_spans_and_metrics_to_the_base_endpoint_paths() {
    let (spans, metrics) = transports_used(|sink| {
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            // A base endpoint: /v1/traces and /v1/metrics are appended.
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.http_endpoint()),
        ]
    })
    .await;
    assert_eq!((spans.as_str(), metrics.as_str()), ("http", "http"));
}

#[tokio::test]
async fn grpc_is_spoken_when_asked_for_by_name() {
    let (spans, metrics) = transports_used(|sink| {
        vec![
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
        ]
    })
    .await;
    assert_eq!((spans.as_str(), metrics.as_str()), ("grpc", "grpc"));
}

#[tokio::test]
async fn per_signal_protocol_and_endpoint_override_the_general_ones() {
    let (spans, metrics) = transports_used(|sink| {
        vec![
            // Metrics stay on the general gRPC settings...
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc".into()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", sink.grpc_endpoint()),
            // ...traces take OTLP/HTTP to a per-signal endpoint, used as given.
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf".into()),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                format!("{}/v1/traces", sink.http_endpoint()),
            ),
        ]
    })
    .await;
    assert_eq!((spans.as_str(), metrics.as_str()), ("http", "grpc"));
}

#[test]
fn an_unknown_protocol_stops_start_up_with_a_clear_error() {
    for (variable, value) in [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grcp"),
    ] {
        let output = std::process::Command::new(federation_testkit::process::host_bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--adapters-dir"])
            .arg(adapters_dir())
            .args(["--wrapper-url", "http://127.0.0.1:9"])
            .env(variable, value)
            .output()
            .unwrap();
        assert!(!output.status.success());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!(
                "{variable}=\"{value}\" is not a supported OTLP protocol: use \"grpc\" or \"http/protobuf\""
            )),
            "{stderr}"
        );
    }
}
