//! Every failure the host answers, and its one mapping to `tonic::Status`: a task's
//! ([`TaskError`], also for `GetAgentTask`/`CancelAgentTask` and `ListAgents`, whose
//! wrapper failures it takes in), the wrapper run API's ([`RunApiError`]) and
//! `AdminService`'s ([`AdminError`]). Nothing
//! else in the host builds a `Status`. Also the answer of a task RPC: the trace id in
//! the response, or in the `x-trace-id` metadata of its error.

use std::time::Duration;

use tonic::{Code, Status};

use federation_proto::TaskResponse;
use federation_runtime::bindings::AdapterError;
use federation_runtime::{InterruptError, RollbackError, RunError};

use crate::lifecycle::LifecycleError;
use crate::wrapper_runs::{AgentsError, RunApiError};

/// Why a `RunAgentTask` call failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("unknown backend {name:?}; loaded backends: {loaded}")]
    UnknownBackend { name: String, loaded: String },
    #[error("{0}")]
    InvalidArgument(String),
    /// `agent` or `resume` for an adapter that cannot pass them on: it would run the
    /// default agent, or start over instead of resuming.
    #[error(
        "adapter {adapter:?} cannot {what}: it has no `interaction` import (built against \
         adapter contract 0.1.1 or earlier); rebuild it against 0.1.2 or later"
    )]
    InteractionUnsupported { adapter: String, what: &'static str },
    #[error("adapter {adapter:?} asked for input, but {error}")]
    BadInterrupt {
        adapter: String,
        error: InterruptError,
    },
    #[error("the host is running {0} tasks, its limit; retry later")]
    Overloaded(usize),
    #[error("adapter {adapter:?} is running {limit} tasks, its policy's limit; retry later")]
    AdapterBusy { adapter: String, limit: usize },
    #[error("adapter {adapter:?} used its CPU budget of {budget:?} for one task")]
    CpuBudget { adapter: String, budget: Duration },
    #[error("adapter {adapter:?} hit its memory limit: {message}")]
    MemoryLimit { adapter: String, message: String },
    #[error("adapter {adapter:?} returned {size} bytes of output; the limit is {limit}")]
    OutputTooLarge {
        adapter: String,
        size: usize,
        limit: usize,
    },
    #[error("deadline exceeded after {0:?}")]
    DeadlineExceeded(Duration),
    #[error("adapter {adapter:?} rejected the task: {message}")]
    AdapterInvalidInput { adapter: String, message: String },
    #[error("agent wrapper answered HTTP {status}: {message}")]
    Upstream { status: u16, message: String },
    #[error("agent wrapper unreachable: {0}")]
    Unavailable(String),
    #[error("adapter {adapter:?} trapped: {message}")]
    Trap { adapter: String, message: String },
    #[error("{0}")]
    Internal(String),
}

impl TaskError {
    /// Attributes a runtime failure of `adapter`; `elapsed` is the task's age.
    pub fn from_run(adapter: &str, error: RunError, elapsed: Duration) -> Self {
        match error {
            RunError::DeadlineExceeded => TaskError::DeadlineExceeded(elapsed),
            RunError::CpuBudget(budget) => TaskError::CpuBudget {
                adapter: adapter.to_string(),
                budget,
            },
            RunError::MemoryLimit(message) => TaskError::MemoryLimit {
                adapter: adapter.to_string(),
                message,
            },
            RunError::Trap { message } => TaskError::Trap {
                adapter: adapter.to_string(),
                message,
            },
            RunError::Instantiate(message) => TaskError::Internal(format!(
                "could not instantiate adapter {adapter:?}: {message}"
            )),
            RunError::Adapter(error) => match error {
                AdapterError::InvalidInput(message) => TaskError::AdapterInvalidInput {
                    adapter: adapter.to_string(),
                    message,
                },
                AdapterError::UpstreamStatus(upstream) => TaskError::Upstream {
                    status: upstream.status,
                    message: upstream.message,
                },
                AdapterError::Transport(message) => TaskError::Unavailable(message),
                AdapterError::Timeout(_) => TaskError::DeadlineExceeded(elapsed),
                AdapterError::Internal(message) => {
                    TaskError::Internal(format!("adapter {adapter:?}: {message}"))
                }
            },
        }
    }

