//! The tasks `StartAgentTask` started on this replica: their state and result for
//! `GetAgentTask`, and a handle to stop them for `CancelAgentTask`. Finished entries
//! are kept for [`KEEP_FINISHED`] (the wrapper's run record answers after that, and on
//! other replicas); at most [`MAX_ENTRIES`] are kept.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::task::AbortHandle;
use tonic::Status;

use federation_proto::agent_task_status::State;
use federation_proto::{AgentTaskStatus, TaskResponse, task_response};

use crate::status::{TaskContext, TaskError, status_details, task_status};

pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct AsyncTasks {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    trace_id: String,
    outcome: Outcome,
    abort: Option<AbortHandle>,
    finished: Option<Instant>,
}

enum Outcome {
    Working,
    Done(Box<Result<TaskResponse, Status>>),
    Canceled,
}

impl AsyncTasks {
    /// Claims `task_id`; false when it is already known (started before).
    pub fn reserve(&self, task_id: &str, trace_id: &str) -> bool {
        let mut entries = self.entries.lock().expect("task table poisoned");
        prune(&mut entries);
        if entries.contains_key(task_id) {
            return false;
        }
        entries.insert(
            task_id.to_string(),
            Entry {
                trace_id: trace_id.to_string(),
                outcome: Outcome::Working,
                abort: None,
                finished: None,
            },
        );
        true
    }

    pub fn running(&self, task_id: &str, abort: AbortHandle) {
        if let Some(entry) = self
            .entries
            .lock()
            .expect("task table poisoned")
            .get_mut(task_id)
        {
            entry.abort = Some(abort);
        }
    }

    pub fn finish(&self, task_id: &str, result: Result<TaskResponse, Status>) {
        if let Some(entry) = self
            .entries
            .lock()
            .expect("task table poisoned")
            .get_mut(task_id)
            && matches!(entry.outcome, Outcome::Working)
        {
            entry.outcome = Outcome::Done(Box::new(result));
            entry.finished = Some(Instant::now());
            entry.abort = None;
        }
    }

    /// Stops the task if it runs here (dropping it cancels its wrapper run); its status.
    pub fn cancel(&self, task_id: &str) -> Option<AgentTaskStatus> {
        let mut entries = self.entries.lock().expect("task table poisoned");
        let entry = entries.get_mut(task_id)?;
        if matches!(entry.outcome, Outcome::Working) {
            if let Some(abort) = entry.abort.take() {
                abort.abort();
            }
            entry.outcome = Outcome::Canceled;
            entry.finished = Some(Instant::now());
        }
        Some(status(task_id, entry))
    }

    pub fn status(&self, task_id: &str) -> Option<AgentTaskStatus> {
        let entries = self.entries.lock().expect("task table poisoned");
        entries.get(task_id).map(|entry| status(task_id, entry))
    }
}

fn status(task_id: &str, entry: &Entry) -> AgentTaskStatus {
    let mut status = AgentTaskStatus {
        task_id: task_id.to_string(),
        trace_id: entry.trace_id.clone(),
        ..Default::default()
    };
    let state = match &entry.outcome {
        Outcome::Working => State::Working,
        Outcome::Done(done) => match done.as_ref() {
            Ok(response) => {
                status.response = Some(response.clone());
                if response.state() == task_response::State::InputRequired {
                    State::InputRequired
                } else {
                    State::Completed
                }
            }
            Err(error) => {
                status.error_code = error.code() as i32;
                status.error_message = error.message().to_string();
                status.error_details = status_details(error);
                if error.code() == tonic::Code::Cancelled {
                    State::Canceled
                } else {
                    State::Failed
                }
            }
        },
        Outcome::Canceled => {
            let message = "canceled by CancelAgentTask";
            // As the wrapper reports a canceled run: reason CANCELED.
            let error = TaskError::upstream(499, &federation_wire::tag("canceled", None, message));
            let (session, request_id) = task_id.split_once('/').unwrap_or_default();
            let context = TaskContext {
                federation_session_id: session.to_string(),
                request_id: request_id.to_string(),
                ..Default::default()
            };
            status.error_code = tonic::Code::Cancelled as i32;
            status.error_message = message.into();
            status.error_details = status_details(&task_status(&error, &entry.trace_id, &context));
            State::Canceled
        }
    };
    status.state = state as i32;
    status
}

/// Drops finished entries past their keep time, and the oldest finished ones when the
/// table is full (running ones are never dropped).
fn prune(entries: &mut HashMap<String, Entry>) {
    entries.retain(|_, e| e.finished.is_none_or(|at| at.elapsed() < KEEP_FINISHED));
    if entries.len() >= MAX_ENTRIES {
        let mut finished: Vec<(Instant, String)> = entries
            .iter()
            .filter_map(|(id, e)| e.finished.map(|at| (at, id.clone())))
            .collect();
        finished.sort();
        for (_, id) in finished.into_iter().take(entries.len() + 1 - MAX_ENTRIES) {
            entries.remove(&id);
        }
    }
}
