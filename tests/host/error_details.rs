//! Every error carries `google.rpc` details a caller can act on: an `ErrorInfo` with
//! a stable reason (domain `federation.v1`) and what is known of the task, `RetryInfo`
//! where a retry helps, `BadRequest` for an invalid field, and the trace id
//! (`x-trace-id`), size-limit refusals included (docs/errors.md).

mod support;

use std::time::Duration;

use federation_proto::TaskRequest;
use prost_types::{Struct, Value, value::Kind};
use support::{
    HostProcess, TEST_DEADLINE, env, run, start_stub_and_sink, stub_wrapper, task, unused_url,
};
use tonic::Code;
use tonic_types::{ErrorDetails, StatusExt};

/// Runs `request` on the shared host and returns its error with its details, after
/// checking the code, the reason, the domain and the trace id.
async fn refused(
    host: Option<&HostProcess>,
    request: TaskRequest,
    code: Code,
    reason: &str,
) -> (tonic::Status, ErrorDetails) {
    let mut client = host.unwrap_or(&env().host).client().await;
    let status = run(&mut client, request, None, None)
        .await
        .expect_err("the task should fail");
    assert_eq!(status.code(), code, "{reason}: {}", status.message());
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, reason, "{}", status.message());
    assert_eq!(info.domain, "federation.v1");
    let trace_id = status
        .metadata()
        .get("x-trace-id")
        .expect("x-trace-id")
        .to_str()
        .unwrap()
        .to_string();
    assert_eq!(trace_id.len(), 32, "{trace_id}");
    assert_eq!(info.metadata["trace_id"], trace_id);
    (status, details)
}

fn retry_delay(details: &ErrorDetails) -> Option<Duration> {
    details.retry_info().and_then(|r| r.retry_delay)
}

#[tokio::test]
async fn every_wrapper_error_code_has_its_reason() {
    for (code, http) in stub_wrapper::WRAPPER_ERRORS {
        let (reason, grpc, retry) = match *code {
            "internal" => ("WRAPPER_INTERNAL", Code::Internal, None),
            "bad_request" | "invalid_input" => ("INVALID_INPUT", Code::InvalidArgument, None),
            "payload_too_large" => ("PAYLOAD_TOO_LARGE", Code::ResourceExhausted, None),
            "session_busy" => ("SESSION_BUSY", Code::Aborted, Some(1)),
            "store_unavailable" => ("STORE_UNAVAILABLE", Code::Unavailable, Some(1)),
            "llm_failure" => ("LLM_FAILURE", Code::Internal, None),
            "run_not_found" => ("RUN_NOT_FOUND", Code::NotFound, None),
            "request_id_reused" => ("REQUEST_ID_REUSED", Code::FailedPrecondition, None),
            "canceled" => ("CANCELED", Code::Cancelled, None),
            "run_superseded" => ("RUN_SUPERSEDED", Code::Aborted, None),
            "deadline_exceeded" => ("DEADLINE_EXCEEDED", Code::DeadlineExceeded, None),
            "shutting_down" => ("WRAPPER_SHUTTING_DOWN", Code::Unavailable, Some(1)),
            "overloaded" => (
                "OVERLOADED",
                Code::Unavailable,
                Some(stub_wrapper::OVERLOADED_RETRY_AFTER_SECS),
            ),
            "agent_not_found" => ("AGENT_NOT_FOUND", Code::NotFound, None),
            "no_pending_interrupt" => ("NO_PENDING_INTERRUPT", Code::FailedPrecondition, None),
            "input_required" => ("INPUT_REQUIRED", Code::FailedPrecondition, None),
            other => panic!("no expectation for wrapper code {other}"),
        };
        // crewai posts and reads JSON; langgraph reads the wrapper's progress stream.
        for backend in ["crewai", "langgraph"] {
            let mut request = task(backend, &format!("wrapper-error:{code}"));
            request.federation_session_id = format!("s-{}", request.request_id);
            let session = request.federation_session_id.clone();
            let (status, details) = refused(None, request, grpc, reason).await;
            let info = details.error_info().unwrap();
            assert_eq!(info.metadata["wrapper_code"], *code, "{backend} {code}");
            assert_eq!(info.metadata["http_status"], http.to_string());
            assert_eq!(info.metadata["backend"], backend);
            assert_eq!(info.metadata["federation_session_id"], session);
            assert!(
                status
                    .message()
                    .contains(&format!("stub wrapper error {code}")),
                "{}",
                status.message()
            );
            assert!(!status.message().contains('['), "{}", status.message());
            assert_eq!(
                retry_delay(&details),
                retry.map(Duration::from_secs),
                "{backend} {code}"
            );
        }
    }
}

#[tokio::test]
async fn host_refusals_name_their_reason() {
    let (_, details) = refused(
        None,
        task("autogen", "x"),
        Code::NotFound,
        "BACKEND_NOT_FOUND",
    )
    .await;
    assert_eq!(details.error_info().unwrap().metadata["backend"], "autogen");

    let (_, details) = refused(
        None,
        task("test-faults", "trap"),
        Code::Internal,
        "ADAPTER_TRAP",
    )
    .await;
    assert_eq!(
        details.error_info().unwrap().metadata["adapter"],
        "test-faults"
    );
    assert_eq!(retry_delay(&details), None);

    let mut client = env().host.client().await;
    let status = run(
        &mut client,
        task("crewai", "slow:5000"),
        None,
        Some(TEST_DEADLINE),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded);
    let details = status.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "DEADLINE_EXCEEDED");
}

