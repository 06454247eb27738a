//! StreamAgentTask through the real host and adapters to the recording stub wrapper:
//! the event sequence (numbering, trace id, progress relayed from the wrapper's NDJSON
//! stream, the final result or error), refusals before the start, a 0.1.0 adapter's
//! host-only events, oversized adapter events, a malformed or over-cap stream, a
//! dropped stream cancelling the wrapper's run, and WatchAgentTask rejoining a stream
//! with its own seq numbers.

mod support;

use std::time::Duration;

use federation_proto::task_event::Event;
use federation_proto::task_progress::Kind;
use federation_proto::{TaskEvent, TaskRequest};
use federation_testkit::process::stream_events;
use support::{env, task};
use tokio_stream::StreamExt;
use tonic::Code;

/// Streams `request` and collects every event until the stream ends.
async fn stream_all(request: TaskRequest) -> Result<Vec<TaskEvent>, tonic::Status> {
    stream_events(&mut env().host.client().await, request).await
}

fn kinds(events: &[TaskEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e.event.as_ref().unwrap() {
            Event::Started(_) => "started".to_string(),
            Event::Progress(p) => format!("{:?}", Kind::try_from(p.kind).unwrap()),
            Event::Completed(_) => "completed".to_string(),
            Event::InputRequired(_) => "input_required".to_string(),
            Event::Failed(f) => format!("failed:{:?}", Code::from_i32(f.code)),
        })
        .collect()
}

/// Every stream is numbered 1..n, has one trace id and task id, and starts with
/// `started`.
fn assert_well_formed(events: &[TaskEvent], request: &TaskRequest) {
    assert!(!events.is_empty());
    let trace_id = &events[0].trace_id;
    assert_eq!(trace_id.len(), 32, "{trace_id:?}");
    for (i, event) in events.iter().enumerate() {
        assert_eq!(event.seq, i as u64 + 1);
        assert_eq!(&event.trace_id, trace_id);
        assert!(event.at.is_some());
        assert_eq!(
            event.task_id,
            format!("{}/{}", request.federation_session_id, request.request_id)
        );
    }
    let Some(Event::Started(started)) = &events[0].event else {
        panic!("first event is not started: {:?}", events[0]);
    };
    assert_eq!(started.backend, request.backend);
    assert_eq!(started.request_id, request.request_id);
    assert_eq!(started.adapter_digest.len(), 64);
}

fn with_session(mut request: TaskRequest) -> TaskRequest {
    request.federation_session_id = format!("stream-{}", support::uuid_like());
    request
}

#[tokio::test]
async fn crewai_streams_the_wrappers_progress_then_the_result() {
    let request = with_session(task("crewai", "Stream a haiku"));
    let events = stream_all(request.clone()).await.unwrap();

    assert_well_formed(&events, &request);
    assert_eq!(
        kinds(&events),
        [
            "started",
            "Step",
            "LlmCall",
            "ToolCall",
            "Step",
            "CheckpointSaved",
            "completed"
        ]
    );
    let Some(Event::Started(started)) = &events[0].event else {
        unreachable!()
    };
    assert!(started.progress_events, "crewai imports progress");
    let Some(Event::Progress(step)) = &events[4].event else {
        unreachable!()
    };
    assert_eq!(step.message, "step research finished");
    let data = federation_proto::json::struct_to_json(step.data.as_ref().unwrap()).unwrap();
    assert_eq!(data["output"], "notes");
    let Some(Event::Progress(llm)) = &events[2].event else {
        unreachable!()
    };
    assert_eq!(llm.message, "LLM call by researcher (stub)");

    let Some(Event::Completed(response)) = &events.last().unwrap().event else {
        unreachable!()
    };
    assert_eq!(response.output, "stub answer to: Stream a haiku");
    assert_eq!(response.trace_id, events[0].trace_id);
    assert_eq!(
        response.federation_session_id,
        request.federation_session_id
    );
    // The wrapper was asked for its stream, once, in the same trace.
    let sent = env().stub.requests_for(&request.request_id);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].header("accept"), Some("application/x-ndjson"));
    assert!(
        sent[0]
            .header("traceparent")
            .unwrap()
            .contains(&events[0].trace_id)
    );
}

#[tokio::test]
async fn run_agent_task_still_makes_a_plain_request() {
    let mut client = env().host.client().await;
    let request = task("langgraph", "No one watches");
    let request_id = request.request_id.clone();
    client.run_agent_task(request).await.unwrap();
    let sent = env().stub.requests_for(&request_id);
    assert_eq!(sent[0].header("accept"), Some("application/json"));
}

