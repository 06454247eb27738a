//! The task API beyond one blocking call, against the real wrapper running a real crew:
//! a retried request id runs the crew once; a deadline shorter than the run ends with
//! DEADLINE_EXCEEDED and the wrapper stops; a caller that goes away gets its run
//! cancelled (no LLM call after that) with its saved state kept; Start/Get/Cancel.

use std::time::{Duration, Instant};

use federation_proto::agent_task_status::State;
use federation_proto::{CancelAgentTaskRequest, GetAgentTaskRequest, TaskRequest};
use otlp_sink::RecordedSpan;

use crate::processes::Stack;
use crate::{call, orchestrator_traceparent, request};

/// Every wrapper step sleeps this long first, so a crew takes seconds (test-only knob).
const STEP_DELAY_MS: &str = "400";

pub fn is_llm(span: &RecordedSpan) -> bool {
    span.attributes
        .get("openinference.span.kind")
        .and_then(|v| v.as_str())
        == Some("LLM")
}

/// LLM spans of one trace received so far (after letting batches land).
pub async fn llm_spans(stack: &Stack, trace_id: &str) -> Vec<RecordedSpan> {
    tokio::time::sleep(Duration::from_millis(600)).await;
    stack
        .sink
        .trace(trace_id)
        .into_iter()
        .filter(is_llm)
        .collect()
}

fn with_ids(backend: &str, goal: &str, session: &str, request_id: &str) -> TaskRequest {
    TaskRequest {
        request_id: request_id.into(),
        ..request(backend, goal, session)
    }
}

