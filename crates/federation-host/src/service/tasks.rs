//! The tasks `StartAgentTask` started on this replica: their state and result for
//! `GetAgentTask`, and a handle to stop them for `CancelAgentTask`. Finished entries
//! are kept for [`KEEP_FINISHED`] (the wrapper's run record answers after that, and on
//! other replicas); at most [`MAX_ENTRIES`] are kept. Each task belongs to the
//! principal that started it: another principal's look-up or cancel is refused
//! (`PERMISSION_DENIED`, reason `SESSION_NOT_OWNED`, as the wrapper answers for a
//! session it holds for another principal).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::task::AbortHandle;
use tonic::Status;

use crate::status::TaskError;

use federation_proto::agent_task_status::State;
use federation_proto::{AgentTaskStatus, TaskResponse, task_response};

pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Default)]
pub struct AsyncTasks {
    entries: Mutex<HashMap<String, Entry>>,
}

struct Entry {
    /// The principal that started it.
    principal: String,
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

/// Refuses `principal` an entry another principal started.
fn owned<'a>(
    task_id: &str,
    entry: &'a mut Entry,
    principal: &str,
) -> Result<&'a mut Entry, TaskError> {
    if entry.principal == principal {
        Ok(entry)
    } else {
        Err(TaskError::NotOwned {
            task_id: task_id.to_string(),
        })
    }
}

impl AsyncTasks {
    /// Claims `task_id` for `principal`; false when it already started (by the same
    /// principal), `NotOwned` when another principal started it.
    pub fn reserve(
        &self,
        task_id: &str,
        trace_id: &str,
        principal: &str,
    ) -> Result<bool, TaskError> {
        let mut entries = self.entries.lock().expect("task table poisoned");
        prune(&mut entries);
        if let Some(entry) = entries.get_mut(task_id) {
            owned(task_id, entry, principal)?;
            return Ok(false);
        }
        entries.insert(
            task_id.to_string(),
            Entry {
                principal: principal.to_string(),
                trace_id: trace_id.to_string(),
                outcome: Outcome::Working,
                abort: None,
                finished: None,
            },
        );
        Ok(true)
    }

    /// Refuses `principal` a task id another principal started here (unknown ids
    /// pass: the wrapper decides about sessions it holds).
    pub fn check_owner(&self, task_id: &str, principal: &str) -> Result<(), TaskError> {
        let mut entries = self.entries.lock().expect("task table poisoned");
        match entries.get_mut(task_id) {
            Some(entry) => owned(task_id, entry, principal).map(|_| ()),
            None => Ok(()),
        }
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
    pub fn cancel(
        &self,
        task_id: &str,
        principal: &str,
    ) -> Result<Option<AgentTaskStatus>, TaskError> {
        let mut entries = self.entries.lock().expect("task table poisoned");
        let Some(entry) = entries.get_mut(task_id) else {
            return Ok(None);
        };
        let entry = owned(task_id, entry, principal)?;
        if matches!(entry.outcome, Outcome::Working) {
            if let Some(abort) = entry.abort.take() {
                abort.abort();
            }
            entry.outcome = Outcome::Canceled;
            entry.finished = Some(Instant::now());
        }
        Ok(Some(status(task_id, entry)))
    }

    pub fn status(
        &self,
        task_id: &str,
        principal: &str,
    ) -> Result<Option<AgentTaskStatus>, TaskError> {
        let mut entries = self.entries.lock().expect("task table poisoned");
        match entries.get_mut(task_id) {
            Some(entry) => Ok(Some(status(task_id, owned(task_id, entry, principal)?))),
            None => Ok(None),
        }
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
                if error.code() == tonic::Code::Cancelled {
                    State::Canceled
                } else {
                    State::Failed
                }
            }
        },
        Outcome::Canceled => {
            status.error_code = tonic::Code::Cancelled as i32;
            status.error_message = "canceled by CancelAgentTask".into();
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
