//! Every failure a caller can meet gets its own gRPC status with a readable message,
//! and none of them takes the host down.

mod support;

use std::time::Duration;

use agent_federation::proto::federation_service_client::FederationServiceClient;
use prost_types::{Struct, Value, value::Kind};
use support::{HostProcess, env, run, start_stub_and_sink, task};
use tonic::Code;

async fn status_of(
    request: agent_federation::proto::TaskRequest,
    timeout: Option<Duration>,
) -> tonic::Status {
    let mut client = env().host.client().await;
    run(&mut client, request, None, timeout)
        .await
        .expect_err("the task should fail")
}

#[tokio::test]
async fn unknown_backend_is_not_found() {
    let status = status_of(task("autogen", "x"), None).await;
    assert_eq!(status.code(), Code::NotFound);
    assert!(status.message().contains("autogen"), "{}", status.message());
    assert!(
        status.message().contains("crewai"),
        "lists the loaded backends"
    );
}

#[tokio::test]
async fn missing_goal_is_invalid_argument() {
    let status = status_of(task("crewai", ""), None).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("goal"));
}

#[tokio::test]
async fn missing_backend_is_invalid_argument() {
    let status = status_of(task("", "x"), None).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("backend"));
}

#[tokio::test]
async fn unsafe_session_id_is_invalid_argument() {
    let mut request = task("crewai", "x");
    request.federation_session_id = "../../etc/passwd".into();
    let status = status_of(request, None).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("federation_session_id"));
}

#[tokio::test]
async fn non_json_input_data_is_invalid_argument() {
    let mut request = task("crewai", "x");
    request.input_data = Some(Struct {
        fields: [(
            "ratio".to_string(),
            Value {
                kind: Some(Kind::NumberValue(f64::INFINITY)),
            },
        )]
        .into(),
    });
    let status = status_of(request, None).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("input_data: ratio"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn wrapper_4xx_maps_to_the_matching_code_with_its_message() {
    for (http, code) in [
        (422, Code::InvalidArgument),
        (404, Code::NotFound),
        (409, Code::Aborted),
        (413, Code::ResourceExhausted),
        (503, Code::Unavailable),
    ] {
        let status = status_of(task("crewai", &format!("status:{http}")), None).await;
        assert_eq!(status.code(), code, "HTTP {http}: {}", status.message());
        assert!(
            status
                .message()
                .contains(&format!("stub refuses with {http}")),
            "HTTP {http}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn wrapper_5xx_is_internal_with_a_body_excerpt() {
    let status = status_of(task("langgraph", "status:500"), None).await;
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("HTTP 500"),
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("boom in crew"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn wrapper_reply_that_is_not_json_is_internal() {
    let status = status_of(task("crewai", "notjson"), None).await;
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("not JSON"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn slow_wrapper_past_the_deadline_is_deadline_exceeded() {
    let status = status_of(
        task("crewai", "slow:5000"),
        Some(Duration::from_millis(400)),
    )
    .await;
    assert_eq!(
        status.code(),
        Code::DeadlineExceeded,
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn spinning_adapter_is_stopped_at_the_deadline() {
    let status = status_of(
        task("test-faults", "spin"),
        Some(Duration::from_millis(300)),
    )
    .await;
    assert_eq!(
        status.code(),
        Code::DeadlineExceeded,
        "{}",
        status.message()
    );
    // ...and the host still serves.
    let mut client = env().host.client().await;
    let ok = run(&mut client, task("test-faults", "echo"), None, None)
        .await
        .unwrap();
    assert!(ok.output.starts_with("echo"));
}

#[tokio::test]
async fn trapping_adapter_is_internal_and_the_host_keeps_serving() {
    let status = status_of(task("test-faults", "trap"), None).await;
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().contains("trapped"), "{}", status.message());
    assert!(
        status
            .message()
            .contains("test-faults adapter asked to trap"),
        "the guest's panic message is reported: {}",
        status.message()
    );
    let mut client = env().host.client().await;
    for _ in 0..3 {
        let ok = run(&mut client, task("crewai", "after the trap"), None, None)
            .await
            .unwrap();
        assert_eq!(ok.output, "stub answer to: after the trap");
    }
}

#[tokio::test]
async fn destination_off_the_allow_list_is_refused_before_sending() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("call:http://{}/steal", listener.local_addr().unwrap());
    let status = status_of(task("test-faults", &target), None).await;
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("allow-list"),
        "{}",
        status.message()
    );
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn wrapper_unreachable_is_unavailable() {
    let (_, _, sink) = start_stub_and_sink().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let host = HostProcess::start(&url, &sink.grpc_endpoint(), &[]);
    let mut client = host.client().await;
    let status = run(&mut client, task("crewai", "x"), None, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("unreachable"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn oversized_wrapper_reply_is_refused() {
    let (_, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(
        &stub_url,
        &sink.grpc_endpoint(),
        &["--max-response-bytes", "65536"],
    );
    let mut client = host.client().await;
    let status = run(&mut client, task("crewai", "huge"), None, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal);
    assert!(
        status.message().contains("65536-byte cap"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn tasks_beyond_the_concurrency_limit_are_resource_exhausted() {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(
        &stub_url,
        &sink.grpc_endpoint(),
        &["--max-concurrent-tasks", "2"],
    );
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let channel = host.endpoint();
            tokio::spawn(async move {
                let mut client = FederationServiceClient::connect(channel).await.unwrap();
                run(&mut client, task("crewai", "slow:2000"), None, None).await
            })
        })
        .collect();
    // Both slow tasks hold their slots once the stub has seen them.
    for _ in 0..500 {
        if stub.requests_with_goal("slow:2000").len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(stub.requests_with_goal("slow:2000").len(), 2);
    let mut client = host.client().await;
    let refused = run(&mut client, task("test-faults", "echo"), None, None)
        .await
        .expect_err("a third task is refused while two are in flight");
    assert_eq!(
        refused.code(),
        Code::ResourceExhausted,
        "{}",
        refused.message()
    );
    assert!(refused.message().contains("limit"), "{}", refused.message());
    for handle in slow {
        handle
            .await
            .unwrap()
            .expect("the in-flight tasks still finish");
    }
    let after = run(&mut client, task("test-faults", "echo"), None, None).await;
    assert!(after.is_ok(), "slots are released: {after:?}");
}
