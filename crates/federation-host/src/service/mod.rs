//! `FederationService`: `RunAgentTask` validates, picks the adapter, runs it in its
//! sandbox within the caller's deadline and answers with the result and the trace id;
//! a task whose caller goes away (or whose deadline passes) gets its wrapper run
//! cancelled. `StartAgentTask` / `GetAgentTask` / `CancelAgentTask` run the same task
//! in the background (the table of those lives in [`crate::async_tasks`]).
//! `StreamAgentTask` runs it beside a stream of its progress events
//! (`federation_runtime::progress`), ending with the result. A run may stop to ask for input
//! ([`crate::interaction`]): its task ends INPUT_REQUIRED. `ListAgents` lists the
//! wrapper's agents ([`crate::agents`]).

use std::{
    sync::Arc,
    time::{Duration, Instant, SystemTime},
};

use opentelemetry::trace::TraceContextExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{StreamExt, wrappers::ReceiverStream};
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::agents::{Backend, agent_infos, framework_of};
use crate::async_tasks::AsyncTasks;
use crate::error::TaskError;
use crate::json::{json_to_struct, json_to_value};
use crate::proto::federation_service_server::FederationService;
use crate::proto::{
    AgentTaskStatus, CancelAgentTaskRequest, GetAgentTaskRequest, ListAgentsRequest,
    ListAgentsResponse, StartAgentTaskResponse, TaskEvent, TaskFailed, TaskProgress, TaskRequest,
    TaskResponse, TaskStarted, Timing, task_event, task_progress, task_response,
};
use crate::server::Arrival;
use crate::task::{grpc_timeout, validate};
use crate::wrapper_runs::{CancelOnDrop, RunApiError, WrapperRuns};
use federation_runtime::AdapterMetrics;
use federation_runtime::AdapterRegistry;
use federation_runtime::Usage;
use federation_runtime::bindings::EventKind;
use federation_runtime::bindings::Task;
use federation_runtime::{Adapter, AdapterRuntime, RunError, RunOutcome};
use federation_runtime::{Progress, ProgressSink};
use federation_runtime::{TaskInteraction, parse_interrupt};
use federation_wire::{RunRecord, RunStatus};

/// Time kept back from the caller's deadline so our own DEADLINE_EXCEEDED answer
/// (with the trace id and the cause) reaches the caller before its own timer fires
/// (which reports a bare CANCELLED). Covers timer resolution, unwinding the guest and
/// a loaded machine: a tenth of the deadline, at least 15 ms and at most 250 ms.
fn deadline_margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(15), Duration::from_millis(250))
}

/// Settings the service needs per task.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub wrapper_url: String,
    /// Budget of a task whose caller set no deadline.
    pub default_task_timeout: Duration,
    /// Tasks allowed in flight at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_tasks: usize,
    /// Largest output + result an adapter may return, bytes.
    pub max_output_bytes: usize,
}

#[derive(Clone)]
pub struct Federation {
    runtime: Arc<AdapterRuntime>,
    registry: Arc<AdapterRegistry>,
    config: Arc<ServiceConfig>,
    in_flight: Arc<Semaphore>,
    runs: Arc<WrapperRuns>,
    started: Arc<AsyncTasks>,
}

impl Federation {
    pub fn new(
        runtime: Arc<AdapterRuntime>,
        registry: Arc<AdapterRegistry>,
        config: ServiceConfig,
    ) -> anyhow::Result<Self> {
        let in_flight = Arc::new(Semaphore::new(config.max_concurrent_tasks));
        Ok(Federation {
            runtime,
            registry,
            runs: Arc::new(WrapperRuns::new(&config.wrapper_url)?),
            started: Arc::new(AsyncTasks::default()),
            config: Arc::new(config),
            in_flight,
        })
    }

    async fn run_task(
        &self,
        request: TaskRequest,
        budget: Duration,
        received: Instant,
    ) -> Result<TaskResponse, TaskError> {
        let admitted = self.admit(request, budget)?;
        self.execute(admitted, received, None).await
    }

