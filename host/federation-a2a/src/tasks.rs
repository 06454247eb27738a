//! The A2A tasks this door started: each one's principal, current snapshot (status,
//! artifacts, history), the federation task of its current turn, the run driving it,
//! and a channel of its live updates for streams and subscribers. A2A needs what the
//! federation API does not keep in one place: a task that spans several turns (an
//! answer to `input-required` runs as a new federation task), the caller's list of
//! tasks, and message ids seen. Entries are kept for [`KEEP_FINISHED`] after their last
//! change, at most [`MAX_TASKS`]; older ones are answered by the host (`GetAgentTask`).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use crate::error::{A2aError, code};
use crate::mapping::{Update, now};
use crate::types::{
    Message, StreamResponse, Task, TaskArtifactUpdateEvent, TaskState, TaskStatus,
    TaskStatusUpdateEvent,
};

pub const KEEP_FINISHED: Duration = Duration::from_secs(3600);
pub const MAX_TASKS: usize = 10_000;
/// Live updates buffered per task for a slow stream; one that falls further behind
/// gets the current snapshot instead.
const UPDATES_BUFFER: usize = 256;

struct Entry {
    principal: String,
    agent: String,
    task: Task,
    /// The federation task id of the current (or last) turn.
    turn: String,
    updates: broadcast::Sender<StreamResponse>,
    driver: Option<AbortHandle>,
    changed: Instant,
    /// Order of the last change, for ListTasks' most-recent-first.
    version: u64,
}

#[derive(Default)]
struct Table {
    tasks: HashMap<String, Entry>,
    /// (principal, messageId) → task id: a message seen before attaches to its task.
    messages: HashMap<(String, String), String>,
    clock: u64,
}

/// What `begin` found for a message.
pub enum Begun {
    /// New: the caller runs it (and calls `driving`/`update`).
    New,
    /// Seen before (same principal and message id): this task.
    Seen(String),
}

/// A live view of one task: its snapshot when subscribed, then its updates.
pub struct Subscription {
    pub snapshot: Task,
    pub updates: broadcast::Receiver<StreamResponse>,
}

#[derive(Default)]
pub struct TaskTable {
    table: Mutex<Table>,
}

