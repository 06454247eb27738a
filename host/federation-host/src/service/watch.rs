//! `WatchAgentTask`: rejoins a task's events on any replica. The wrapper keeps each
//! run's events in its run record (shared store) and serves them after a seq; this
//! turns them into `TaskEvent`s with the wrapper's seq, which is the seq the task's
//! original `StreamAgentTask` gave them: that stream's `started` is the wrapper's
//! `started` (seq 1), the adapter passes on each progress event in order (seq 2, 3,
//! ...), and the last event follows the last progress event, as the wrapper's
//! terminal one does. Its `started` names the backend, version and digest of the
//! loaded adapter that serves the run's framework (as `StreamAgentTask`'s does), when
//! exactly one does or one is named after it.

use std::time::{Duration, SystemTime};

use futures::{StreamExt, stream};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use federation_proto::json::json_to_struct;
use federation_proto::{
    TaskEvent, TaskFailed, TaskProgress, TaskStarted, WatchAgentTaskRequest, task_event,
    task_progress,
};
use federation_runtime::{Adapter, AdapterRegistry};
use federation_wire::{End, Event, EventType, RunStatus, progress_message};

use super::background::{parse_task_id, response_from_reply, wrapper_failure};
use super::{Executor, Federation};
use crate::auth::Caller;
use crate::error::{TaskContext, TaskError, error_status, status_details};
use crate::telemetry::current_trace_id;

impl<E: Executor> Federation<E> {
    pub(super) async fn watch_agent_task(
        &self,
        request: Request<WatchAgentTaskRequest>,
    ) -> Result<Response<BoxStream<TaskEvent>>, Status> {
        let caller = Caller::of(&request);
        let WatchAgentTaskRequest { task_id, after_seq } = request.into_inner();
        let (session, request_id) = parse_task_id(&task_id)?;
        // Another principal's task started here is refused here; the wrapper refuses
        // the sessions it holds for another principal (403 → PERMISSION_DENIED).
        self.started
            .check_owner(&task_id, &caller.principal)
            .map_err(|error| error_status(error, &current_trace_id(), &TaskContext::default()))?;
        let events = self
            .runs
            .events(session, request_id, after_seq, &caller.principal)
            .await
            .map_err(Status::from)?;
        let context = TaskContext::of_run(session, request_id);
        let trace_id = current_trace_id();
        // Ends after the last event; a wrapper stream that stops before it (the wrapper
        // went away) ends the call UNAVAILABLE, so the watcher knows to rejoin; one with
        // nothing after `after_seq` of a run that has ended ends OK (the watcher saw
        // its last event already).
        let runs = self.runs.clone();
        let registry = self.registry.clone();
        let principal = caller.principal.clone();
        let state = (events.boxed(), task_id, context, after_seq, false);
        let stream = stream::unfold(state, move |(mut events, task_id, context, last, done)| {
            let runs = runs.clone();
            let registry = registry.clone();
            let principal = principal.clone();
            let trace_id = trace_id.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    let item = match events.next().await {
                        None if last == after_seq
                            && runs
                                .status(
                                    &context.federation_session_id,
                                    &context.request_id,
                                    &principal,
                                )
                                .await
                                .is_ok_and(|record| {
                                    !matches!(
                                        record.status,
                                        RunStatus::Submitted | RunStatus::Working
                                    )
                                }) =>
                        {
                            return None;
                        }
                        None => {
                            let error = TaskError::StreamEnded {
                                task_id: task_id.clone(),
                                last_seq: last,
                            };
                            Err(error_status(error, &trace_id, &context))
                        }
                        Some(Err(error)) => Err(Status::from(error)),
                        Some(Ok(event)) => {
                            let (seq, terminal) = (event.seq, event.kind.is_terminal());
                            let event = task_event(&task_id, &context, &registry, event);
                            let Some(event) = event else {
                                continue; // a type this host does not know
                            };
                            return Some((Ok(event), (events, task_id, context, seq, terminal)));
                        }
                    };
                    return Some((item, (events, task_id, context, last, true)));
                }
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The gRPC event of one of the wrapper's events (`None` for a type it does not know).
fn task_event(
    task_id: &str,
    context: &TaskContext,
    registry: &AdapterRegistry,
    event: Event,
) -> Option<TaskEvent> {
    let at = SystemTime::UNIX_EPOCH + Duration::from_millis(event.ts);
    let (seq, trace_id) = (event.seq, event.trace_id.clone());
    let text = |key: &str| {
        event
            .data
            .get(key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let kind = match event.kind {
        EventType::Started => {
            let adapter = adapter_of_framework(registry, &text("framework"));
            task_event::Event::Started(TaskStarted {
                backend: adapter
                    .as_ref()
                    .map(|a| a.info.name.clone())
                    .unwrap_or_default(),
                adapter_version: adapter
                    .as_ref()
                    .map(|a| a.info.version.clone())
                    .unwrap_or_default(),
                adapter_digest: adapter.map(|a| a.digest.clone()).unwrap_or_default(),
                federation_session_id: context.federation_session_id.clone(),
                request_id: context.request_id.clone(),
                progress_events: true,
            })
        }
        EventType::Step | EventType::LlmCall | EventType::ToolCall | EventType::CheckpointSaved => {
            let kind = match event.kind {
                EventType::Step => task_progress::Kind::Step,
                EventType::LlmCall => task_progress::Kind::LlmCall,
                EventType::ToolCall => task_progress::Kind::ToolCall,
                _ => task_progress::Kind::CheckpointSaved,
            };
            task_event::Event::Progress(TaskProgress {
                kind: kind as i32,
                message: progress_message(event.kind, &event.data).unwrap_or_default(),
                data: Some(json_to_struct(event.data)),
            })
        }
        EventType::Completed | EventType::Failed | EventType::Canceled => {
            let agent = text("agent");
            match event.end()? {
                End::Completed(reply) => {
                    let reply = reply.unwrap_or_default();
                    let input_required =
                        reply.get("status").and_then(|v| v.as_str()) == Some("input_required");
                    let response = response_from_reply(
                        reply,
                        input_required,
                        agent,
                        &context.federation_session_id,
                        &context.request_id,
                        &trace_id,
                    );
                    if input_required {
                        task_event::Event::InputRequired(response)
                    } else {
                        task_event::Event::Completed(response)
                    }
                }
                End::Failed(error) => {
                    let status = wrapper_failure(error, &trace_id, context);
                    task_event::Event::Failed(TaskFailed {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                        details: status_details(&status),
                    })
                }
            }
        }
        EventType::Unknown => return None,
    };
    Some(TaskEvent {
        seq,
        trace_id,
        task_id: task_id.to_string(),
        at: Some(at.into()),
        event: Some(kind),
    })
}

/// The loaded adapter that serves `framework`: the one named after it, else the only
/// one whose `describe` names it.
fn adapter_of_framework(
    registry: &AdapterRegistry,
    framework: &str,
) -> Option<std::sync::Arc<Adapter>> {
    if framework.is_empty() {
        return None;
    }
    if let Some(adapter) = registry
        .get(framework)
        .filter(|a| a.info.framework == framework)
    {
        return Some(adapter);
    }
    let mut serving = registry
        .snapshot()
        .into_iter()
        .map(|(_, slot)| slot.current)
        .filter(|a| a.info.framework == framework);
    match (serving.next(), serving.next()) {
        (Some(only), None) => Some(only),
        _ => None,
    }
}
