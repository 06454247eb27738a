//! Every failure a caller can meet gets its own gRPC status with a readable message,
//! and none of them takes the host down.

mod support;

use std::time::Duration;

use federation_proto::TaskRequest;
use federation_proto::federation_service_client::FederationServiceClient;
use prost_types::{Struct, Value, value::Kind};
use support::{HostProcess, TEST_DEADLINE, env, run, start_stub_and_sink, task, unused_url};
use tonic::Code;

/// Sends `request` to `host` (the shared one when None) and asserts the status code
/// and that the message names each of `needles`.
async fn expect_status(
    host: Option<&HostProcess>,
    request: TaskRequest,
    timeout: Option<Duration>,
    code: Code,
    needles: &[&str],
) -> tonic::Status {
    let mut client = host.unwrap_or(&env().host).client().await;
    let status = run(&mut client, request, None, timeout)
        .await
        .expect_err("the task should fail");
    assert_eq!(status.code(), code, "{}", status.message());
    for needle in needles {
        assert!(
            status.message().contains(needle),
            "{needle:?} not in {:?}",
            status.message()
        );
    }
    status
}

/// The shared host still answers a healthy task.
async fn assert_still_serving() {
    let mut client = env().host.client().await;
    let ok = run(&mut client, task("crewai", "still there?"), None, None)
        .await
        .unwrap();
    assert_eq!(ok.output, "stub answer to: still there?");
}

#[tokio::test]
async fn unknown_backend_is_not_found() {
    // The message lists the loaded backends.
    expect_status(
        None,
        task("autogen", "x"),
        None,
        Code::NotFound,
        &["autogen", "crewai"],
    )
    .await;
}

#[tokio::test]
async fn missing_goal_is_invalid_argument() {
    expect_status(
        None,
        task("crewai", ""),
        None,
        Code::InvalidArgument,
        &["goal"],
    )
    .await;
}

#[tokio::test]
async fn missing_backend_is_invalid_argument() {
    expect_status(
        None,
        task("", "x"),
        None,
        Code::InvalidArgument,
        &["backend"],
    )
    .await;
}

#[tokio::test]
async fn unsafe_session_id_is_invalid_argument() {
    let mut request = task("crewai", "x");
    request.federation_session_id = "../../etc/passwd".into();
    expect_status(
        None,
        request,
        None,
        Code::InvalidArgument,
        &["federation_session_id"],
    )
    .await;
}

#[tokio::test]
async fn non_json_input_data_is_invalid_argument() {
    let mut request = task("crewai", "x");
    let infinity = Value {
        kind: Some(Kind::NumberValue(f64::INFINITY)),
    };
    request.input_data = Some(Struct {
        fields: [("ratio".to_string(), infinity)].into(),
    });
    expect_status(
        None,
        request,
        None,
        Code::InvalidArgument,
        &["input_data: ratio"],
    )
    .await;
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
        let message = format!("stub refuses with {http}");
        expect_status(
            None,
            task("crewai", &format!("status:{http}")),
            None,
            code,
            &[&message],
        )
        .await;
    }
}

#[tokio::test]
async fn wrapper_5xx_is_internal_with_a_body_excerpt() {
    let needles = ["HTTP 500", "boom in crew"];
    expect_status(
        None,
        task("langgraph", "status:500"),
        None,
        Code::Internal,
        &needles,
    )
    .await;
}

#[tokio::test]
async fn wrapper_reply_that_is_not_json_is_internal() {
    expect_status(
        None,
        task("crewai", "notjson"),
        None,
        Code::Internal,
        &["not JSON"],
    )
    .await;
}

#[tokio::test]
async fn slow_wrapper_past_the_deadline_is_deadline_exceeded() {
    let deadline = Some(TEST_DEADLINE);
    expect_status(
        None,
        task("crewai", "slow:5000"),
        deadline,
        Code::DeadlineExceeded,
        &[],
    )
    .await;
}

#[tokio::test]
async fn spinning_adapter_is_stopped_at_the_deadline() {
    let deadline = Some(TEST_DEADLINE);
    expect_status(
        None,
        task("test-faults", "spin"),
        deadline,
        Code::DeadlineExceeded,
        &[],
    )
    .await;
    assert_still_serving().await;
}