impl TaskTable {
    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().expect("A2A task table poisoned")
    }

    /// Records a new task `task` of `principal` for message `message_id` (or finds the
    /// task that message started before).
    pub fn begin(&self, principal: &str, agent: &str, message_id: &str, task: Task) -> Begun {
        let mut table = self.lock();
        prune(&mut table);
        let key = (principal.to_string(), message_id.to_string());
        if let Some(id) = table.messages.get(&key) {
            return Begun::Seen(id.clone());
        }
        table.clock += 1;
        let version = table.clock;
        table.messages.insert(key, task.id.clone());
        table.tasks.insert(
            task.id.clone(),
            Entry {
                principal: principal.to_string(),
                agent: agent.to_string(),
                turn: task.id.clone(),
                task,
                updates: broadcast::channel(UPDATES_BUFFER).0,
                driver: None,
                changed: Instant::now(),
                version,
            },
        );
        Begun::New
    }

    /// Forgets a task whose first turn was refused as a bad request (the client may
    /// fix it and send it again).
    pub fn forget(&self, principal: &str, message_id: &str, task_id: &str) {
        let mut table = self.lock();
        table
            .messages
            .remove(&(principal.to_string(), message_id.to_string()));
        table.tasks.remove(task_id);
    }

    /// The agent and snapshot of `principal`'s task `id`; another principal's task is
    /// not found (spec §3.3.2: never reveal it).
    pub fn get(&self, principal: &str, id: &str) -> Option<(String, Task)> {
        let table = self.lock();
        let entry = table.tasks.get(id).filter(|e| e.principal == principal)?;
        Some((entry.agent.clone(), entry.task.clone()))
    }

    /// Whether `id` is a task here of another principal than `principal` (then not
    /// found for it, and not asked of the host either).
    pub fn foreign(&self, principal: &str, id: &str) -> bool {
        self.lock()
            .tasks
            .get(id)
            .is_some_and(|e| e.principal != principal)
    }

    /// Claims an `input-required` task for its next turn (message `message_id`, which
    /// runs as federation task `turn`): its status becomes working. A repeated message
    /// answers `Seen`; a task in another state is refused.
    pub fn next_turn(
        &self,
        principal: &str,
        id: &str,
        message: &Message,
        turn: &str,
    ) -> Result<Begun, A2aError> {
        let mut table = self.lock();
        let key = (principal.to_string(), message.message_id.clone());
        if let Some(seen) = table.messages.get(&key) {
            return Ok(Begun::Seen(seen.clone()));
        }
        let entry = table
            .tasks
            .get_mut(id)
            .filter(|e| e.principal == principal)
            .ok_or_else(|| A2aError::task_not_found(id))?;
        let state = entry.task.status.state;
        if state != TaskState::InputRequired {
            return Err(A2aError::unsupported(format!(
                "task {id:?} is {}: only a task that waits for input (TASK_STATE_INPUT_REQUIRED) \
                 takes another message",
                serde_json::to_value(state)
                    .unwrap_or_default()
                    .as_str()
                    .unwrap_or("?")
            )));
        }
        entry.turn = turn.to_string();
        entry.task.history.push(message.clone());
        table.messages.insert(key, id.to_string());
        Ok(Begun::New)
    }

    /// Notes the run that drives the task now (aborted by a cancel).
    pub fn driving(&self, id: &str, driver: AbortHandle) {
        if let Some(entry) = self.lock().tasks.get_mut(id) {
            entry.driver = Some(driver);
        }
    }

    /// Applies `update` to task `id` and sends it to its subscribers. Nothing changes
    /// a task that has ended (a late event after a cancel).
    pub fn update(&self, id: &str, update: Update) {
        let mut table = self.lock();
        table.clock += 1;
        let version = table.clock;
        let Some(entry) = table.tasks.get_mut(id) else {
            return;
        };
        if entry.task.status.state.is_terminal() {
            return;
        }
        entry.changed = Instant::now();
        entry.version = version;
        let (task_id, context_id) = (entry.task.id.clone(), entry.task.context_id.clone());
        let event = match update {
            Update::Status(status) => {
                if status.state.ends_turn() {
                    entry.driver = None;
                }
                entry.task.status = status.clone();
                StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
                    task_id,
                    context_id,
                    status,
                    metadata: None,
                })
            }
            Update::Artifact(artifact) => {
                let artifacts = entry.task.artifacts.get_or_insert_with(Vec::new);
                artifacts.retain(|a| a.artifact_id != artifact.artifact_id);
                artifacts.push(artifact.clone());
                StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
                    task_id,
                    context_id,
                    artifact,
                    append: false,
                    last_chunk: true,
                    metadata: None,
                })
            }
        };
        // No subscriber is fine: the snapshot holds the state.
        let _ = entry.updates.send(event);
    }

    /// The snapshot and live updates of `principal`'s task `id`.
    pub fn subscribe(&self, principal: &str, id: &str) -> Option<Subscription> {
        let table = self.lock();
        let entry = table.tasks.get(id).filter(|e| e.principal == principal)?;
        Some(Subscription {
            snapshot: entry.task.clone(),
            updates: entry.updates.subscribe(),
        })
    }

    /// Cancels `principal`'s task `id`: stops its run (which cancels the wrapper's run
    /// through the host, as a dropped gRPC stream does) and marks it canceled. Returns
    /// the federation task of its turn and the new snapshot.
    pub fn cancel(&self, principal: &str, id: &str) -> Result<(String, Task), A2aError> {
        let (driver, turn) = {
            let mut table = self.lock();
            let entry = table
                .tasks
                .get_mut(id)
                .filter(|e| e.principal == principal)
                .ok_or_else(|| A2aError::task_not_found(id))?;
            let state = entry.task.status.state;
            if state.is_terminal() {
                return Err(A2aError::with_reason(
                    code::TASK_NOT_CANCELABLE,
                    "TASK_NOT_CANCELABLE",
                    format!("task {id:?} has ended already"),
                ));
            }
            (entry.driver.take(), entry.turn.clone())
        };
        if let Some(driver) = driver {
            driver.abort();
        }
        let (task_id, context_id) = (id, self.get(principal, id).map(|(_, t)| t.context_id));
        let status = crate::mapping::status(
            TaskState::Canceled,
            (task_id, context_id.as_deref().unwrap_or_default()),
            vec![crate::types::Part::text("canceled by the client")],
        );
        self.update(id, Update::Status(status));
        let (_, task) = self
            .get(principal, id)
            .ok_or_else(|| A2aError::task_not_found(id))?;
        Ok((turn, task))
    }

    /// `principal`'s tasks, most recently changed first, that `keep` accepts.
    pub fn list(&self, principal: &str, keep: impl Fn(&Task) -> bool) -> Vec<Task> {
        let table = self.lock();
        let mut found: Vec<(&Entry, u64)> = table
            .tasks
            .values()
            .filter(|e| e.principal == principal && keep(&e.task))
            .map(|e| (e, e.version))
            .collect();
        found.sort_by_key(|(_, version)| std::cmp::Reverse(*version));
        found.into_iter().map(|(e, _)| e.task.clone()).collect()
    }
}

/// A snapshot's status when it is first recorded.
pub fn submitted(task_id: &str, context_id: &str, message: &Message) -> Task {
    Task {
        id: task_id.to_string(),
        context_id: context_id.to_string(),
        status: TaskStatus {
            state: TaskState::Submitted,
            message: None,
            timestamp: Some(now()),
        },
        artifacts: Some(Vec::new()),
        history: vec![message.clone()],
        metadata: None,
    }
}

fn prune(table: &mut Table) {
    let stale = |e: &Entry| e.driver.is_none() && e.changed.elapsed() > KEEP_FINISHED;
    let before = table.tasks.len();
    table.tasks.retain(|_, e| !stale(e));
    while table.tasks.len() >= MAX_TASKS {
        let Some(oldest) = table
            .tasks
            .iter()
            .filter(|(_, e)| e.driver.is_none())
            .min_by_key(|(_, e)| e.version)
            .map(|(id, _)| id.clone())
        else {
            break;
        };
        table.tasks.remove(&oldest);
    }
    if table.tasks.len() != before {
        let tasks = &table.tasks;
        table.messages.retain(|_, id| tasks.contains_key(id));
    }
}
