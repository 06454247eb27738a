//! `StreamAgentTask`: the task runs beside a stream of its events: `started`, the
//! adapter's progress events (checked by `federation_runtime::progress`) as they come,
//! then exactly one `completed`, `input_required` or `failed`, numbered without gaps.
//! Dropping the stream cancels the task like a dropped `RunAgentTask`, unless the
//! request asks it to go on (`on_disconnect` CONTINUE): then `WatchAgentTask` rejoins it.

use std::time::SystemTime;

use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};
use tracing::Instrument;

use federation_proto::json::json_to_struct;
use federation_proto::{
    TaskEvent, TaskFailed, TaskProgress, TaskRequest, TaskStarted, task_event, task_progress,
    task_request, task_response,
};
use federation_runtime::bindings::EventKind;
use federation_runtime::{Progress, ProgressSink};

use super::{Executor, Federation, task_id};
use crate::auth::Caller;
use crate::deadline::arrival_and_budget;
use crate::error::{TaskContext, answer, error_status, status_details};
use crate::telemetry::current_trace_id;

impl<E: Executor> Federation<E> {
    pub(super) async fn stream_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<BoxStream<TaskEvent>>, Status> {
        let (received, budget) = arrival_and_budget(&request, self.config.default_task_timeout);
        let trace_id = current_trace_id();
        // Refusals before the task starts fail the call itself.
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let context = TaskContext::of(&request);
        let keep_running = request.on_disconnect() == task_request::OnDisconnect::Continue;
        let admitted = self
            .admit(request, &caller, budget)
            .map_err(|error| error_status(error, &trace_id, &context))?;
        let task_id = task_id(
            &admitted.task.federation_session_id,
            &admitted.task.request_id,
        );
        let started = task_event::Event::Started(TaskStarted {
            backend: admitted.adapter.info.name.clone(),
            adapter_version: admitted.adapter.info.version.clone(),
            adapter_digest: admitted.adapter.digest.clone(),
            federation_session_id: admitted.task.federation_session_id.clone(),
            request_id: admitted.task.request_id.clone(),
            progress_events: admitted.adapter.reports_progress,
        });
        let started = (SystemTime::now(), started);
        let (sink, progress) = ProgressSink::channel();
        let (last_tx, last) = tokio::sync::oneshot::channel();
        let this = self.clone();
        let final_trace_id = trace_id.clone();
        // The task runs beside the stream, in the server span (which it keeps open
        // until the last event); dropping the stream (the caller cancelled or went
        // away) aborts it, which cancels the wrapper's run like a dropped RunAgentTask.
        // Its progress channel closes when the run ends, so the last event comes after
        // every progress event.
        let task = tokio::spawn(
            async move {
                let result = this.execute(admitted, received, Some(sink)).await;
                let last = match answer(result, final_trace_id, &context) {
                    Ok(response) if response.state() == task_response::State::InputRequired => {
                        task_event::Event::InputRequired(response)
                    }
                    Ok(response) => task_event::Event::Completed(response),
                    Err(status) => task_event::Event::Failed(TaskFailed {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                        details: status_details(&status),
                    }),
                };
                let _ = last_tx.send((SystemTime::now(), last));
            }
            .instrument(tracing::Span::current()),
        );
        let abort_on_drop = AbortOnDrop(task, !keep_running);
        let progress = ReceiverStream::new(progress).map(|stamped| {
            let event = task_event::Event::Progress(progress_event(stamped.progress));
            (stamped.at, event)
        });
        let events = tokio_stream::once(started)
            .chain(progress)
            .chain(futures::stream::once(last).filter_map(Result::ok));
        let mut seq = 0;
        let stream = events.map(move |(at, event)| {
            let _task = &abort_on_drop;
            seq += 1;
            Ok(TaskEvent {
                seq,
                trace_id: trace_id.clone(),
                task_id: task_id.clone(),
                at: Some(at.into()),
                event: Some(event),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// The gRPC form of an adapter's (checked) progress event.
fn progress_event(progress: Progress) -> TaskProgress {
    let kind = match progress.kind {
        EventKind::Step => task_progress::Kind::Step,
        EventKind::LlmCall => task_progress::Kind::LlmCall,
        EventKind::ToolCall => task_progress::Kind::ToolCall,
        EventKind::CheckpointSaved => task_progress::Kind::CheckpointSaved,
    };
    TaskProgress {
        kind: kind as i32,
        message: progress.message,
        data: Some(json_to_struct(progress.data)),
    }
}

/// Aborts a spawned task when dropped, if armed (else the task runs to its end).
struct AbortOnDrop(tokio::task::JoinHandle<()>, bool);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if self.1 {
            self.0.abort();
        }
    }
}
