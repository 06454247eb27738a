//! Health (overall and per backend), reflection, and graceful shutdown.

mod support;

use std::time::Duration;

use support::{HostProcess, run, start_stub_and_sink, task, unused_url};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn health_reports_the_service_and_each_backend() {
    let (_, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
    let mut health = HealthClient::new(host.channel().await);
    for service in [
        "",
        "federation.v1.FederationService",
        "backend/crewai",
        "backend/langgraph",
    ] {
        let reply = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap_or_else(|s| panic!("{service:?}: {s}"))
            .into_inner();
        assert_eq!(reply.status, ServingStatus::Serving as i32, "{service:?}");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "backend/autogen".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
}

#[tokio::test]
async fn reflection_lists_the_federation_service() {
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let (_, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
    let mut client = ServerReflectionClient::new(host.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut replies = client
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = replies.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reply {reply:?}");
    };
    let names: Vec<_> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(
        names.contains(&"federation.v1.FederationService"),
        "{names:?}"
    );
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
}

#[tokio::test]
async fn sigterm_lets_in_flight_tasks_finish() {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let mut host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
    let mut client = host.client().await;
    let request = task("crewai", "slow:1000");
    let request_id = request.request_id.clone();
    let in_flight = tokio::spawn(async move { run(&mut client, request, None, None).await });
    // Wait until the task is inside the wrapper call, then ask the host to stop.
    for _ in 0..200 {
        if !stub.requests_for(&request_id).is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stub.requests_for(&request_id).len(), 1);
    let exit = tokio::task::spawn_blocking(move || {
        let status = host.terminate();
        (status, host)
    });
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight task completes");
    assert_eq!(response.output, "stub answer to: slow:1000");
    let (status, host) = exit.await.unwrap();
    assert!(
        status.success(),
        "clean exit, got {status:?}; log:\n{}",
        host.log()
    );
}

#[tokio::test]
async fn the_host_serves_when_no_collector_is_listening() {
    let (_, stub_url, _sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&stub_url, &unused_url(), &[]);
    let mut client = host.client().await;
    for _ in 0..3 {
        let response = run(&mut client, task("crewai", "collector down"), None, None)
            .await
            .expect("tasks succeed without a collector");
        assert_eq!(response.trace_id.len(), 32);
    }
}

#[tokio::test]
async fn call_and_health_subcommands_talk_to_a_running_host() {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
    let bin = federation_testkit::process::host_bin();
    let endpoint = host.endpoint();
    let output = tokio::task::spawn_blocking(move || {
        let health = std::process::Command::new(bin)
            .args([
                "health",
                "--addr",
                &endpoint,
                "--service",
                "backend/langgraph",
            ])
            .output()
            .unwrap();
        let call = std::process::Command::new(bin)
            .args([
                "call",
                "--addr",
                &endpoint,
                "--backend",
                "crewai",
                "--goal",
                "from the cli",
            ])
            .args([
                "--traceparent",
                "00-0123456789abcdef0123456789abcdef-0123456789abcdef-01",
            ])
            .output()
            .unwrap();
        let missing = std::process::Command::new(bin)
            .args([
                "call",
                "--addr",
                &endpoint,
                "--backend",
                "nope",
                "--goal",
                "x",
            ])
            .output()
            .unwrap();
        let watched = std::process::Command::new(bin)
            .args(["call", "--addr", &endpoint, "--backend", "crewai"])
            .args(["--goal", "watched from the cli", "--stream", "--json"])
            .args(["--metadata", "team=infra"])
            .output()
            .unwrap();
        // Nobody reads the output: the client ends quietly, no panic.
        let mut unread = std::process::Command::new(bin)
            .args(["call", "--addr", &endpoint, "--backend", "crewai"])
            .args(["--goal", "nobody reads", "--json"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(unread.stdout.take());
        let unread = unread.wait_with_output().unwrap();
        (health, call, missing, watched, unread)
    })
    .await
    .unwrap();
    let (health, call, missing, watched, unread) = output;
    assert!(
        watched.status.success(),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&watched.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(events.first().unwrap()["type"], "started");
    assert_eq!(events.last().unwrap()["type"], "completed");
    assert!(events.iter().any(|e| e["type"] == "llm_call"), "{events:?}");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event["seq"], i as u64 + 1);
    }
    let sent = stub.requests_with_goal("watched from the cli");
    assert_eq!(sent[0].body["metadata"]["team"], "infra");
    let unread_stderr = String::from_utf8_lossy(&unread.stderr);
    assert!(!unread_stderr.contains("panicked"), "{unread_stderr}");
    assert!(health.status.success());
    assert!(String::from_utf8_lossy(&health.stdout).contains("SERVING"));
    assert!(
        call.status.success(),
        "{}",
        String::from_utf8_lossy(&call.stderr)
    );
    let printed = String::from_utf8_lossy(&call.stdout);
    assert!(
        printed.contains("trace id:   0123456789abcdef0123456789abcdef"),
        "{printed}"
    );
    assert!(
        printed.contains("stub answer to: from the cli"),
        "{printed}"
    );
    // NOT_FOUND exits 4 (README: "Exit codes").
    assert_eq!(missing.status.code(), Some(4));
    let printed = String::from_utf8_lossy(&missing.stderr);
    assert!(printed.contains("error: NOT_FOUND"), "{printed}");
    assert!(printed.contains("reason: BACKEND_NOT_FOUND"), "{printed}");
}
