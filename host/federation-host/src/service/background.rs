//! Background tasks: `StartAgentTask` answers at once with the task's id
//! (`<session>/<request_id>`) and runs it; `GetAgentTask` reports it and
//! `CancelAgentTask` stops it, on any replica: the tasks started here are in
//! [`StartedTasks`](super::started::StartedTasks), the others in the wrapper's run record
//! (its shared store).

use std::time::Instant;

use tonic::{Request, Response, Status};
use tracing::Instrument;

use federation_proto::agent_task_status::State;
use federation_proto::json::{json_to_struct, json_to_value};
use federation_proto::{
    AgentTaskStatus, CancelAgentTaskRequest, GetAgentTaskRequest, StartAgentTaskResponse,
    TaskRequest, TaskResponse, task_response,
};
use federation_wire::{RunRecord, RunStatus, WrapperError};

use super::run::check_caller;
use super::{Executor, Federation, task_id};
use crate::auth::Caller;
use crate::error::{
    TaskContext, TaskError, answer, error_status, grpc_code, status_details, task_status,
};
use crate::telemetry::current_trace_id;
use crate::validate::{id_is_valid, validate};
use crate::wrapper_runs::RunApiError;

impl<E: Executor> Federation<E> {
    pub(super) async fn start_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<StartAgentTaskResponse>, Status> {
        let caller = Caller::of(&request);
        let mut request = request.into_inner();
        for id in [&mut request.federation_session_id, &mut request.request_id] {
            if id.is_empty() {
                *id = uuid::Uuid::new_v4().to_string();
            }
        }
        // Bad input fails the start itself, not the task later.
        let budget = self.config.default_task_timeout;
        let trace_id = current_trace_id();
        let context = TaskContext::of(&request);
        let refuse = |error| error_status(error, &trace_id, &context);
        let valid = validate(request.clone(), &self.config.wrapper_url, budget).map_err(refuse)?;
        check_caller(&caller, &valid.backend, &valid.interaction.agent).map_err(refuse)?;
        let task_id = task_id(&request.federation_session_id, &request.request_id);
        let reply = StartAgentTaskResponse {
            task_id: task_id.clone(),
            federation_session_id: request.federation_session_id.clone(),
            request_id: request.request_id.clone(),
            trace_id: trace_id.clone(),
        };
        if !self
            .started
            .reserve(&task_id, &trace_id, &caller.principal)
            .map_err(refuse)?
        {
            // Already started here: attach (the wrapper runs it once anyway).
            return Ok(Response::new(reply));
        }
        let this = self.clone();
        let id = task_id.clone();
        // The task outlives this RPC; its spans stay in the caller's trace.
        let span = tracing::info_span!("agent_task", otel.name = "agent task (started)", federation.task_id = %task_id);
        let handle = tokio::spawn(
            async move {
                let result = this
                    .run_task(request, &caller, budget, Instant::now())
                    .await;
                let result = answer(result, trace_id, &context);
                this.started.finish(&id, result);
            }
            .instrument(span),
        );
        self.started.running(&task_id, handle.abort_handle());
        Ok(Response::new(reply))
    }

    pub(super) async fn get_agent_task(
        &self,
        request: Request<GetAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        let caller = Caller::of(&request);
        let task_id = request.into_inner().task_id;
        let refuse = |error| error_status(error, &current_trace_id(), &TaskContext::default());
        if let Some(status) = self
            .started
            .status(&task_id, &caller.principal)
            .map_err(refuse)?
        {
            return Ok(Response::new(status));
        }
        let (session, request_id) = parse_task_id(&task_id)?;
        let record = self
            .runs
            .status(session, request_id, &caller.principal)
            .await
            .map_err(Status::from)?;
        Ok(Response::new(status_from_record(
            &task_id, session, request_id, record,
        )))
    }

