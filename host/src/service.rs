//! `FederationService.RunAgentTask`: validate, pick the adapter, run it in its sandbox
//! within the caller's deadline, answer with the result and the trace id.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use opentelemetry::trace::TraceContextExt;
use tokio::sync::Semaphore;
use tonic::{Request, Response, Status};
use tracing::{Instrument, field::Empty};
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::error::TaskError;
use crate::json::json_to_struct;
use crate::metrics::AdapterMetrics;
use crate::proto::federation_service_server::FederationService;
use crate::proto::{TaskRequest, TaskResponse, Timing};
use crate::runtime::adapter::{Adapter, AdapterRuntime, RunError};
use crate::runtime::ctx::Usage;
use crate::runtime::registry::AdapterRegistry;
use crate::server::Arrival;
use crate::task::{grpc_timeout, validate};

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

pub struct Federation {
    runtime: Arc<AdapterRuntime>,
    registry: Arc<AdapterRegistry>,
    config: ServiceConfig,
    in_flight: Arc<Semaphore>,
}

impl Federation {
    pub fn new(
        runtime: Arc<AdapterRuntime>,
        registry: Arc<AdapterRegistry>,
        config: ServiceConfig,
    ) -> Self {
        let in_flight = Arc::new(Semaphore::new(config.max_concurrent_tasks));
        Federation {
            runtime,
            registry,
            config,
            in_flight,
        }
    }

    async fn run_task(
        &self,
        request: TaskRequest,
        budget: Duration,
        received: Instant,
    ) -> Result<TaskResponse, TaskError> {
        let _permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::Overloaded(self.config.max_concurrent_tasks))?;
        let deadline = received + budget;
        let valid = validate(request, &self.config.wrapper_url, budget)?;
        let adapter =
            self.registry
                .get(&valid.backend)
                .ok_or_else(|| TaskError::UnknownBackend {
                    name: valid.backend.clone(),
                    loaded: self.registry.names().join(", "),
                })?;
        // The adapter's own limit (its policy), so one adapter cannot take every slot.
        let _adapter_slot = adapter
            .task_slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::AdapterBusy {
                adapter: adapter.info.name.clone(),
                limit: adapter.policy.max_concurrent_tasks,
            })?;
        let session = valid.task.federation_session_id.clone();
        let request_id = valid.task.request_id.clone();
        let span = adapter_span(&adapter, &session, &request_id);

        let run = self.runtime.run(&adapter, valid.task, deadline);
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
        let outcome = match result {
            Ok(outcome) => outcome,
            Err((trapped, error)) => {
                let error = TaskError::from_run(&adapter.info.name, error, received.elapsed());
                span.record("otel.status_code", "ERROR");
                span.record("error.type", format!("{:?}", error.code()));
                AdapterMetrics::get().record(&adapter, &usage, Some(code_name(&error)), trapped);
                return Err(error);
            }
        };
        span.record("federation.resumed", outcome.response.resumed);
        let size = outcome.response.output.len() + outcome.response.result_json.len();
        if size > self.config.max_output_bytes {
            let error = TaskError::OutputTooLarge {
                adapter: adapter.info.name.clone(),
                size,
                limit: self.config.max_output_bytes,
            };
            span.record("otel.status_code", "ERROR");
            AdapterMetrics::get().record(&adapter, &usage, Some(code_name(&error)), false);
            return Err(error);
        }
        AdapterMetrics::get().record(&adapter, &usage, None, false);

        let result = match serde_json::from_str(&outcome.response.result_json) {
            Ok(serde_json::Value::Object(map)) => map,
            _ => {
                return Err(TaskError::Internal(format!(
                    "adapter {:?} returned a result that is not a JSON object",
                    adapter.info.name
                )));
            }
        };
        Ok(TaskResponse {
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

#[tonic::async_trait]
impl FederationService for Federation {
    async fn run_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<TaskResponse>, Status> {
        let received = request
            .extensions()
            .get::<Arrival>()
            .map_or_else(Instant::now, |arrival| arrival.0);
        let budget = request
            .metadata()
            .get("grpc-timeout")
            .and_then(|v| v.to_str().ok())
            .and_then(grpc_timeout)
            .map_or(self.config.default_task_timeout, |t| {
                t.saturating_sub(deadline_margin(t))
                    .min(self.config.default_task_timeout)
            });
        tracing::debug!(?budget, since_arrival = ?received.elapsed(), "task budget");
        let trace_id = current_trace_id();
        let span = tracing::Span::current();
        let result = self.run_task(request.into_inner(), budget, received).await;
        match result {
            Ok(mut response) => {
                response.trace_id = trace_id;
                span.record("rpc.grpc.status_code", 0);
                Ok(Response::new(response))
            }
            Err(error) => {
                let status = Status::from(error);
                tracing::warn!(code = ?status.code(), message = status.message(), "task failed");
                span.record("rpc.grpc.status_code", status.code() as i32);
                span.record("otel.status_code", "ERROR");
                let mut status = status;
                if let Ok(value) = trace_id.parse() {
                    status.metadata_mut().insert("x-trace-id", value);
                }
                Err(status)
            }
        }
    }
}