    /// Everything that can refuse a task before it starts: the host's and the
    /// adapter's concurrency limits, validation, the adapter lookup.
    fn admit(&self, request: TaskRequest, budget: Duration) -> Result<Admitted, TaskError> {
        let in_flight = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::Overloaded(self.config.max_concurrent_tasks))?;
        let valid = validate(request, &self.config.wrapper_url, budget)?;
        let adapter =
            self.registry
                .get(&valid.backend)
                .ok_or_else(|| TaskError::UnknownBackend {
                    name: valid.backend.clone(),
                    loaded: self.registry.names().join(", "),
                })?;
        // An adapter without `interaction` would run the default agent, or start over
        // instead of resuming: refuse rather than answer something else.
        if valid.interaction.needs_adapter_support() && !adapter.supports_interaction {
            return Err(TaskError::InteractionUnsupported {
                adapter: adapter.info.name.clone(),
                what: if valid.interaction.agent.is_empty() {
                    "resume an interrupt"
                } else {
                    "run a named agent"
                },
            });
        }
        // The adapter's own limit (its policy), so one adapter cannot take every slot.
        let adapter_slot = adapter
            .task_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::AdapterBusy {
                adapter: adapter.info.name.clone(),
                limit: adapter.policy.max_concurrent_tasks,
            })?;
        Ok(Admitted {
            task: valid.task,
            interaction: valid.interaction,
            adapter,
            budget,
            _in_flight: in_flight,
            _adapter_slot: adapter_slot,
        })
    }

    /// Runs an admitted task to its response; `progress` receives the adapter's
    /// progress events when someone watches the task.
    async fn execute(
        &self,
        admitted: Admitted,
        received: Instant,
        progress: Option<ProgressSink>,
    ) -> Result<TaskResponse, TaskError> {
        // The slots are bound (not `_`) so they are held until the task ends.
        let Admitted {
            task,
            interaction,
            adapter,
            budget,
            _in_flight,
            _adapter_slot,
        } = admitted;
        let deadline = received + budget;
        let session = task.federation_session_id.clone();
        let request_id = task.request_id.clone();
        let span = adapter_span(&adapter, &session, &request_id);
        // Fires if this future is dropped (caller cancelled or disconnected) or the
        // deadline passes before the run ends: the wrapper stops at its next step.
        let mut cancel = CancelOnDrop::new(self.runs.clone(), session.clone(), request_id.clone());

        let asked_agent = interaction.agent.clone();
        let run = self
            .runtime
            .run_watched(&adapter, task, interaction, deadline, progress);
        // The epoch callback stops a running guest at the deadline; this outer timer
        // also covers time spent in host code (instantiation, outbound waits).
        let (result, usage) = match tokio::time::timeout_at(deadline.into(), run)
            .instrument(span.clone())
            .await
        {
            Ok((result, usage)) => (
                result.map_err(|e| (matches!(e, RunError::Trap { .. }), e)),
                usage,
            ),
            Err(_) => (Err((false, RunError::DeadlineExceeded)), Usage::default()),
        };
        record_usage(&span, &usage);
        if usage.progress_dropped > 0 {
            tracing::warn!(
                parent: &span,
                adapter = %adapter.info.name,
                dropped = usage.progress_dropped,
                limit = federation_runtime::progress::MAX_EVENTS_PER_TASK,
                "the adapter reported more progress events than a task may; the rest were dropped"
            );
        }
        if !matches!(result, Err((_, RunError::DeadlineExceeded))) {
            cancel.disarm();
        }
        // Every way the task can still fail is decided before anything is recorded, so
        // the span and the metrics tell the outcome the caller gets.
        let (result, trapped) = match result {
            Ok(outcome) => {
                span.record("federation.resumed", outcome.response.resumed);
                let response = self.respond(&adapter, outcome, asked_agent, request_id, received);
                (response, false)
            }
            Err((trapped, error)) => (
                Err(TaskError::from_run(
                    &adapter.info.name,
                    error,
                    received.elapsed(),
                )),
                trapped,
            ),
        };
        match &result {
            Ok(_) => AdapterMetrics::get().record(&adapter.metric_attributes, &usage, None, false),
            Err(error) => {
                span.record("otel.status_code", "ERROR");
                span.record("error.type", format!("{:?}", error.code()));
                AdapterMetrics::get().record(
                    &adapter.metric_attributes,
                    &usage,
                    Some(code_name(error)),
                    trapped,
                );
            }
        }
        result
    }

    /// The caller's answer for what the adapter returned: refused when it is too large,
    /// its interrupt is not JSON or its result not a JSON object.
    fn respond(
        &self,
        adapter: &Adapter,
        outcome: RunOutcome,
        asked_agent: String,
        request_id: String,
        received: Instant,
    ) -> Result<TaskResponse, TaskError> {
        let interrupt_len = outcome.interrupt.as_ref().map_or(0, String::len);
        let size =
            outcome.response.output.len() + outcome.response.result_json.len() + interrupt_len;
        if size > self.config.max_output_bytes {
            return Err(TaskError::OutputTooLarge {
                adapter: adapter.info.name.clone(),
                size,
                limit: self.config.max_output_bytes,
            });
        }
        let interrupt = match outcome.interrupt.as_deref().map(parse_interrupt) {
            None => None,
            Some(Ok(value)) => Some(value),
            Some(Err(error)) => {
                return Err(TaskError::BadInterrupt {
                    adapter: adapter.info.name.clone(),
                    error,
                });
            }
        };
        let result = match serde_json::from_str(&outcome.response.result_json) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(TaskError::Internal(format!(
                    "adapter {:?} returned a result that is not a JSON object",
                    adapter.info.name
                )));
            }
        };
        // The wrapper names the agent that ran (the default's name for an empty one).
        let agent = match result.get("agent") {
            Some(serde_json::Value::String(name)) if !name.is_empty() => name.clone(),
            _ => asked_agent,
        };
        let state = match interrupt {
            Some(_) => task_response::State::InputRequired,
            None => task_response::State::Completed,
        };
        Ok(TaskResponse {
            state: state as i32,
            interrupt: interrupt.map(json_to_value),
            agent,
            output: outcome.response.output,
            result: Some(json_to_struct(result)),
            federation_session_id: outcome.response.federation_session_id,
            backend: adapter.info.name.clone(),
            adapter_version: adapter.info.version.clone(),
            adapter_digest: adapter.digest.clone(),
            trace_id: String::new(),
            resumed: outcome.response.resumed,
            request_id,
            timing: Some(Timing {
                total_us: micros(received.elapsed()),
                instantiate_us: micros(outcome.instantiate_time),
                adapter_us: micros(outcome.call_time),
                outbound_us: micros(outcome.usage.outbound_time),
            }),
        })
    }
}

