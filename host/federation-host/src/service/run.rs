//! `RunAgentTask`, and what every way of running a task shares: admission (the host's
//! and the adapter's concurrency limits, validation, the adapter lookup) and execution
//! (the run on the executor within the deadline, the wrapper run cancelled when the
//! caller goes away, the result checked, the adapter span and metrics recorded once,
//! from the outcome the caller gets).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::sync::OwnedSemaphorePermit;
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};

use federation_proto::json::{json_to_struct, json_to_value};
use federation_proto::{TaskRequest, TaskResponse, Timing, task_response};
use federation_runtime::bindings::Task;
use federation_runtime::{
    Adapter, AdapterMetrics, ProgressSink, RunError, RunOutcome, TaskInteraction, Usage,
    parse_interrupt,
};

use super::{Executor, Federation, task_id};
use crate::auth::Caller;
use crate::deadline::arrival_and_budget;
use crate::error::{TaskContext, TaskError, answer, code_name};
use crate::telemetry::current_trace_id;
use crate::validate::validate;
use crate::wrapper_runs::CancelOnDrop;

impl<E: Executor> Federation<E> {
    /// `RunAgentTask`: the task within the caller's deadline, answered with its trace id.
    pub(super) async fn run_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<TaskResponse>, Status> {
        let (received, budget) = arrival_and_budget(&request, self.config.default_task_timeout);
        tracing::debug!(?budget, since_arrival = ?received.elapsed(), "task budget");
        let trace_id = current_trace_id();
        let caller = Caller::of(&request);
        let request = request.into_inner();
        let context = TaskContext::of(&request);
        let result = self.run_task(request, &caller, budget, received).await;
        answer(result, trace_id, &context).map(Response::new)
    }

    pub(super) async fn run_task(
        &self,
        request: TaskRequest,
        caller: &Caller,
        budget: Duration,
        received: Instant,
    ) -> Result<TaskResponse, TaskError> {
        let admitted = self.admit(request, caller, budget)?;
        self.execute(admitted, received, None).await
    }

    /// Everything that can refuse a task before it starts: the host's and the
    /// adapter's concurrency limits, validation, the caller's limits and ownership,
    /// the adapter lookup.
    pub(super) fn admit(
        &self,
        request: TaskRequest,
        caller: &Caller,
        budget: Duration,
    ) -> Result<Admitted, TaskError> {
        let in_flight = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::Overloaded(self.config.max_concurrent_tasks))?;
        let mut valid = validate(request, &self.config.wrapper_url, budget)?;
        check_caller(caller, &valid.backend, &valid.interaction.agent)?;
        self.started.check_owner(
            &task_id(&valid.task.federation_session_id, &valid.task.request_id),
            &caller.principal,
        )?;
        valid.interaction.principal = Some(caller.principal.to_string());
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
    pub(super) async fn execute(
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
        let principal = interaction.principal.clone().unwrap_or_default();
        let mut cancel = CancelOnDrop::new(
            self.runs.clone(),
            session.clone(),
            request_id.clone(),
            principal,
        );

        let asked_agent = interaction.agent.clone();
        let run = self
            .executor
            .run(&adapter, task, interaction, deadline, progress);
        let (result, usage) = within_deadline(run, deadline, &span).await;
        record_usage(&span, &usage);
        warn_if_progress_dropped(&span, &adapter, &usage);
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
        record_outcome(&span, &adapter, &usage, &result, trapped);
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

/// Refuses a backend or agent outside the caller's limits. A caller limited to some
/// agents must name one: the host cannot tell which agent the default would be.
pub(super) fn check_caller(caller: &Caller, backend: &str, agent: &str) -> Result<(), TaskError> {
    let refuse = |kind: &'static str, name: &str| TaskError::NotAllowed {
        principal: caller.principal.to_string(),
        kind,
        name: name.to_string(),
    };
    if !caller.may_use_backend(backend) {
        return Err(refuse("backend", backend));
    }
    if !caller.may_run_agent(agent) {
        return Err(refuse("agent", agent));
    }
    Ok(())
}

/// A task that passed admission, holding its slots until it ends.
pub(super) struct Admitted {
    pub(super) task: Task,
    interaction: TaskInteraction,
    pub(super) adapter: Arc<Adapter>,
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

/// The adapter's `run`, given up at `deadline`; a failure says whether the guest
/// trapped.
async fn within_deadline(
    run: impl Future<Output = (Result<RunOutcome, RunError>, Usage)>,
    deadline: Instant,
    span: &tracing::Span,
) -> (Result<RunOutcome, (bool, RunError)>, Usage) {
    // The epoch callback stops a running guest at the deadline; this outer timer
    // also covers time spent in host code (instantiation, outbound waits).
    match tokio::time::timeout_at(deadline.into(), run)
        .instrument(span.clone())
        .await
    {
        Ok((result, usage)) => (
            result.map_err(|e| (matches!(e, RunError::Trap { .. }), e)),
            usage,
        ),
        Err(_) => (Err((false, RunError::DeadlineExceeded)), Usage::default()),
    }
}

/// A warning when the adapter reported more progress events than a task may.
fn warn_if_progress_dropped(span: &tracing::Span, adapter: &Adapter, usage: &Usage) {
    if usage.progress_dropped > 0 {
        tracing::warn!(
            parent: span,
            adapter = %adapter.info.name,
            dropped = usage.progress_dropped,
            limit = federation_runtime::progress::MAX_EVENTS_PER_TASK,
            "the adapter reported more progress events than a task may; the rest were dropped"
        );
    }
}

/// The outcome the caller gets, on the adapter span and in the adapter's metrics.
fn record_outcome(
    span: &tracing::Span,
    adapter: &Adapter,
    usage: &Usage,
    result: &Result<TaskResponse, TaskError>,
    trapped: bool,
) {
    match result {
        Ok(_) => AdapterMetrics::get().record(&adapter.metric_attributes, usage, None, false),
        Err(error) => {
            span.record("otel.status_code", "ERROR");
            span.record("error.type", format!("{:?}", error.code()));
            AdapterMetrics::get().record(
                &adapter.metric_attributes,
                usage,
                Some(code_name(error.code())),
                trapped,
            );
        }
    }
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

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}