    pub fn code(&self) -> Code {
        match self {
            TaskError::UnknownBackend { .. } => Code::NotFound,
            TaskError::InteractionUnsupported { .. } => Code::FailedPrecondition,
            TaskError::BadInterrupt { error, .. } => match error {
                InterruptError::TooLarge(_) => Code::ResourceExhausted,
                InterruptError::NotJson(_) => Code::Internal,
            },
            TaskError::InvalidArgument(_) | TaskError::AdapterInvalidInput { .. } => {
                Code::InvalidArgument
            }
            TaskError::Overloaded(_)
            | TaskError::AdapterBusy { .. }
            | TaskError::CpuBudget { .. }
            | TaskError::MemoryLimit { .. }
            | TaskError::OutputTooLarge { .. } => Code::ResourceExhausted,
            TaskError::DeadlineExceeded(_) => Code::DeadlineExceeded,
            TaskError::Upstream { status, .. } => upstream_code(*status),
            TaskError::Unavailable(_) => Code::Unavailable,
            TaskError::Trap { .. } | TaskError::Internal(_) => Code::Internal,
        }
    }
}

/// gRPC code for a wrapper HTTP status (after the gRPC spec's HTTP mapping, with the
/// 4xx codes an agent wrapper uses spelled out).
pub fn upstream_code(status: u16) -> Code {
    match status {
        400 | 422 => Code::InvalidArgument,
        401 => Code::Unauthenticated,
        403 => Code::PermissionDenied,
        404 => Code::NotFound,
        408 | 504 => Code::DeadlineExceeded,
        409 => Code::Aborted,
        // The wrapper's "run canceled" (nginx's client-closed-request).
        499 => Code::Cancelled,
        412 => Code::FailedPrecondition,
        413 | 429 => Code::ResourceExhausted,
        501 => Code::Unimplemented,
        503 => Code::Unavailable,
        400..=499 => Code::FailedPrecondition,
        _ => Code::Internal,
    }
}