/// A task that passed admission, holding its slots until it ends.
struct Admitted {
    task: Task,
    interaction: TaskInteraction,
    adapter: Arc<Adapter>,
    budget: Duration,
    _in_flight: OwnedSemaphorePermit,
    _adapter_slot: OwnedSemaphorePermit,
}

fn adapter_span(adapter: &Adapter, session: &str, request_id: &str) -> tracing::Span {
    tracing::info_span!(
        "adapter.run_task",
        otel.name = %format!("adapter {}", adapter.info.name),
        otel.kind = "internal",
        otel.status_code = Empty,
        error.type = Empty,
        adapter.name = %adapter.info.name,
        adapter.version = %adapter.info.version,
        adapter.framework = %adapter.info.framework,
        adapter.digest = %adapter.digest,
        federation.session_id = %session,
        federation.request_id = %request_id,
        federation.resumed = Empty,
        adapter.cpu_ms = Empty,
        adapter.memory_peak_bytes = Empty,
        adapter.outbound_requests = Empty,
        adapter.outbound_denied = Empty,
    )
}

fn record_usage(span: &tracing::Span, usage: &Usage) {
    span.record("adapter.cpu_ms", usage.cpu_time.as_millis() as i64);
    span.record("adapter.memory_peak_bytes", usage.memory_peak as i64);
    span.record(
        "adapter.outbound_requests",
        i64::from(usage.outbound_requests),
    );
    span.record("adapter.outbound_denied", i64::from(usage.outbound_denied));
}