#[tokio::test]
async fn a_retried_request_id_runs_the_crew_once() {
    let stack = Stack::start().await;
    let ask = || with_ids("crewai", "Summarise idempotency", "e2e-retry", "retry-1");
    let (tp1, trace1, _) = orchestrator_traceparent(101);
    let first = call(&stack, ask(), Some(&tp1)).await.unwrap();
    let (tp2, trace2, _) = orchestrator_traceparent(102);
    let second = call(&stack, ask(), Some(&tp2)).await.unwrap();
    assert_eq!(first.output, second.output);
    assert!(
        !llm_spans(&stack, &trace1).await.is_empty(),
        "the first call ran the crew"
    );
    assert!(
        llm_spans(&stack, &trace2).await.is_empty(),
        "the retry called the LLM again"
    );

    // The same id with a different request is refused, not run.
    let status = call(
        &stack,
        with_ids("crewai", "Something else", "e2e-retry", "retry-1"),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("request_id"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn a_deadline_shorter_than_the_run_stops_the_wrapper_too() {
    let stack =
        Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", STEP_DELAY_MS)]).await;
    let (tp, trace_id, _) = orchestrator_traceparent(103);
    let mut client = stack.client().await;
    let mut req = tonic::Request::new(with_ids(
        "crewai",
        "Run out of time",
        "e2e-deadline",
        "deadline-1",
    ));
    req.set_timeout(Duration::from_millis(1500));
    req.metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    let status = client.run_agent_task(req).await.unwrap_err();
    assert_eq!(
        status.code(),
        tonic::Code::DeadlineExceeded,
        "{}",
        status.message()
    );

    // The wrapper got the deadline (and a cancel): its run ends and no LLM call
    // starts afterwards.
    let ended = wait_for_run_end(&stack, "e2e-deadline", "deadline-1").await;
    assert!(ended == "failed" || ended == "canceled", "{ended}");
    let settled = llm_spans(&stack, &trace_id).await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        llm_spans(&stack, &trace_id).await.len(),
        settled,
        "LLM calls went on"
    );
}

#[tokio::test]
async fn a_caller_that_goes_away_cancels_the_run_and_keeps_its_state() {
    let stack =
        Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", STEP_DELAY_MS)]).await;
    let (tp, trace_id, _) = orchestrator_traceparent(104);
    let request = with_ids("crewai", "Be interrupted", "e2e-cancel", "cancel-1");
    let mut client = stack.client().await;
    let call = tokio::spawn(async move {
        let mut req = tonic::Request::new(request);
        req.set_timeout(Duration::from_secs(60));
        req.metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
        client.run_agent_task(req).await
    });
    // Wait until the crew has made progress, then hang up.
    stack
        .sink
        .wait_for(Duration::from_secs(30), |spans| {
            spans.iter().any(|s| s.trace_id == trace_id && is_llm(s))
        })
        .await
        .unwrap();
    call.abort();
    let cancelled_at = Instant::now();

    let ended = wait_for_run_end(&stack, "e2e-cancel", "cancel-1").await;
    assert_eq!(ended, "canceled", "{}", stack.host_log());
    let settled = llm_spans(&stack, &trace_id).await.len();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        llm_spans(&stack, &trace_id).await.len(),
        settled,
        "LLM calls went on after the cancel"
    );
    assert!(cancelled_at.elapsed() < Duration::from_secs(30));

    // What was saved before the cancel is resumed by the next task in the session.
    let resumed = crate::call(
        &stack,
        with_ids("crewai", "Be interrupted", "e2e-cancel", "cancel-2"),
        None,
    )
    .await
    .unwrap();
    assert!(resumed.resumed, "the saved state was not resumed");
}

#[tokio::test]
async fn started_tasks_report_their_status_and_can_be_cancelled() {
    let stack = Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "50")]).await;
    let mut client = stack.client().await;
    let started = client
        .start_agent_task(request("langgraph", "Run in the background", "e2e-async"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.task_id, format!("e2e-async/{}", started.request_id));
    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let status = client
            .get_agent_task(GetAgentTaskRequest {
                task_id: started.task_id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        match status.state() {
            State::Completed => break status,
            State::Submitted | State::Working => {}
            other => panic!("task ended {other:?}: {status:?}"),
        }
        assert!(
            Instant::now() < deadline,
            "the started task never completed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let response = done.response.unwrap();
    assert!(!response.output.is_empty());
    assert_eq!(done.trace_id, started.trace_id);

    // Unknown and malformed ids.
    let status = client
        .get_agent_task(GetAgentTaskRequest {
            task_id: "e2e-async/never-started".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound);
    let status = client
        .get_agent_task(GetAgentTaskRequest {
            task_id: "no-slash".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);

    // A slow one, cancelled.
    let slow =
        Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", STEP_DELAY_MS)]).await;
    let mut client = slow.client().await;
    let started = client
        .start_agent_task(request("crewai", "Cancel me", "e2e-async-cancel"))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let cancelled = client
        .cancel_agent_task(CancelAgentTaskRequest {
            task_id: started.task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(cancelled.state(), State::Canceled, "{cancelled:?}");
    let ended = wait_for_run_end(&slow, "e2e-async-cancel", &started.request_id).await;
    assert_eq!(ended, "canceled");
}

/// Polls the wrapper's run record until the run is no longer active; its status. Asks
/// as the principal the host names without caller authentication (`local`): the session
/// is that principal's, and the wrapper answers its owner only.
pub async fn wait_for_run_end(stack: &Stack, session: &str, request_id: &str) -> String {
    let url = format!(
        "{}/v1/sessions/{session}/runs/{request_id}",
        stack.wrapper_url()
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let record = tokio::task::spawn_blocking({
            let url = url.clone();
            move || http_get_json(&url)
        })
        .await
        .unwrap();
        if let Some(status) = record.as_ref().and_then(|r| r["status"].as_str())
            && !matches!(status, "submitted" | "working")
        {
            return status.to_string();
        }
        assert!(
            Instant::now() < deadline,
            "run {session}/{request_id} never ended: {record:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A plain HTTP/1.0 GET returning the JSON body of a 200 answer.
fn http_get_json(url: &str) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest.split_once('/')?;
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    write!(
        stream,
        "GET /{path} HTTP/1.0\r\nHost: {authority}\r\nx-federation-principal: local\r\n\r\n"
    )
    .ok()?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply).ok()?;
    let (head, body) = reply.split_once("\r\n\r\n")?;
    if !head.contains(" 200 ") {
        return None;
    }
    serde_json::from_str(body).ok()
}
