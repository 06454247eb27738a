//! RunAgentTask through the real host and the real adapters to a recording stub
//! wrapper: each backend's route and payload, and one trace from the caller's
//! `traceparent` through the host's spans into the wrapper's request headers.

mod support;

use std::time::Duration;

use otlp_sink::RecordedSpan;
use serde_json::json;
use support::{env, run, task};

const ORCHESTRATOR_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const ORCHESTRATOR_SPAN: &str = "00f067aa0ba902b7";

fn traceparent(trace_id: &str, span_id: &str) -> String {
    format!("00-{trace_id}-{span_id}-01")
}

#[tokio::test]
async fn crewai_task_posts_the_crew_payload_and_maps_the_reply() {
    let env = env();
    let mut client = env.host.client().await;
    let mut request = task("crewai", "Write a haiku about sandboxes");
    request.context = "for platform engineers".into();
    request.federation_session_id = "session-crew-1".into();
    request.metadata.insert("team".into(), "infra".into());
    request.input_data = Some(federation_proto::json::json_to_struct(
        json!({"topic": "wasm", "lines": 3})
            .as_object()
            .unwrap()
            .clone(),
    ));
    let request_id = request.request_id.clone();

    let response = run(&mut client, request, None, None).await.unwrap();

    let sent = env.stub.requests_for(&request_id);
    assert_eq!(sent.len(), 1, "exactly one wrapper call");
    let sent = &sent[0];
    assert_eq!(sent.method, "POST");
    assert_eq!(sent.path, "/v1/run_crew");
    assert_eq!(sent.header("content-type"), Some("application/json"));
    assert_eq!(
        sent.body,
        json!({
            "goal": "Write a haiku about sandboxes",
            "context": "for platform engineers",
            "input_data": {"topic": "wasm", "lines": 3},
            "federation_session_id": "session-crew-1",
            "request_id": request_id,
            "metadata": {"team": "infra"},
        })
    );
    assert_eq!(
        response.output,
        "stub answer to: Write a haiku about sandboxes"
    );
    assert_eq!(response.backend, "crewai");
    assert_eq!(response.adapter_version, "0.2.0");
    assert_eq!(response.adapter_digest.len(), 64);
    assert_eq!(response.federation_session_id, "session-crew-1");
    assert_eq!(response.request_id, request_id);
    assert!(!response.resumed);
    let result = federation_proto::json::struct_to_json(response.result.as_ref().unwrap()).unwrap();
    assert_eq!(result["framework"], "crewai");
    assert_eq!(result["steps"][1]["name"], "write");
    let timing = response.timing.unwrap();
    assert!(timing.total_us >= timing.adapter_us && timing.adapter_us >= timing.outbound_us);
    assert!(timing.outbound_us > 0);
}

#[tokio::test]
async fn langgraph_task_posts_the_graph_payload_with_thread_id() {
    let env = env();
    let mut client = env.host.client().await;
    let mut request = task("langgraph", "Plan a migration");
    request.federation_session_id = "thread-7".into();
    request.context = "resume".into();
    let request_id = request.request_id.clone();

    let response = run(&mut client, request, None, None).await.unwrap();

    let sent = &env.stub.requests_for(&request_id)[0];
    assert_eq!(sent.path, "/v1/run_graph");
    assert_eq!(sent.body["thread_id"], "thread-7");
    assert_eq!(sent.body["federation_session_id"], "thread-7");
    assert_eq!(sent.body["goal"], "Plan a migration");
    assert_eq!(sent.body["input_data"], json!({}));
    assert_eq!(response.backend, "langgraph");
    assert!(
        response.resumed,
        "the wrapper's `resumed` is passed through"
    );
}

#[tokio::test]
async fn missing_session_and_request_ids_are_generated() {
    let env = env();
    let mut client = env.host.client().await;
    let mut request = task("crewai", "ids please");
    request.request_id.clear();
    let response = run(&mut client, request, None, None).await.unwrap();
    assert_eq!(response.federation_session_id.len(), 36);
    assert_eq!(response.request_id.len(), 36);
    let sent = &env.stub.requests_for(&response.request_id)[0];
    assert_eq!(
        sent.body["federation_session_id"],
        response.federation_session_id
    );
}

/// The spans of one trace, once the host's server, adapter and client spans are in.
async fn host_spans(trace_id: &str) -> Vec<RecordedSpan> {
    let trace = trace_id.to_string();
    env()
        .sink
        .wait_for(Duration::from_secs(20), move |spans| {
            let names: Vec<_> = spans
                .iter()
                .filter(|s| s.trace_id == trace)
                .map(|s| s.kind.as_str())
                .collect();
            names.contains(&"server") && names.contains(&"client") && names.contains(&"internal")
        })
        .await
        .unwrap();
    env().sink.trace(trace_id)
}

