//! The A2A methods, each done by the host's `FederationService` handlers called
//! in-process with the caller's authenticated request (principal, `traceparent`,
//! deadline), so that admission, session ownership, limits, run records and events are
//! the gRPC API's own: a message runs as `StreamAgentTask` (its events become A2A
//! status and artifact updates), `GetTask` and `CancelTask` of a task this door did not
//! start fall back to `GetAgentTask` and `CancelAgentTask`, `SubscribeToTask` of one to
//! `WatchAgentTask`.

use std::sync::Arc;

use federation_proto::doors;
use federation_proto::federation_service_server::FederationService;
use federation_proto::{
    AgentInfo, CancelAgentTaskRequest, GetAgentTaskRequest, ListAgentsRequest, TaskEvent,
    TaskRequest, WatchAgentTaskRequest,
};
use futures::{Stream, StreamExt};
use tokio::sync::broadcast::error::RecvError;
use tonic::codegen::BoxStream;
use tonic::{Code, Status, metadata::MetadataMap};
use tracing::Instrument;

use crate::error::{A2aError, code};
use crate::mapping::{self, Update};
use crate::tasks::{Begun, TaskTable, submitted};
use crate::types::{
    ListTasksRequest, ListTasksResponse, Message, SendMessageRequest, StreamResponse, Task,
    TaskState,
};

/// One authenticated call: the principal, what the host's own requests carry (metadata
/// and the authenticator's extensions), and the server span the work runs in.
#[derive(Clone)]
pub struct Call {
    pub principal: String,
    pub metadata: MetadataMap,
    pub extensions: http::Extensions,
    pub span: tracing::Span,
}

impl Call {
    /// A host request carrying this call's credentials, trace and deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        tonic::Request::from_parts(self.metadata.clone(), self.extensions.clone(), message)
    }
}

/// The A2A door's state: the host's service and the tasks started here.
pub struct Door {
    pub service: Arc<dyn FederationService>,
    pub tasks: Arc<TaskTable>,
}

/// Events of a stream response, ending with the turn.
pub type Events = std::pin::Pin<Box<dyn Stream<Item = Result<StreamResponse, A2aError>> + Send>>;

impl Door {
    /// The agents with a loaded backend (cards are public: asked as the local caller).
    pub async fn agents(&self) -> Result<Vec<AgentInfo>, Status> {
        let reply = self
            .service
            .list_agents(tonic::Request::new(ListAgentsRequest::default()))
            .await?;
        Ok(doors::runnable(reply.into_inner().agents))
    }

    /// `SendMessage` / `SendStreamingMessage` up to the start of the turn: the id of the
    /// task the message runs in (a new one, the one it answers, or the one it started
    /// before when it is a repeat).
    pub async fn send(
        &self,
        call: &Call,
        agent: &AgentInfo,
        request: &SendMessageRequest,
    ) -> Result<String, A2aError> {
        let message = &request.message;
        mapping::check_message(message)?;
        if request
            .configuration
            .as_ref()
            .is_some_and(|c| c.task_push_notification_config.is_some())
        {
            return Err(A2aError::with_reason(
                code::PUSH_NOT_SUPPORTED,
                "PUSH_NOTIFICATION_NOT_SUPPORTED",
                "push notifications are not supported (the card says so): stream or poll",
            ));
        }
        if !message.task_id.is_empty() {
            return self.answer(call, message).await;
        }
        let session = mapping::session_of(&message.context_id)?;
        let request_id = mapping::request_id_of(&message.message_id);
        let task_id = format!("{session}/{request_id}");
        let backend = agent.backends.first().cloned().unwrap_or_default();
        let federation =
            mapping::new_task_request(message, &agent.name, &backend, session.clone(), request_id)?;
        let snapshot = submitted(&task_id, &session, message);
        match self
            .tasks
            .begin(&call.principal, &agent.name, &message.message_id, snapshot)
        {
            Begun::Seen(id) => Ok(id),
            Begun::New => {
                let started = self.start_turn(call, &task_id, &session, federation).await;
                if let Err(error) = &started
                    && error.code == code::INVALID_PARAMS
                {
                    self.tasks
                        .forget(&call.principal, &message.message_id, &task_id);
                }
                started.map(|()| task_id)
            }
        }
    }