impl From<TaskError> for Status {
    fn from(error: TaskError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

impl From<AgentsError> for TaskError {
    fn from(error: AgentsError) -> Self {
        match error {
            AgentsError::Unreachable(message) => TaskError::Unavailable(message),
            AgentsError::Status { status, message } => TaskError::Upstream { status, message },
            AgentsError::NoList(_) => TaskError::Internal(error.to_string()),
        }
    }
}

/// The gRPC code of a failed call to the wrapper's run API.
pub fn run_api_code(error: &RunApiError) -> Code {
    match error {
        RunApiError::NotFound { .. } => Code::NotFound,
        RunApiError::Failed(_) => Code::Unavailable,
    }
}

impl From<RunApiError> for Status {
    fn from(error: RunApiError) -> Self {
        Status::new(run_api_code(&error), error.to_string())
    }
}

/// Why an `AdminService` call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin calls need `authorization: Bearer <admin token>`")]
    Unauthenticated,
    #[error("component is empty")]
    EmptyComponent,
    #[error("component is {size} bytes; this host accepts at most {limit} (--max-upload-mib)")]
    ComponentTooLarge { size: usize, limit: usize },
    #[error("no adapter named {0:?} is loaded")]
    NotLoaded(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl AdminError {
    pub fn code(&self) -> Code {
        match self {
            AdminError::Unauthenticated => Code::Unauthenticated,
            AdminError::EmptyComponent => Code::InvalidArgument,
            AdminError::ComponentTooLarge { .. } => Code::ResourceExhausted,
            AdminError::NotLoaded(_) => Code::NotFound,
            AdminError::Lifecycle(error) => match error {
                LifecycleError::Rollback(RollbackError::NotFound(_)) => Code::NotFound,
                LifecycleError::Rollback(RollbackError::NoPrevious(_)) => Code::FailedPrecondition,
                LifecycleError::Rejected(_) => Code::InvalidArgument,
                LifecycleError::Directory { .. } => Code::Internal,
            },
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        Status::new(error.code(), error.to_string())
    }
}

/// The canonical name of `code` (`RESOURCE_EXHAUSTED`), for metrics.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// A task's result as the gRPC answer: the trace id in the response, or in the
/// `x-trace-id` metadata of the error; the server span gets the status code.
pub fn answer(
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
pub fn error_status(error: TaskError, trace_id: &str) -> Status {
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

#[cfg(test)]
mod tests {
    use super::*;
    use federation_runtime::bindings::UpstreamStatus;

    fn upstream(status: u16) -> Code {
        TaskError::from_run(
            "crewai",
            RunError::Adapter(AdapterError::UpstreamStatus(UpstreamStatus {
                status,
                message: "m".into(),
            })),
            Duration::ZERO,
        )
        .code()
    }

    #[test]
    fn wrapper_statuses_map_to_grpc_codes() {
        assert_eq!(upstream(422), Code::InvalidArgument);
        assert_eq!(upstream(404), Code::NotFound);
        assert_eq!(upstream(409), Code::Aborted);
        assert_eq!(upstream(413), Code::ResourceExhausted);
        assert_eq!(upstream(418), Code::FailedPrecondition);
        assert_eq!(upstream(500), Code::Internal);
        assert_eq!(upstream(502), Code::Internal);
        assert_eq!(upstream(503), Code::Unavailable);
        assert_eq!(upstream(504), Code::DeadlineExceeded);
    }

    #[test]
    fn host_errors_map_to_grpc_codes() {
        let adapter = || "test-faults".to_string();
        for (error, code) in [
            (
                TaskError::UnknownBackend {
                    name: "x".into(),
                    loaded: "crewai".into(),
                },
                Code::NotFound,
            ),
            (
                TaskError::InvalidArgument("agent".into()),
                Code::InvalidArgument,
            ),
            (
                TaskError::InteractionUnsupported {
                    adapter: adapter(),
                    what: "run a named agent",
                },
                Code::FailedPrecondition,
            ),
            (
                TaskError::BadInterrupt {
                    adapter: adapter(),
                    error: InterruptError::NotJson("eof".into()),
                },
                Code::Internal,
            ),
            (
                TaskError::BadInterrupt {
                    adapter: adapter(),
                    error: InterruptError::TooLarge(1 << 20),
                },
                Code::ResourceExhausted,
            ),
            (TaskError::Overloaded(1), Code::ResourceExhausted),
            (TaskError::Unavailable("refused".into()), Code::Unavailable),
            (
                TaskError::DeadlineExceeded(Duration::ZERO),
                Code::DeadlineExceeded,
            ),
            (TaskError::Internal("x".into()), Code::Internal),
        ] {
            assert_eq!(error.code(), code, "{error}");
        }
    }

    #[test]
    fn an_old_adapter_refusing_an_agent_says_why() {
        let message = TaskError::InteractionUnsupported {
            adapter: "test-faults".into(),
            what: "run a named agent",
        }
        .to_string();
        assert!(
            message.contains("\"test-faults\" cannot run a named agent"),
            "{message}"
        );
        assert!(message.contains("0.1.2"), "{message}");
    }

    #[test]
    fn status_message_names_the_cause() {
        let status = Status::from(TaskError::Upstream {
            status: 500,
            message: "boom".into(),
        });
        assert_eq!(status.code(), Code::Internal);
        assert!(status.message().contains("HTTP 500: boom"));
    }

    #[test]
    fn admin_and_run_api_errors_map_to_grpc_codes() {
        for (error, code) in [
            (AdminError::Unauthenticated, Code::Unauthenticated),
            (AdminError::EmptyComponent, Code::InvalidArgument),
            (
                AdminError::ComponentTooLarge { size: 2, limit: 1 },
                Code::ResourceExhausted,
            ),
            (AdminError::NotLoaded("x".into()), Code::NotFound),
            (
                AdminError::Lifecycle(LifecycleError::Rollback(RollbackError::NotFound(
                    "x".into(),
                ))),
                Code::NotFound,
            ),
            (
                AdminError::Lifecycle(LifecycleError::Rollback(RollbackError::NoPrevious(
                    "x".into(),
                ))),
                Code::FailedPrecondition,
            ),
        ] {
            assert_eq!(Status::from(error).code(), code);
        }
        let missing = RunApiError::NotFound {
            session: "s".into(),
            request_id: "r".into(),
        };
        assert_eq!(Status::from(missing).code(), Code::NotFound);
        let failed = Status::from(RunApiError::Failed("HTTP 500".into()));
        assert_eq!(failed.code(), Code::Unavailable);
        assert!(
            failed.message().contains("HTTP 500"),
            "{}",
            failed.message()
        );
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
    }
}