/// The gRPC code of `error` as its canonical name (`RESOURCE_EXHAUSTED`), for metrics.
fn code_name(error: &TaskError) -> &'static str {
    match error.code() {
        tonic::Code::Ok => "OK",
        tonic::Code::Cancelled => "CANCELLED",
        tonic::Code::Unknown => "UNKNOWN",
        tonic::Code::InvalidArgument => "INVALID_ARGUMENT",
        tonic::Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        tonic::Code::NotFound => "NOT_FOUND",
        tonic::Code::AlreadyExists => "ALREADY_EXISTS",
        tonic::Code::PermissionDenied => "PERMISSION_DENIED",
        tonic::Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        tonic::Code::FailedPrecondition => "FAILED_PRECONDITION",
        tonic::Code::Aborted => "ABORTED",
        tonic::Code::OutOfRange => "OUT_OF_RANGE",
        tonic::Code::Unimplemented => "UNIMPLEMENTED",
        tonic::Code::Internal => "INTERNAL",
        tonic::Code::Unavailable => "UNAVAILABLE",
        tonic::Code::DataLoss => "DATA_LOSS",
        tonic::Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

/// The current trace id as 32 lowercase hex digits.
pub fn current_trace_id() -> String {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}

/// When `request` arrived and the time its task gets: the caller's deadline less the
/// margin, capped by `default` (also the budget when the caller set no deadline).
pub fn arrival_and_budget<T>(request: &Request<T>, default: Duration) -> (Instant, Duration) {
    let received = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |arrival| arrival.0);
    let budget = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
        .map_or(default, |t| {
            t.saturating_sub(deadline_margin(t)).min(default)
        });
    (received, budget)
}

/// A task's result as the gRPC answer: the trace id in the response, or in the
/// `x-trace-id` metadata of the error; the server span gets the status code.
fn answer(
    result: Result<TaskResponse, TaskError>,
    trace_id: String,
) -> Result<TaskResponse, Status> {
    let span = tracing::Span::current();
    match result {
        Ok(mut response) => {
            response.trace_id = trace_id;
            span.record("rpc.grpc.status_code", 0);
            Ok(response)
        }
        Err(error) => Err(error_status(error, &trace_id)),
    }
}

/// The gRPC status of a failed task, with its trace id in the `x-trace-id` metadata;
/// the server span gets the status code.
fn error_status(error: TaskError, trace_id: &str) -> Status {
    let span = tracing::Span::current();
    let mut status = Status::from(error);
    tracing::warn!(code = ?status.code(), message = status.message(), "task failed");
    span.record("rpc.grpc.status_code", status.code() as i32);
    span.record("otel.status_code", "ERROR");
    if let Ok(value) = trace_id.parse() {
        status.metadata_mut().insert("x-trace-id", value);
    }
    status
}

#[tonic::async_trait]
impl FederationService for Federation {
    async fn run_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<TaskResponse>, Status> {
        let (received, budget) = arrival_and_budget(&request, self.config.default_task_timeout);
        tracing::debug!(?budget, since_arrival = ?received.elapsed(), "task budget");
        let trace_id = current_trace_id();
        let result = self.run_task(request.into_inner(), budget, received).await;
        answer(result, trace_id).map(Response::new)
    }