    /// A message to an existing task: the answer to its `input-required`, run as a new
    /// federation task in its session with `resume`.
    async fn answer(&self, call: &Call, message: &Message) -> Result<String, A2aError> {
        let id = message.task_id.as_str();
        let (agent, task) = self
            .tasks
            .get(&call.principal, id)
            .ok_or_else(|| A2aError::task_not_found(id))?;
        if !message.context_id.is_empty() && message.context_id != task.context_id {
            return Err(A2aError::invalid_params(format!(
                "message.contextId {:?} is not the context of task {id:?}",
                message.context_id
            )));
        }
        let session = task.context_id.clone();
        let request_id = mapping::request_id_of(&message.message_id);
        let turn = format!("{session}/{request_id}");
        let backend = self.backend_of(&agent).await?;
        let federation =
            mapping::resume_task_request(message, &agent, &backend, session.clone(), request_id)?;
        match self.tasks.next_turn(&call.principal, id, message, &turn)? {
            Begun::Seen(seen) => Ok(seen),
            Begun::New => {
                self.start_turn(call, id, &session, federation).await?;
                Ok(id.to_string())
            }
        }
    }

    async fn backend_of(&self, agent: &str) -> Result<String, A2aError> {
        let agents = self
            .agents()
            .await
            .map_err(|status| A2aError::from_status(&status, None))?;
        agents
            .into_iter()
            .find(|a| a.name == agent)
            .and_then(|a| a.backends.into_iter().next())
            .ok_or_else(|| {
                A2aError::unsupported(format!("agent {agent:?} has no loaded backend any more"))
            })
    }

    /// Starts one turn of task `task_id` as `StreamAgentTask` and drives the task from
    /// its events. A bad argument fails the call; another refusal rejects the task.
    async fn start_turn(
        &self,
        call: &Call,
        task_id: &str,
        context_id: &str,
        federation: TaskRequest,
    ) -> Result<(), A2aError> {
        let ids = (task_id, context_id);
        let started = self
            .service
            .stream_agent_task(call.request(federation))
            .instrument(call.span.clone())
            .await;
        let stream = match started {
            Ok(stream) => stream.into_inner(),
            Err(status) if matches!(status.code(), Code::InvalidArgument | Code::OutOfRange) => {
                return Err(A2aError::from_status(&status, None));
            }
            Err(status) => {
                let rejected = mapping::rejected_status(&status, ids);
                self.tasks.update(task_id, Update::Status(rejected));
                return Ok(());
            }
        };
        let working = mapping::status(TaskState::Working, ids, Vec::new());
        self.tasks.update(task_id, Update::Status(working));
        let driver = tokio::spawn(
            drive(
                self.tasks.clone(),
                task_id.to_string(),
                context_id.to_string(),
                stream,
            )
            .instrument(call.span.clone()),
        );
        self.tasks.driving(task_id, driver.abort_handle());
        Ok(())
    }