#[tokio::test]
async fn a_failed_run_ends_the_stream_with_its_status() {
    let request = with_session(task("langgraph", "stream-fail:504"));
    let events = stream_all(request.clone()).await.unwrap();
    assert_well_formed(&events, &request);
    let Some(Event::Failed(failed)) = &events.last().unwrap().event else {
        panic!("{:?}", kinds(&events));
    };
    assert_eq!(Code::from_i32(failed.code), Code::DeadlineExceeded);
    assert!(
        failed.message.contains("stub run failed with 504"),
        "{}",
        failed.message
    );
    // The progress before the failure was delivered.
    assert!(kinds(&events).contains(&"CheckpointSaved".to_string()));

    let cancelled = stream_all(with_session(task("crewai", "stream-fail:499")))
        .await
        .unwrap();
    assert_eq!(kinds(&cancelled).last().unwrap(), "failed:Cancelled");
}

#[tokio::test]
async fn a_stream_cut_before_the_end_is_unavailable() {
    let events = stream_all(with_session(task("crewai", "stream-cut")))
        .await
        .unwrap();
    let Some(Event::Failed(failed)) = &events.last().unwrap().event else {
        panic!("{:?}", kinds(&events));
    };
    assert_eq!(Code::from_i32(failed.code), Code::Unavailable);
    assert!(failed.message.contains("ended before the run finished"));
}

#[tokio::test]
async fn a_line_that_is_not_an_event_is_internal() {
    let events = stream_all(with_session(task("crewai", "stream-garbage")))
        .await
        .unwrap();
    let Some(Event::Failed(failed)) = &events.last().unwrap().event else {
        panic!("{:?}", kinds(&events));
    };
    assert_eq!(Code::from_i32(failed.code), Code::Internal);
    assert!(
        failed.message.contains("not a JSON object"),
        "{}",
        failed.message
    );
    assert!(failed.message.contains("<html>"), "{}", failed.message);
}

#[tokio::test]
async fn a_stream_past_the_response_cap_is_cut_off() {
    let (_, stub_url, sink) = support::start_stub_and_sink().await;
    let cap = ["--max-response-bytes", "65536"];
    let host = support::HostProcess::start(&stub_url, &sink.grpc_endpoint(), &cap);
    let mut client = host.client().await;
    let request = with_session(task("crewai", "stream-big-event"));
    let events = stream_events(&mut client, request).await.unwrap();
    // The events before the oversized one were relayed; then the cap ended the run.
    assert!(kinds(&events).contains(&"CheckpointSaved".to_string()));
    let Some(Event::Failed(failed)) = &events.last().unwrap().event else {
        panic!("{:?}", kinds(&events));
    };
    assert_eq!(Code::from_i32(failed.code), Code::Internal);
    assert!(
        failed.message.contains("65536-byte cap"),
        "{}",
        failed.message
    );
}

#[tokio::test]
async fn an_error_before_the_stream_starts_is_an_event_too() {
    // The wrapper refuses the request itself (a plain JSON error, no stream).
    let events = stream_all(with_session(task("crewai", "status:409")))
        .await
        .unwrap();
    assert_eq!(kinds(&events), ["started", "failed:Aborted"]);
}

#[tokio::test]
async fn refusals_before_the_start_fail_the_call() {
    let unknown = stream_all(task("no-such-backend", "x")).await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let empty = stream_all(task("crewai", "")).await.unwrap_err();
    assert_eq!(empty.code(), Code::InvalidArgument);
    assert!(empty.metadata().get("x-trace-id").is_some());
}

#[tokio::test]
async fn an_adapter_built_against_contract_0_1_0_gets_host_events_only() {
    let request = with_session(task("test-faults", "echo"));
    let events = stream_all(request.clone()).await.unwrap();
    assert_well_formed(&events, &request);
    assert_eq!(kinds(&events), ["started", "completed"]);
    let Some(Event::Started(started)) = &events[0].event else {
        unreachable!()
    };
    assert!(!started.progress_events);

    let trapped = stream_all(with_session(task("test-faults", "trap")))
        .await
        .unwrap();
    assert_eq!(kinds(&trapped), ["started", "failed:Internal"]);
}