#[tokio::test]
async fn trapping_adapter_is_internal_and_the_host_keeps_serving() {
    // The guest's own panic message is reported.
    let needles = ["trapped", "test-faults adapter asked to trap"];
    expect_status(
        None,
        task("test-faults", "trap"),
        None,
        Code::Internal,
        &needles,
    )
    .await;
    for _ in 0..3 {
        assert_still_serving().await;
    }
}

#[tokio::test]
async fn destination_off_the_allow_list_is_refused_before_sending() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("call:http://{}/steal", listener.local_addr().unwrap());
    expect_status(
        None,
        task("test-faults", &target),
        None,
        Code::Internal,
        &["allow-list"],
    )
    .await;
    assert!(
        listener.accept().is_err(),
        "no connection reached the listener"
    );
}

#[tokio::test]
async fn wrapper_unreachable_is_unavailable() {
    let (_, _, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&unused_url(), &sink.grpc_endpoint(), &[]);
    expect_status(
        Some(&host),
        task("crewai", "x"),
        None,
        Code::Unavailable,
        &["unreachable"],
    )
    .await;
}

#[tokio::test]
async fn oversized_wrapper_reply_is_refused() {
    let (_, stub_url, sink) = start_stub_and_sink().await;
    let cap = ["--max-response-bytes", "65536"];
    let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &cap);
    expect_status(
        Some(&host),
        task("crewai", "huge"),
        None,
        Code::Internal,
        &["65536-byte cap"],
    )
    .await;
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

#[tokio::test]
async fn a_task_failing_after_its_adapter_answered_is_counted_and_traced_as_an_error() {
    // A host of its own, so the metrics hold this task alone.
    let (_, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&stub_url, &sink.grpc_endpoint(), &[]);
    let request = task("test-faults", "not-an-object");
    let request_id = request.request_id.clone();
    expect_status(
        Some(&host),
        request,
        None,
        Code::Internal,
        &["not a JSON object"],
    )
    .await;

    // The adapter span of the task says it failed, and with what.
    let span = sink
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|s| {
                s.name == "adapter test-faults"
                    && s.attr_str("federation.request_id") == Some(request_id.as_str())
            })
        })
        .await
        .expect("the adapter span reaches the collector")
        .into_iter()
        .find(|s| s.attr_str("federation.request_id") == Some(request_id.as_str()))
        .unwrap();
    assert_eq!(span.status_code, "error", "{span:#?}");
    assert_eq!(span.attr_str("error.type"), Some("Internal"), "{span:#?}");

    // The adapter's metrics count one task and one INTERNAL error, not a success.
    let faults = |p: &otlp_sink::MetricPoint| p.attr_str("adapter.name") == Some("test-faults");
    let counted = sink
        .wait_for_metrics(Duration::from_secs(15), |points| {
            points.iter().any(|p| {
                p.name == "federation.adapter.errors"
                    && faults(p)
                    && p.attr_str("error.type") == Some("INTERNAL")
                    && p.value == Some(1.0)
            })
        })
        .await;
    let points: Vec<_> = sink.metric_points().into_iter().filter(faults).collect();
    assert!(counted.is_ok(), "no INTERNAL error counted: {points:#?}");
    let tasks = points
        .iter()
        .filter(|p| p.name == "federation.adapter.tasks")
        .filter_map(|p| p.value)
        .fold(0.0, f64::max);
    assert_eq!(tasks, 1.0, "{points:#?}");
}