/// The field of the one `BadRequest` violation of `request`'s refusal.
async fn invalid_field(request: TaskRequest) -> String {
    let (_, details) = refused(None, request, Code::InvalidArgument, "INVALID_INPUT").await;
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert!(!violations[0].description.is_empty());
    violations[0].field.clone()
}

#[tokio::test]
async fn invalid_fields_are_named_in_bad_request() {
    assert_eq!(invalid_field(task("crewai", "")).await, "goal");
    let mut request = task("crewai", "x");
    request.federation_session_id = "../etc".into();
    assert_eq!(invalid_field(request).await, "federation_session_id");
    let mut request = task("crewai", "x");
    let infinity = Value {
        kind: Some(Kind::NumberValue(f64::INFINITY)),
    };
    request.input_data = Some(Struct {
        fields: [("topic".to_string(), infinity)].into(),
    });
    assert_eq!(invalid_field(request).await, "input_data.topic");
}

#[tokio::test]
async fn an_oversized_message_is_resource_exhausted_with_a_trace_id() {
    // Over tonic's 4 MiB default decoding limit.
    let request = task("crewai", &"x".repeat(5 << 20));
    let (status, _) = refused(None, request, Code::ResourceExhausted, "MESSAGE_TOO_LARGE").await;
    assert!(
        status.message().contains("too large"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn deeply_nested_input_data_is_invalid_argument() {
    let mut value = Value {
        kind: Some(Kind::StringValue("leaf".into())),
    };
    for _ in 0..120 {
        value = Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [("a".to_string(), value)].into(),
            })),
        };
    }
    let mut request = task("crewai", "x");
    request.input_data = Some(Struct {
        fields: [("topic".to_string(), value)].into(),
    });
    let (_, details) = refused(None, request, Code::InvalidArgument, "INVALID_INPUT").await;
    assert!(details.bad_request().is_some());
}

#[tokio::test]
async fn an_unreachable_wrapper_is_retryable() {
    let (_stub, _, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&unused_url(), &sink.grpc_endpoint(), &[]);
    let (_, details) = refused(
        Some(&host),
        task("crewai", "x"),
        Code::Unavailable,
        "WRAPPER_UNAVAILABLE",
    )
    .await;
    assert_eq!(retry_delay(&details), Some(Duration::from_secs(1)));
}

/// The details of a `failed` event or a task status, decoded as a status's would be.
fn details_of(code: i32, details: &[prost_types::Any]) -> ErrorDetails {
    use tonic_types::RpcStatusExt;
    tonic_types::pb::Status {
        code,
        message: String::new(),
        details: details.to_vec(),
    }
    .get_error_details()
}

#[tokio::test]
async fn a_streams_failed_event_carries_the_details_of_the_error() {
    use federation_proto::task_event::Event;
    for (goal, reason, retry) in [
        ("wrapper-error:session_busy", "SESSION_BUSY", Some(1)),
        (
            "wrapper-error:overloaded",
            "OVERLOADED",
            Some(stub_wrapper::OVERLOADED_RETRY_AFTER_SECS),
        ),
        ("wrapper-error:run_superseded", "RUN_SUPERSEDED", None),
    ] {
        let mut request = task("langgraph", goal);
        request.federation_session_id = format!("s-{}", request.request_id);
        let mut client = env().host.client().await;
        let events = federation_testkit::process::stream_events(&mut client, request.clone())
            .await
            .unwrap();
        let last = events.last().unwrap();
        let Some(Event::Failed(failed)) = &last.event else {
            panic!("{goal}: {last:?}");
        };
        let details = details_of(failed.code, &failed.details);
        let info = details.error_info().expect("an ErrorInfo");
        assert_eq!(info.reason, reason, "{goal}");
        assert_eq!(info.domain, "federation.v1");
        assert_eq!(info.metadata["trace_id"], last.trace_id);
        assert_eq!(info.metadata["request_id"], request.request_id);
        assert_eq!(info.metadata["backend"], "langgraph");
        assert_eq!(
            retry_delay(&details),
            retry.map(Duration::from_secs),
            "{goal}"
        );
    }
}

#[tokio::test]
async fn a_failed_background_task_reports_the_details_of_its_error() {
    use federation_proto::GetAgentTaskRequest;
    use federation_proto::agent_task_status::State;
    let mut request = task("crewai", "wrapper-error:session_busy");
    request.federation_session_id = format!("s-{}", request.request_id);
    let mut client = env().host.client().await;
    let task_id = client
        .start_agent_task(request.clone())
        .await
        .unwrap()
        .into_inner()
        .task_id;
    let status = loop {
        let status = client
            .get_agent_task(GetAgentTaskRequest {
                task_id: task_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if status.state() != State::Working {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(status.state(), State::Failed, "{status:?}");
    assert_eq!(Code::from(status.error_code), Code::Aborted);
    let details = details_of(status.error_code, &status.error_details);
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "SESSION_BUSY");
    assert_eq!(info.metadata["trace_id"], status.trace_id);
    assert_eq!(retry_delay(&details), Some(Duration::from_secs(1)));
}
