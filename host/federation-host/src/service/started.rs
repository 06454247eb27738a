//! The tasks `StartAgentTask` started on this replica: their state and result for
//! `GetAgentTask`, and a handle to stop them for `CancelAgentTask`. Finished entries
//! are kept for [`KEEP_FINISHED`] (the wrapper's run record answers after that, and on
//! other replicas); at most [`MAX_ENTRIES`] are kept, and their results together stay
//! under a byte budget (`--background-results-mib`): a finishing task whose result
//! does not fit evicts the oldest finished results (their `GetAgentTask` then answers
//! from the wrapper's run record, as on another replica). New tasks are never refused
//! for it: results nobody fetched must not lock callers out. Each task belongs to the
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

use federation_proto::agent_task_status::State;
use federation_proto::{AgentTaskStatus, TaskResponse, task_response};
use federation_wire::WrapperError;
use prost::Message;

use crate::error::{TaskContext, TaskError, status_details, task_status};

pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
pub const MAX_ENTRIES: usize = 100_000;

pub struct StartedTasks {
    entries: Mutex<HashMap<String, Entry>>,
    /// Bytes of results the finished entries may hold together.
    budget: usize,
}

struct Entry {
    /// The principal that started it.
    principal: String,
    trace_id: String,
    outcome: Outcome,
    abort: Option<AbortHandle>,
    finished: Option<Instant>,
    /// Bytes its result holds (0 while working).
    bytes: usize,
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

impl StartedTasks {
    /// A table whose finished results hold at most `budget` bytes together.
    pub fn new(budget: usize) -> StartedTasks {
        StartedTasks {
            entries: Mutex::default(),
            budget,
        }
    }

    /// Bytes of results held now.
    #[cfg(test)]
    pub fn held_bytes(&self) -> usize {
        let entries = self.entries.lock().expect("task table poisoned");
        entries.values().map(|e| e.bytes).sum()
    }

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
                bytes: 0,
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
        let mut entries = self.entries.lock().expect("task table poisoned");
        if !entries
            .get(task_id)
            .is_some_and(|entry| matches!(entry.outcome, Outcome::Working))
        {
            return;
        }
        let mut bytes = result_bytes(&result);
        let result = if bytes > self.budget {
            let error = TaskError::ResultTooLarge {
                size: bytes,
                budget: self.budget,
            };
            bytes = 0;
            let trace_id = entries.get(task_id).map(|e| e.trace_id.clone());
            Err(task_status(
                &error,
                &trace_id.unwrap_or_default(),
                &task_context(task_id),
            ))
        } else {
            result
        };
        evict_for(&mut entries, bytes, self.budget);
        if let Some(entry) = entries.get_mut(task_id) {
            entry.outcome = Outcome::Done(Box::new(result));
            entry.finished = Some(Instant::now());
            entry.abort = None;
            entry.bytes = bytes;
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
            let error = TaskError::Upstream(WrapperError::new(499, Some("canceled"), message));
            let context = task_context(task_id);
            status.error_code = tonic::Code::Cancelled as i32;
            status.error_message = message.into();
            status.error_details = status_details(&task_status(&error, &entry.trace_id, &context));
            State::Canceled
        }
    };
    status.state = state as i32;
    status
}

/// The context of a task's errors: its session and request id.
fn task_context(task_id: &str) -> TaskContext {
    let (session, request_id) = task_id.split_once('/').unwrap_or_default();
    TaskContext::of_run(session, request_id)
}

/// Bytes a finished task's result holds: the encoded response, or the error's message
/// and details.
fn result_bytes(result: &Result<TaskResponse, Status>) -> usize {
    match result {
        Ok(response) => response.encoded_len(),
        Err(status) => status.message().len() + status.details().len(),
    }
}

/// Evicts the oldest finished results until `incoming` more bytes fit the budget.
fn evict_for(entries: &mut HashMap<String, Entry>, incoming: usize, budget: usize) {
    let mut held: usize = entries.values().map(|e| e.bytes).sum();
    if held + incoming <= budget {
        return;
    }
    let mut finished: Vec<(Instant, String, usize)> = entries
        .iter()
        .filter(|(_, e)| e.bytes > 0)
        .filter_map(|(id, e)| e.finished.map(|at| (at, id.clone(), e.bytes)))
        .collect();
    finished.sort();
    for (_, id, bytes) in finished {
        if held + incoming <= budget {
            break;
        }
        entries.remove(&id);
        held -= bytes;
        tracing::debug!(task_id = %id, bytes, "background result evicted for the byte budget");
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn response(bytes: usize) -> TaskResponse {
        TaskResponse {
            output: "x".repeat(bytes),
            ..Default::default()
        }
    }

    #[test]
    fn a_flood_of_results_stays_under_the_budget_keeping_the_newest() {
        // 100 tasks with 3 MiB results, as the flood, under a 16 MiB budget.
        let budget = 16 << 20;
        let tasks = StartedTasks::new(budget);
        for i in 0..100 {
            let id = format!("s/{i}");
            assert!(tasks.reserve(&id, "trace", "local").unwrap());
            tasks.finish(&id, Ok(response(3 << 20)));
            assert!(
                tasks.held_bytes() <= budget,
                "after {i}: {}",
                tasks.held_bytes()
            );
        }
        assert!(
            tasks
                .status("s/99", "local")
                .unwrap()
                .unwrap()
                .response
                .is_some()
        );
        assert!(
            tasks
                .status("s/95", "local")
                .unwrap()
                .unwrap()
                .response
                .is_some()
        );
        assert!(
            tasks.status("s/0", "local").unwrap().is_none(),
            "the oldest result is evicted"
        );
        // Working entries are never evicted.
        assert!(tasks.reserve("s/working", "trace", "local").unwrap());
        tasks.finish("s/next", Ok(response(3 << 20)));
        assert_eq!(
            tasks.status("s/working", "local").unwrap().unwrap().state,
            State::Working as i32
        );
    }

    #[test]
    fn a_result_over_the_whole_budget_is_refused_not_kept() {
        let tasks = StartedTasks::new(1024);
        assert!(tasks.reserve("s/big", "trace", "local").unwrap());
        tasks.finish("s/big", Ok(response(4096)));
        let status = tasks.status("s/big", "local").unwrap().unwrap();
        assert_eq!(status.state, State::Failed as i32);
        assert_eq!(status.error_code, tonic::Code::ResourceExhausted as i32);
        assert!(status.error_message.contains("--background-results-mib"));
        assert_eq!(tasks.held_bytes(), 0);
    }
}