/// A hostile caller's over-long fields (a 10,000-character session id, request id,
/// agent, backend or metadata key) are refused with their own code, and the status
/// quotes bounded excerpts only: its details (`grpc-status-details-bin`, base64 on the
/// wire) and message (`grpc-message`) stay far below grpcio's 8 KiB of metadata, so a
/// standard client sees the code that was sent, not RESOURCE_EXHAUSTED.
#[tokio::test]
async fn over_long_fields_are_refused_with_bounded_details() {
    use tonic_types::StatusExt;
    let long = "s".repeat(10_000);
    let mut cases: Vec<(&str, TaskRequest, Code)> = Vec::new();
    let mut session = task("crewai", "x");
    session.federation_session_id = long.clone();
    cases.push(("federation_session_id", session, Code::InvalidArgument));
    let mut request_id = task("crewai", "x");
    request_id.request_id = long.clone();
    cases.push(("request_id", request_id, Code::InvalidArgument));
    let mut agent = task("crewai", "x");
    agent.agent = long.clone();
    cases.push(("agent", agent, Code::InvalidArgument));
    let mut metadata = task("crewai", "x");
    metadata.metadata.insert(long.clone(), "v".into());
    cases.push(("metadata", metadata, Code::InvalidArgument));
    cases.push(("backend", task(&long, "x"), Code::NotFound));
    let mut client = env().host.client().await;
    for (field, request, code) in cases {
        let status = run(&mut client, request, None, None)
            .await
            .expect_err("an over-long field is refused");
        assert_eq!(status.code(), code, "{field}: {}", status.message());
        let details_on_wire = status.details().len().div_ceil(3) * 4;
        assert!(
            details_on_wire < 4096,
            "{field}: grpc-status-details-bin is {details_on_wire} bytes"
        );
        // Percent-encoded at worst three bytes for one.
        assert!(
            status.message().len() * 3 < 4096,
            "{field}: grpc-message of {} bytes",
            status.message().len()
        );
        // The excerpt is there: the start of the value, marked as cut.
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        let quoted = info
            .metadata
            .get(field)
            .or_else(|| info.metadata.get("field"))
            .unwrap_or_else(|| panic!("{field}: {:?}", info.metadata));
        if field == "metadata" {
            // The key is quoted in the message and the field violation, cut short.
            let violation = &details.bad_request().expect("BadRequest").field_violations[0];
            assert!(
                violation.description.contains("\"sss") && violation.description.contains('…'),
                "{}",
                violation.description
            );
        } else {
            assert!(
                quoted.starts_with("sss") && quoted.ends_with('…'),
                "{field}: {quoted}"
            );
        }
        assert!(status.metadata().get("x-trace-id").is_some(), "{field}");
    }
    assert_still_serving().await;
}

/// A 10,000-character task id given to `GetAgentTask`, `CancelAgentTask` and
/// `WatchAgentTask` is refused INVALID_ARGUMENT (reason `INVALID_INPUT`, the field
/// `task_id` named in `BadRequest`) with a bounded status: the message quotes the id,
/// and the status carries the trace id, yet the trailers stay far below 8 KiB.
#[tokio::test]
async fn an_over_long_task_id_is_refused_with_bounded_details() {
    use federation_proto::{CancelAgentTaskRequest, GetAgentTaskRequest, WatchAgentTaskRequest};
    use tonic_types::StatusExt;
    let task_id = format!("{}/r-1", "s".repeat(10_000));
    let mut client = env().host.client().await;
    let statuses = [
        (
            "GetAgentTask",
            client
                .get_agent_task(GetAgentTaskRequest {
                    task_id: task_id.clone(),
                })
                .await
                .map(drop),
        ),
        (
            "CancelAgentTask",
            client
                .cancel_agent_task(CancelAgentTaskRequest {
                    task_id: task_id.clone(),
                })
                .await
                .map(drop),
        ),
        (
            "WatchAgentTask",
            client
                .watch_agent_task(WatchAgentTaskRequest {
                    task_id: task_id.clone(),
                    after_seq: 0,
                })
                .await
                .map(drop),
        ),
    ];
    for (call, result) in statuses {
        let status = result.expect_err("an over-long task id is refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{call}: {status:?}");
        // The message names the id, cut short.
        assert!(
            status.message().contains("task_id \"sss") && status.message().ends_with('…'),
            "{call}: {}",
            status.message()
        );
        let details_on_wire = status.details().len().div_ceil(3) * 4;
        assert!(
            details_on_wire < 4096,
            "{call}: grpc-status-details-bin is {details_on_wire} bytes"
        );
        assert!(
            status.message().len() * 3 < 4096,
            "{call}: grpc-message of {} bytes",
            status.message().len()
        );
        let details = status.get_error_details();
        let info = details.error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "INVALID_INPUT", "{call}");
        let violation = &details.bad_request().expect("BadRequest").field_violations[0];
        assert_eq!(violation.field, "task_id", "{call}");
        assert!(
            violation.description.len() < 1024,
            "{call}: {}",
            violation.description.len()
        );
        let trace_id = status.metadata().get("x-trace-id").expect("x-trace-id");
        assert_eq!(
            info.metadata.get("trace_id").map(String::as_str),
            trace_id.to_str().ok(),
            "{call}"
        );
    }
    assert_still_serving().await;
}