    async fn stream_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<BoxStream<TaskEvent>>, Status> {
        let (received, budget) = arrival_and_budget(&request, self.config.default_task_timeout);
        let trace_id = current_trace_id();
        // Refusals before the task starts fail the call itself.
        let admitted = self
            .admit(request.into_inner(), budget)
            .map_err(|error| error_status(error, &trace_id))?;
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
                let last = match answer(result, final_trace_id) {
                    Ok(response) if response.state() == task_response::State::InputRequired => {
                        task_event::Event::InputRequired(response)
                    }
                    Ok(response) => task_event::Event::Completed(response),
                    Err(status) => task_event::Event::Failed(TaskFailed {
                        code: status.code() as i32,
                        message: status.message().to_string(),
                    }),
                };
                let _ = last_tx.send((SystemTime::now(), last));
            }
            .instrument(tracing::Span::current()),
        );
        let abort_on_drop = AbortOnDrop(task);
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

    async fn start_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<StartAgentTaskResponse>, Status> {
        let mut request = request.into_inner();
        for id in [&mut request.federation_session_id, &mut request.request_id] {
            if id.is_empty() {
                *id = uuid::Uuid::new_v4().to_string();
            }
        }
        // Bad input fails the start itself, not the task later.
        let budget = self.config.default_task_timeout;
        validate(request.clone(), &self.config.wrapper_url, budget).map_err(Status::from)?;
        let task_id = task_id(&request.federation_session_id, &request.request_id);
        let trace_id = current_trace_id();
        let reply = StartAgentTaskResponse {
            task_id: task_id.clone(),
            federation_session_id: request.federation_session_id.clone(),
            request_id: request.request_id.clone(),
            trace_id: trace_id.clone(),
        };
        if !self.started.reserve(&task_id, &trace_id) {
            // Already started here: attach (the wrapper runs it once anyway).
            return Ok(Response::new(reply));
        }
        let this = self.clone();
        let id = task_id.clone();
        // The task outlives this RPC; its spans stay in the caller's trace.
        let span = tracing::info_span!("agent_task", otel.name = "agent task (started)", federation.task_id = %task_id);
        let handle = tokio::spawn(
            async move {
                let result = this.run_task(request, budget, Instant::now()).await;
                let result = answer(result, trace_id);
                this.started.finish(&id, result);
            }
            .instrument(span),
        );
        self.started.running(&task_id, handle.abort_handle());
        Ok(Response::new(reply))
    }

    async fn get_agent_task(
        &self,
        request: Request<GetAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        let task_id = request.into_inner().task_id;
        if let Some(status) = self.started.status(&task_id) {
            return Ok(Response::new(status));
        }
        let (session, request_id) = parse_task_id(&task_id)?;
        let record = self
            .runs
            .status(session, request_id)
            .await
            .map_err(run_api_status)?;
        Ok(Response::new(status_from_record(
            &task_id, session, request_id, record,
        )))
    }

    async fn cancel_agent_task(
        &self,
        request: Request<CancelAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        let task_id = request.into_inner().task_id;
        let (session, request_id) = parse_task_id(&task_id)?;
        let local = self.started.cancel(&task_id);
        match self.runs.cancel(session, request_id).await {
            Ok(record) => {
                let status = status_from_record(&task_id, session, request_id, record);
                Ok(Response::new(local.unwrap_or(status)))
            }
            Err(RunApiError::NotFound { .. }) if local.is_some() => {
                Ok(Response::new(local.expect("checked")))
            }
            Err(error) => Err(run_api_status(error)),
        }
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        let backends: Vec<Backend> = self
            .registry
            .snapshot()
            .into_iter()
            .map(|(name, slot)| Backend {
                name,
                framework: slot.current.info.framework.clone(),
            })
            .collect();
        // An unknown backend is refused before the wrapper is asked.
        let framework = framework_of(&backends, &request.into_inner().backend)?;
        let agents = self.runs.agents().await?;
        Ok(Response::new(ListAgentsResponse {
            agents: agent_infos(agents, &backends, framework.as_deref()),
        }))
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

/// Aborts a spawned task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// `"<session>/<request_id>"`: both ids exclude `/`, so any replica can split it.
fn task_id(session: &str, request_id: &str) -> String {
    format!("{session}/{request_id}")
}

fn parse_task_id(task_id: &str) -> Result<(&str, &str), Status> {
    task_id
        .split_once('/')
        .filter(|(session, request_id)| {
            crate::task::id_is_valid(session) && crate::task::id_is_valid(request_id)
        })
        .ok_or_else(|| {
            Status::invalid_argument(format!(
                "task_id {task_id:?} is not \"<federation_session_id>/<request_id>\""
            ))
        })
}

fn run_api_status(error: RunApiError) -> Status {
    match error {
        RunApiError::NotFound { .. } => Status::not_found(error.to_string()),
        RunApiError::Failed(_) => Status::unavailable(error.to_string()),
    }
}

/// A task's status from the wrapper's run record (a task this replica did not run).
fn status_from_record(
    task_id: &str,
    session: &str,
    request_id: &str,
    record: RunRecord,
) -> AgentTaskStatus {
    use crate::proto::agent_task_status::State;
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
    let response = record.result.map(|reply| TaskResponse {
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
        trace_id: record.trace_id.clone(),
        ..Default::default()
    });
    let (error_code, error_message) = match record.error {
        Some(error) => (
            TaskError::Upstream {
                status: error.status,
                message: error.message.clone(),
            }
            .code() as i32,
            error.message,
        ),
        None => (0, String::new()),
    };
    AgentTaskStatus {
        task_id: task_id.to_string(),
        state: state as i32,
        response,
        error_code,
        error_message,
        trace_id: record.trace_id,
    }
}