    /// Waits until the task's turn ends (terminal or waiting for input); its snapshot.
    pub async fn finish_turn(&self, principal: &str, id: &str) -> Result<Task, A2aError> {
        let mut subscription = self
            .tasks
            .subscribe(principal, id)
            .ok_or_else(|| A2aError::task_not_found(id))?;
        if !subscription.snapshot.status.state.ends_turn() {
            loop {
                match subscription.updates.recv().await {
                    Ok(StreamResponse::StatusUpdate(update)) if update.status.state.ends_turn() => {
                        break;
                    }
                    Ok(_) => {}
                    Err(RecvError::Lagged(_)) => {
                        if self
                            .tasks
                            .get(principal, id)
                            .is_none_or(|(_, t)| t.status.state.ends_turn())
                        {
                            break;
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        }
        self.tasks
            .get(principal, id)
            .map(|(_, task)| task)
            .ok_or_else(|| A2aError::task_not_found(id))
    }

    /// The task now, then its updates until its turn ends (`SendStreamingMessage`,
    /// `SubscribeToTask`).
    pub fn follow(&self, principal: &str, id: &str, history: Option<i32>) -> Option<Events> {
        let subscription = self.tasks.subscribe(principal, id)?;
        let first = trim_history(subscription.snapshot, history);
        let done = first.status.state.ends_turn();
        let tasks = self.tasks.clone();
        let (principal, id) = (principal.to_string(), id.to_string());
        let updates =
            futures::stream::unfold((subscription.updates, done), move |(mut updates, done)| {
                let tasks = tasks.clone();
                let (principal, id) = (principal.clone(), id.clone());
                async move {
                    if done {
                        return None;
                    }
                    let event = match updates.recv().await {
                        Ok(event) => event,
                        // Fell behind: the snapshot says it all.
                        Err(RecvError::Lagged(_)) => {
                            StreamResponse::Task(tasks.get(&principal, &id)?.1)
                        }
                        Err(RecvError::Closed) => return None,
                    };
                    let ends = match &event {
                        StreamResponse::StatusUpdate(u) => u.status.state.ends_turn(),
                        StreamResponse::Task(t) => t.status.state.ends_turn(),
                        _ => false,
                    };
                    Some((Ok(event), (updates, ends)))
                }
            });
        let events =
            futures::stream::once(async move { Ok(StreamResponse::Task(first)) }).chain(updates);
        Some(Box::pin(events))
    }

    /// `GetTask`: this door's snapshot, else the host's status of the task.
    pub async fn get(&self, call: &Call, id: &str, history: Option<i32>) -> Result<Task, A2aError> {
        if let Some((_, task)) = self.tasks.get(&call.principal, id) {
            return Ok(trim_history(task, history));
        }
        if self.tasks.foreign(&call.principal, id) {
            return Err(A2aError::task_not_found(id));
        }
        let reply = self
            .service
            .get_agent_task(call.request(GetAgentTaskRequest {
                task_id: id.to_string(),
            }))
            .instrument(call.span.clone())
            .await
            .map_err(|status| A2aError::from_status(&status, Some(id)))?;
        Ok(mapping::task_of_status(&reply.into_inner()))
    }

    /// `CancelTask`.
    pub async fn cancel(&self, call: &Call, id: &str) -> Result<Task, A2aError> {
        if self.tasks.get(&call.principal, id).is_some() {
            let (_, task) = self.tasks.cancel(&call.principal, id)?;
            return Ok(task);
        }
        if self.tasks.foreign(&call.principal, id) {
            return Err(A2aError::task_not_found(id));
        }
        let reply = self
            .service
            .cancel_agent_task(call.request(CancelAgentTaskRequest {
                task_id: id.to_string(),
            }))
            .instrument(call.span.clone())
            .await
            .map_err(|status| A2aError::from_status(&status, Some(id)))?;
        Ok(mapping::task_of_status(&reply.into_inner()))
    }

    /// `SubscribeToTask`: this door's task, else the host's (`WatchAgentTask`).
    pub async fn subscribe(&self, call: &Call, id: &str) -> Result<Events, A2aError> {
        let task = self.get(call, id, None).await?;
        if task.status.state.is_terminal() {
            return Err(A2aError::unsupported(format!(
                "task {id:?} has ended: GetTask returns its final state"
            )));
        }
        if let Some(events) = self.follow(&call.principal, id, None) {
            return Ok(events);
        }
        let watched = self
            .service
            .watch_agent_task(call.request(WatchAgentTaskRequest {
                task_id: id.to_string(),
                after_seq: 0,
            }))
            .instrument(call.span.clone())
            .await
            .map_err(|status| A2aError::from_status(&status, Some(id)))?
            .into_inner();
        let ids = (id.to_string(), task.context_id.clone());
        let updates = watched.flat_map(move |event| {
            let items: Vec<Result<StreamResponse, A2aError>> = match event {
                Ok(event) => mapping::event_updates(&event, (&ids.0, &ids.1))
                    .into_iter()
                    .map(|u| Ok(stream_update(u, &ids.0, &ids.1)))
                    .collect(),
                Err(status) => vec![Err(A2aError::from_status(&status, None))],
            };
            futures::stream::iter(items)
        });
        Ok(Box::pin(
            futures::stream::once(async move { Ok(StreamResponse::Task(task)) }).chain(updates),
        ))
    }

    /// `ListTasks`: the caller's tasks this door started, most recently changed first.
    pub fn list(
        &self,
        call: &Call,
        request: &ListTasksRequest,
    ) -> Result<ListTasksResponse, A2aError> {
        let page_size = request.page_size.unwrap_or(50);
        if !(1..=100).contains(&page_size) {
            return Err(A2aError::invalid_params("pageSize must be 1 to 100"));
        }
        let offset: usize = if request.page_token.is_empty() {
            0
        } else {
            request
                .page_token
                .parse()
                .map_err(|_| A2aError::invalid_params("pageToken is not one this server gave"))?
        };
        let after = match &request.status_timestamp_after {
            Some(text) => Some(text.parse::<prost_types::Timestamp>().map_err(|_| {
                A2aError::invalid_params("statusTimestampAfter is not an ISO 8601 timestamp")
            })?),
            None => None,
        };
        let tasks = self.tasks.list(&call.principal, |task| {
            (request.context_id.is_empty() || task.context_id == request.context_id)
                && (request.status == TaskState::Unspecified || task.status.state == request.status)
                && after.as_ref().is_none_or(|after| {
                    task.status
                        .timestamp
                        .as_deref()
                        .and_then(|t| t.parse::<prost_types::Timestamp>().ok())
                        .is_some_and(|t| (t.seconds, t.nanos) >= (after.seconds, after.nanos))
                })
        });
        let total = tasks.len();
        let end = (offset + page_size as usize).min(total);
        let page: Vec<Task> = tasks
            .into_iter()
            .skip(offset)
            .take(page_size as usize)
            .map(|mut task| {
                if !request.include_artifacts.unwrap_or(false) {
                    task.artifacts = None;
                }
                trim_history(task, request.history_length)
            })
            .collect();
        Ok(ListTasksResponse {
            tasks: page,
            next_page_token: if end < total {
                end.to_string()
            } else {
                String::new()
            },
            page_size,
            total_size: total as i32,
        })
    }
}

/// Drives a task from its turn's federation events until the turn ends; a stream that
/// breaks off first fails the task (its run was stopped with it).
async fn drive(
    tasks: Arc<TaskTable>,
    id: String,
    context_id: String,
    mut events: BoxStream<TaskEvent>,
) {
    let ids = (id.as_str(), context_id.as_str());
    while let Some(event) = events.next().await {
        let updates = match event {
            Ok(event) => mapping::event_updates(&event, ids),
            Err(status) => vec![Update::Status(mapping::failure_status(
                TaskState::Failed,
                status.code(),
                status.message(),
                crate::error::status_details_json(&status),
                ids,
            ))],
        };
        for update in updates {
            let ends = matches!(&update, Update::Status(s) if s.state.ends_turn());
            tasks.update(&id, update);
            if ends {
                return;
            }
        }
    }
    let broken = mapping::failure_status(
        TaskState::Failed,
        Code::Unavailable,
        "the task's event stream ended before its last event",
        Vec::new(),
        ids,
    );
    tasks.update(&id, Update::Status(broken));
}

/// The stream response of an update.
fn stream_update(update: Update, task_id: &str, context_id: &str) -> StreamResponse {
    use crate::types::{TaskArtifactUpdateEvent, TaskStatusUpdateEvent};
    match update {
        Update::Status(status) => StreamResponse::StatusUpdate(TaskStatusUpdateEvent {
            task_id: task_id.into(),
            context_id: context_id.into(),
            status,
            metadata: None,
        }),
        Update::Artifact(artifact) => StreamResponse::ArtifactUpdate(TaskArtifactUpdateEvent {
            task_id: task_id.into(),
            context_id: context_id.into(),
            artifact,
            append: false,
            last_chunk: true,
            metadata: None,
        }),
    }
}

/// The task with at most `length` of its latest messages (spec §3.2.4; unset: all).
pub fn trim_history(mut task: Task, length: Option<i32>) -> Task {
    if let Some(length) = length {
        let keep = length.max(0) as usize;
        let drop = task.history.len().saturating_sub(keep);
        task.history.drain(..drop);
    }
    task
}