#[tokio::test]
async fn oversized_event_data_is_replaced_not_relayed() {
    let events = stream_all(with_session(task("crewai", "stream-big-event")))
        .await
        .unwrap();
    assert_eq!(kinds(&events).last().unwrap(), "completed");
    let dropped: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Progress(p)) => p.data.as_ref()?.fields.get("dropped").cloned(),
            _ => None,
        })
        .collect();
    assert_eq!(dropped.len(), 1, "{:?}", kinds(&events));
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_wrappers_run() {
    let request = with_session(task("crewai", "stream-slow:300"));
    let (session, request_id) = (
        request.federation_session_id.clone(),
        request.request_id.clone(),
    );
    let mut client = env().host.client().await;
    let mut stream = client
        .stream_agent_task(request)
        .await
        .unwrap()
        .into_inner();
    // Wait for the wrapper's first relayed event, then walk away.
    loop {
        let event = stream.next().await.unwrap().unwrap();
        if matches!(event.event, Some(Event::Progress(_))) {
            break;
        }
    }
    drop(stream);
    drop(client);
    let cancel_path = format!("/v1/sessions/{session}/runs/{request_id}/cancel");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while env().stub.requests_to(&cancel_path).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host never cancelled the wrapper's run"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_callers_deadline_ends_a_stream_with_deadline_exceeded() {
    let mut client = env().host.client().await;
    let mut request = tonic::Request::new(with_session(task("crewai", "stream-slow:400")));
    request.set_timeout(Duration::from_millis(1500));
    let mut stream = client
        .stream_agent_task(request)
        .await
        .unwrap()
        .into_inner();
    let mut last = None;
    while let Some(Ok(event)) = stream.next().await {
        last = event.event;
    }
    let Some(Event::Failed(failed)) = last else {
        panic!("the stream did not end with a failure: {last:?}");
    };
    assert_eq!(Code::from_i32(failed.code), Code::DeadlineExceeded);
}

/// WatchAgentTask's events of `task_id` after `after_seq`, until its stream ends.
async fn watch_all(task_id: &str, after_seq: u64) -> Result<Vec<TaskEvent>, tonic::Status> {
    let mut client = env().host.client().await;
    let mut stream = client
        .watch_agent_task(federation_proto::WatchAgentTaskRequest {
            task_id: task_id.into(),
            after_seq,
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event?);
    }
    Ok(events)
}

fn reason(failed: &federation_proto::TaskFailed) -> String {
    use tonic_types::RpcStatusExt;
    tonic_types::pb::Status {
        code: failed.code,
        message: failed.message.clone(),
        details: failed.details.clone(),
    }
    .get_error_details()
    .error_info()
    .map(|info| info.reason.clone())
    .unwrap_or_default()
}

#[tokio::test]
async fn watch_agent_task_rejoins_a_stream_with_its_own_numbers() {
    let request = with_session(task("langgraph", "rejoin me"));
    let events = stream_all(request.clone()).await.unwrap();
    let task_id = events[0].task_id.clone();
    let rejoined = watch_all(&task_id, 2).await.unwrap();
    // The same events from seq 3 on: same seq, kind, message, and final output.
    let seqs = |events: &[TaskEvent]| events.iter().map(|e| e.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&rejoined), seqs(&events[2..]));
    assert_eq!(kinds(&rejoined), kinds(&events[2..]));
    for (original, again) in events[2..].iter().zip(&rejoined) {
        if let (Some(Event::Progress(a)), Some(Event::Progress(b))) =
            (&original.event, &again.event)
        {
            assert_eq!(a.message, b.message);
            assert_eq!(a.data, b.data);
        }
        assert_eq!(original.trace_id, again.trace_id);
        assert_eq!(original.task_id, again.task_id);
    }
    let (Some(Event::Completed(a)), Some(Event::Completed(b))) = (
        &events.last().unwrap().event,
        &rejoined.last().unwrap().event,
    ) else {
        panic!("{:?} / {:?}", kinds(&events), kinds(&rejoined));
    };
    assert_eq!(a.output, b.output);
    assert_eq!(a.result, b.result);
    assert!(
        watch_all(&task_id, events.len() as u64)
            .await
            .unwrap()
            .is_empty()
    );

    // A failed run's rejoined `failed` event is the one the stream ended with.
    let failing = with_session(task("langgraph", "stream-fail:503"));
    let events = stream_all(failing).await.unwrap();
    let rejoined = watch_all(&events[0].task_id, 0).await.unwrap();
    assert_eq!(rejoined.len(), events.len());
    let (Some(Event::Failed(a)), Some(Event::Failed(b))) = (
        &events.last().unwrap().event,
        &rejoined.last().unwrap().event,
    ) else {
        panic!("{:?} / {:?}", kinds(&events), kinds(&rejoined));
    };
    assert_eq!((a.code, &a.message), (b.code, &b.message));
    assert_eq!(reason(a), "WRAPPER_UNAVAILABLE");
    assert_eq!(reason(b), reason(a));

    // A wrapper stream that ends before the last event: UNAVAILABLE, to watch again.
    let cut = stream_all(with_session(task("langgraph", "stream-cut")))
        .await
        .unwrap();
    let error = watch_all(&cut[0].task_id, 0).await.unwrap_err();
    assert_eq!(error.code(), Code::Unavailable, "{error:?}");
    assert!(
        error.message().contains("watch again after seq 6"),
        "{error:?}"
    );

    assert_eq!(
        watch_all("nobody/nothing", 0).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        watch_all("no-slash", 0).await.unwrap_err().code(),
        Code::InvalidArgument
    );
}
