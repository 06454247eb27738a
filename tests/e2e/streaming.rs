//! StreamAgentTask against the real wrapper running a real crew and a real graph: the
//! wrapper's progress (steps, LLM calls, checkpoints) arrives through the adapter and
//! the host in order, numbered, in the orchestrator's trace, and ends with the result;
//! one LLM_CALL event per LLM span; a stream dropped mid-crew cancels the run.

use std::time::Duration;

use federation_proto::task_event::Event;
use federation_proto::task_progress::Kind;
use federation_proto::{TaskEvent, TaskRequest};
use tokio_stream::StreamExt;

use crate::processes::Stack;
use crate::task_api::{is_llm, llm_spans, wait_for_run_end};
use crate::{orchestrator_traceparent, request};

async fn stream(
    stack: &Stack,
    request: TaskRequest,
    traceparent: &str,
) -> tonic::Streaming<TaskEvent> {
    let mut client = stack.client().await;
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(120));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().unwrap());
    client
        .stream_agent_task(request)
        .await
        .unwrap()
        .into_inner()
}

fn progress_kinds(events: &[TaskEvent]) -> Vec<Kind> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Progress(p)) => Some(Kind::try_from(p.kind).unwrap()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_crew_and_a_graph_stream_their_progress_then_the_result() {
    let stack = Stack::start().await;
    for (seed, backend) in [(201, "crewai"), (202, "langgraph")] {
        let (tp, trace_id, _) = orchestrator_traceparent(seed);
        let session = format!("e2e-stream-{backend}");
        let mut events = Vec::new();
        let mut stream = stream(&stack, request(backend, "Explain streaming", &session), &tp).await;
        while let Some(event) = stream.next().await {
            events.push(event.unwrap());
        }

        for (i, event) in events.iter().enumerate() {
            assert_eq!(event.seq, i as u64 + 1, "{backend}: numbered without gaps");
            assert_eq!(
                event.trace_id, trace_id,
                "{backend}: the orchestrator's trace"
            );
        }
        assert!(matches!(events[0].event, Some(Event::Started(ref s)) if s.progress_events));
        let Some(Event::Completed(response)) = &events.last().unwrap().event else {
            panic!(
                "{backend}: last event is not completed: {:?}",
                events.last()
            );
        };
        assert!(!response.output.is_empty());
        assert_eq!(response.trace_id, trace_id);
        assert_eq!(response.federation_session_id, session);

        // The wrapper's own progress came through, in the order it happened: a step
        // starts before its LLM call, and the state is saved after the step.
        let kinds = progress_kinds(&events);
        let first = |kind| kinds.iter().position(|k| *k == kind);
        let (step, llm, saved) = (
            first(Kind::Step).expect("a step event"),
            first(Kind::LlmCall).expect("an LLM call event"),
            first(Kind::CheckpointSaved).expect("a checkpoint event"),
        );
        assert!(step < llm && llm < saved, "{backend}: {kinds:?}");
        // One LLM_CALL event per LLM call the wrapper traced.
        let llm_events = kinds.iter().filter(|k| **k == Kind::LlmCall).count();
        assert_eq!(
            llm_events,
            llm_spans(&stack, &trace_id).await.len(),
            "{backend}: {kinds:?}"
        );
    }
}

#[tokio::test]
async fn dropping_the_stream_mid_crew_cancels_the_run() {
    let stack = Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "400")]).await;
    let (tp, trace_id, _) = orchestrator_traceparent(203);
    let mut request = request("crewai", "Stream then hang up", "e2e-stream-cancel");
    request.request_id = "stream-cancel-1".into();
    let mut stream = stream(&stack, request, &tp).await;
    // Hang up after the first LLM call is reported.
    while let Some(event) = stream.next().await {
        if matches!(&event.unwrap().event, Some(Event::Progress(p)) if p.kind == Kind::LlmCall as i32)
        {
            break;
        }
    }
    drop(stream);

    let ended = wait_for_run_end(&stack, "e2e-stream-cancel", "stream-cancel-1").await;
    assert_eq!(ended, "canceled", "{}", stack.host_log());
    let settled = llm_spans(&stack, &trace_id).await.len();
    assert!(settled >= 1);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spans = stack.sink.trace(&trace_id);
    assert_eq!(
        spans.iter().filter(|s| is_llm(s)).count(),
        settled,
        "LLM calls went on after the stream was dropped"
    );
}
