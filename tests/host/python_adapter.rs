//! The Python adapter (`adapters/python-http`, built with componentize-py by
//! `scripts/build-python-adapter.sh`) through the real host: it passes `adapter check`,
//! serves tasks against the stub wrapper, honours its route override, and reports the
//! wrapper's error code and `Retry-After` as data, as the Rust adapters do.

mod support;

use std::collections::HashMap;

use support::{
    HostProcess, adapter_check, assert_interaction_checks_pass, dist_dir, run, start_stub_and_sink,
    stub_wrapper, task,
};
use tonic::Code;
use tonic_types::StatusExt;

fn component() -> std::path::PathBuf {
    let path = dist_dir().join("adapters-extra/http-agent.wasm");
    assert!(
        path.exists(),
        "{} is missing: run scripts/build-python-adapter.sh first",
        path.display()
    );
    path
}

#[test]
fn the_python_adapter_passes_adapter_check() {
    let (code, report) = adapter_check(&component(), &[]);
    assert_eq!(code, 0, "{report}");
    assert!(report.contains("http-agent 0.2.0"), "{report}");
    assert!(report.contains(", 0 failed"), "{report}");
    // componentize-py imports the whole world, so `interaction` too: it must use it.
    assert_interaction_checks_pass(&report);
}

#[tokio::test]
async fn the_python_adapter_serves_tasks_through_the_host() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(component(), dir.path().join("http-agent.wasm")).unwrap();
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start_in(dir.path(), &stub_url, &sink.grpc_endpoint(), &[]);
    let mut client = host.client().await;

    let request = task("http-agent", "hello from python");
    let request_id = request.request_id.clone();
    let response = run(&mut client, request, None, None).await.unwrap();
    assert_eq!(response.output, "stub answer to: hello from python");
    assert_eq!(response.adapter_version, "0.2.0");
    let sent = &stub.requests_for(&request_id)[0];
    assert_eq!(sent.path, "/v1/run_graph");
    assert!(
        sent.header("traceparent")
            .unwrap()
            .contains(&response.trace_id)
    );

    // Route override through metadata, and a bad one refused before any request.
    let mut request = task("http-agent", "to the crew");
    request.metadata = HashMap::from([("http_agent.route".into(), "/v1/run_crew".into())]);
    let request_id = request.request_id.clone();
    run(&mut client, request, None, None).await.unwrap();
    assert_eq!(stub.requests_for(&request_id)[0].path, "/v1/run_crew");

    let mut request = task("http-agent", "nowhere");
    request.metadata = HashMap::from([("http_agent.route".into(), "v1/x".into())]);
    let request_id = request.request_id.clone();
    let status = run(&mut client, request, None, None).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(stub.requests_for(&request_id).is_empty());

    // The wrapper's error: the same reason and retry advice as through a Rust adapter,
    // from the code and seconds the adapter reported (`upstream`), not from its message.
    let status = run(
        &mut client,
        task("http-agent", "wrapper-error:overloaded"),
        None,
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(!status.message().contains('['), "{}", status.message());
    let details = status.get_error_details();
    let info = details.error_info().unwrap();
    assert_eq!(info.reason, "OVERLOADED");
    assert_eq!(info.metadata["wrapper_code"], "overloaded");
    assert_eq!(
        details.retry_info().and_then(|r| r.retry_delay),
        Some(std::time::Duration::from_secs(
            stub_wrapper::OVERLOADED_RETRY_AFTER_SECS
        ))
    );
}