    pub(super) async fn cancel_agent_task(
        &self,
        request: Request<CancelAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        let caller = Caller::of(&request);
        let task_id = request.into_inner().task_id;
        let (session, request_id) = parse_task_id(&task_id)?;
        let refuse = |error| error_status(error, &current_trace_id(), &TaskContext::default());
        let local = self
            .started
            .cancel(&task_id, &caller.principal)
            .map_err(refuse)?;
        match self
            .runs
            .cancel(session, request_id, &caller.principal)
            .await
        {
            Ok(record) => {
                let status = status_from_record(&task_id, session, request_id, record);
                Ok(Response::new(local.unwrap_or(status)))
            }
            Err(RunApiError::NotFound { .. }) if local.is_some() => {
                Ok(Response::new(local.expect("checked")))
            }
            Err(error) => Err(error.into()),
        }
    }
}

/// The (session, request id) of a task id.
pub(super) fn parse_task_id(task_id: &str) -> Result<(&str, &str), TaskError> {
    task_id
        .split_once('/')
        .filter(|(session, request_id)| id_is_valid(session) && id_is_valid(request_id))
        .ok_or_else(|| {
            TaskError::invalid(
                "task_id",
                format!("task_id {task_id:?} is not \"<federation_session_id>/<request_id>\""),
            )
        })
}

/// A task's status from the wrapper's run record (a task this replica did not run).
fn status_from_record(
    task_id: &str,
    session: &str,
    request_id: &str,
    record: RunRecord,
) -> AgentTaskStatus {
    let state = match record.status {
        RunStatus::Submitted => State::Submitted,
        RunStatus::Working => State::Working,
        RunStatus::Completed => State::Completed,
        RunStatus::InputRequired => State::InputRequired,
        RunStatus::Failed => State::Failed,
        RunStatus::Canceled => State::Canceled,
    };
    let agent = record.agent.clone().unwrap_or_default();
    let input_required = state == State::InputRequired;
    let response = record.result.map(|reply| {
        response_from_reply(
            reply,
            input_required,
            agent.clone(),
            session,
            request_id,
            &record.trace_id,
        )
    });
    let (error_code, error_message, error_details) = match record.error {
        Some(error) => {
            let context = TaskContext {
                agent,
                federation_session_id: session.to_string(),
                request_id: request_id.to_string(),
                ..Default::default()
            };
            let message = error.message.clone();
            let error = WrapperError::from(error);
            let code = grpc_code(error.grpc_code());
            let status = wrapper_failure(error, &record.trace_id, &context);
            (code as i32, message, status_details(&status))
        }
        None => (0, String::new(), Vec::new()),
    };
    AgentTaskStatus {
        task_id: task_id.to_string(),
        state: state as i32,
        response,
        error_code,
        error_message,
        error_details,
        trace_id: record.trace_id,
    }
}

/// The task response of a wrapper reply (a run record's result, or the reply in a
/// `completed` event): output, result, session and request id, state, interrupt, agent.
pub(super) fn response_from_reply(
    reply: federation_wire::Object,
    input_required: bool,
    agent: String,
    session: &str,
    request_id: &str,
    trace_id: &str,
) -> TaskResponse {
    TaskResponse {
        state: if input_required {
            task_response::State::InputRequired
        } else {
            task_response::State::Completed
        } as i32,
        interrupt: reply
            .get("interrupt")
            .filter(|_| input_required)
            .cloned()
            .map(json_to_value),
        agent: reply
            .get("agent")
            .and_then(|v| v.as_str())
            .filter(|name| !name.is_empty())
            .map_or(agent, str::to_string),
        output: reply
            .get("output")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string(),
        resumed: reply
            .get("resumed")
            .and_then(|v| v.as_bool())
            .unwrap_or_default(),
        result: Some(json_to_struct(reply)),
        federation_session_id: session.to_string(),
        request_id: request_id.to_string(),
        trace_id: trace_id.to_string(),
        ..Default::default()
    }
}

/// The status of a run the wrapper reports failed: the one a caller of RunAgentTask
/// gets for it, details and all.
pub(super) fn wrapper_failure(
    error: WrapperError,
    trace_id: &str,
    context: &TaskContext,
) -> Status {
    task_status(&TaskError::Upstream(error), trace_id, context)
}