#[tokio::test]
async fn incoming_traceparent_is_continued_to_the_wrapper() {
    let env = env();
    let mut client = env.host.client().await;
    let request = task("crewai", "traced task");
    let request_id = request.request_id.clone();
    let tp = traceparent(ORCHESTRATOR_TRACE, ORCHESTRATOR_SPAN);

    let response = run(&mut client, request, Some(&tp), None).await.unwrap();
    assert_eq!(response.trace_id, ORCHESTRATOR_TRACE);

    let sent = &env.stub.requests_for(&request_id)[0];
    let header = sent
        .header("traceparent")
        .expect("traceparent sent to the wrapper");
    let parts: Vec<_> = header.split('-').collect();
    assert_eq!(parts[1], ORCHESTRATOR_TRACE);

    let spans = host_spans(ORCHESTRATOR_TRACE).await;
    let server = spans
        .iter()
        .find(|s| {
            s.kind == "server" && s.attributes.get("rpc.method") == Some(&json!("RunAgentTask"))
        })
        .expect("server span");
    assert_eq!(server.name, "federation.v1.FederationService/RunAgentTask");
    assert_eq!(server.parent_span_id.as_deref(), Some(ORCHESTRATOR_SPAN));
    assert_eq!(server.service_name, "agent-federation");
    assert_eq!(
        server.attributes.get("rpc.grpc.status_code"),
        Some(&json!(0))
    );

    let adapter = spans
        .iter()
        .find(|s| {
            s.name == "adapter crewai"
                && s.attributes.get("federation.request_id") == Some(&json!(request_id))
        })
        .expect("adapter span");
    assert_eq!(
        adapter.parent_span_id.as_deref(),
        Some(server.span_id.as_str())
    );
    assert_eq!(adapter.attributes["adapter.version"], json!("0.2.0"));
    assert_eq!(
        adapter.attributes["adapter.digest"],
        json!(response.adapter_digest)
    );

    let outbound = spans
        .iter()
        .find(|s| {
            s.kind == "client" && s.parent_span_id.as_deref() == Some(adapter.span_id.as_str())
        })
        .expect("outbound client span under the adapter span");
    assert_eq!(outbound.name, "POST");
    assert_eq!(outbound.attributes["http.request.method"], json!("POST"));
    assert_eq!(outbound.attributes["http.response.status_code"], json!(200));
    assert!(
        outbound.attributes["url.full"]
            .as_str()
            .unwrap()
            .ends_with("/v1/run_crew")
    );
    // The wrapper's server span will be a child of the host's client span.
    assert_eq!(parts[2], outbound.span_id);
}

#[tokio::test]
async fn without_traceparent_the_host_starts_a_trace_and_propagates_it() {
    let env = env();
    let mut client = env.host.client().await;
    let request = task("langgraph", "untraced task");
    let request_id = request.request_id.clone();

    let response = run(&mut client, request, None, None).await.unwrap();
    assert_eq!(response.trace_id.len(), 32);
    assert_ne!(response.trace_id, "0".repeat(32));
    let sent = &env.stub.requests_for(&request_id)[0];
    assert_eq!(
        sent.header("traceparent").unwrap().split('-').nth(1),
        Some(response.trace_id.as_str())
    );
    let spans = host_spans(&response.trace_id).await;
    let server = spans.iter().find(|s| s.kind == "server").unwrap();
    assert_eq!(
        server.parent_span_id, None,
        "a new trace has a root server span"
    );
}

#[tokio::test]
async fn a_guest_cannot_forge_the_trace_header() {
    let env = env();
    let mut client = env.host.client().await;
    let request = task("test-faults", "forge");
    let tp = traceparent("11111111111111111111111111111111", ORCHESTRATOR_SPAN);
    let response = run(&mut client, request, Some(&tp), None).await.unwrap();
    assert_eq!(response.trace_id, "11111111111111111111111111111111");
    let forged = env.stub.requests_with_goal("forged");
    let sent = forged
        .iter()
        .find(|r| {
            r.header("traceparent")
                .is_some_and(|h| h.contains("11111111111111111111111111111111"))
        })
        .expect("the forged request reached the stub with the host's traceparent");
    assert!(!sent.header("traceparent").unwrap().contains("0badc0de"));
    assert_eq!(sent.headers.get_all("traceparent").iter().count(), 1);
}

#[tokio::test]
async fn the_wrapper_is_told_how_long_the_task_has_left() {
    let env = env();
    let mut client = env.host.client().await;
    let request = task("crewai", "mind the time");
    let request_id = request.request_id.clone();
    run(&mut client, request, None, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    let sent = &env.stub.requests_for(&request_id)[0];
    let left: u64 = sent
        .header("x-federation-deadline-ms")
        .expect("deadline header")
        .parse()
        .unwrap();
    assert!(left > 0 && left <= 5000, "{left}");
}
