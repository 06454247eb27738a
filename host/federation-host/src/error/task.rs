//! [`TaskError`]: why a task RPC failed, and its one [`Mapping`].

use std::time::Duration;

use tonic::{Code, Status};

use federation_runtime::{AdapterFailure, InterruptError, RunError};
use federation_wire::WrapperError;

use super::{DEFAULT_RETRY_DELAY, Mapping, grpc_code, plain_status};
use crate::wrapper_runs::AgentsError;

/// Why a task RPC failed.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    #[error("unknown backend {name:?}; loaded backends: {loaded}")]
    UnknownBackend { name: String, loaded: String },
    /// A request field (`goal`, `input_data.topic`, `federation_session_id`) is invalid.
    #[error("{message}")]
    InvalidArgument { field: String, message: String },
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
    /// A background task's result is larger than the host keeps for all of them.
    #[error(
        "the task's result ({size} bytes) is larger than the host keeps for background \
         tasks ({budget} bytes, --background-results-mib)"
    )]
    ResultTooLarge { size: usize, budget: usize },
    #[error("deadline exceeded after {0:?}")]
    DeadlineExceeded(Duration),
    #[error("adapter {adapter:?} rejected the task: {message}")]
    AdapterInvalidInput { adapter: String, message: String },
    /// The wrapper's error reply, as data: status, code, `Retry-After`, message.
    #[error("agent wrapper answered {0}")]
    Upstream(WrapperError),
    #[error("agent wrapper unreachable: {0}")]
    Unavailable(String),
    /// The wrapper's event stream of a watched task stopped before its last event.
    #[error(
        "the wrapper's event stream of task {task_id} ended before its last event; watch \
         again after seq {last_seq}"
    )]
    StreamEnded { task_id: String, last_seq: u64 },
    #[error("adapter {adapter:?} trapped: {message}")]
    Trap { adapter: String, message: String },
    /// The caller's principal is limited to other backends or agents.
    #[error("principal {principal:?} may not use {kind} {name:?}")]
    NotAllowed {
        principal: String,
        kind: &'static str,
        name: String,
    },
    /// A task another principal started (its session is that principal's).
    #[error("task {task_id:?} belongs to another principal")]
    NotOwned { task_id: String },
    #[error("{0}")]
    Internal(String),
}

impl TaskError {
    /// An invalid request field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        TaskError::InvalidArgument {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Attributes a runtime failure of `adapter`; `elapsed` is the task's age.
    pub fn from_run(adapter: &str, error: RunError, elapsed: Duration) -> Self {
        let adapter = adapter.to_string();
        match error {
            RunError::DeadlineExceeded => TaskError::DeadlineExceeded(elapsed),
            RunError::CpuBudget(budget) => TaskError::CpuBudget { adapter, budget },
            RunError::MemoryLimit(message) => TaskError::MemoryLimit { adapter, message },
            RunError::Trap { message } => TaskError::Trap { adapter, message },
            RunError::Instantiate(message) => TaskError::Internal(format!(
                "could not instantiate adapter {adapter:?}: {message}"
            )),
            RunError::Adapter(failure) => match failure {
                AdapterFailure::InvalidInput(message) => {
                    TaskError::AdapterInvalidInput { adapter, message }
                }
                AdapterFailure::Upstream(error) => TaskError::Upstream(error),
                AdapterFailure::Transport(message) => TaskError::Unavailable(message),
                AdapterFailure::Timeout(_) => TaskError::DeadlineExceeded(elapsed),
                AdapterFailure::Internal(message) => {
                    TaskError::Internal(format!("adapter {adapter:?}: {message}"))
                }
            },
        }
    }

    /// How this error is answered: the one table of code, reason, metadata and retry.
    pub fn mapping(&self) -> Mapping {
        use Code::*;
        let limit = |adapter: &str, what: &str| {
            Mapping::new(ResourceExhausted, "RESOURCE_LIMIT")
                .with("adapter", adapter)
                .with("limit", what)
        };
        match self {
            TaskError::UnknownBackend { name, loaded } => {
                Mapping::new(NotFound, "BACKEND_NOT_FOUND")
                    .with("backend", name)
                    .with("loaded", loaded)
            }
            TaskError::InvalidArgument { field, message } => {
                Mapping::new(InvalidArgument, "INVALID_INPUT")
                    .with("field", field)
                    .violation(field, message)
            }
            TaskError::InteractionUnsupported { adapter, .. } => {
                Mapping::new(FailedPrecondition, "INTERACTION_UNSUPPORTED").with("adapter", adapter)
            }
            TaskError::BadInterrupt { adapter, error } => match error {
                InterruptError::TooLarge(_) => Mapping::new(ResourceExhausted, "RESOURCE_LIMIT"),
                InterruptError::NotJson(_) => Mapping::new(Internal, "ADAPTER_ERROR"),
            }
            .with("adapter", adapter),
            TaskError::Overloaded(limit) => Mapping::new(ResourceExhausted, "HOST_OVERLOADED")
                .with("limit", limit)
                .retry(DEFAULT_RETRY_DELAY),
            TaskError::AdapterBusy { adapter, limit } => {
                Mapping::new(ResourceExhausted, "ADAPTER_BUSY")
                    .with("adapter", adapter)
                    .with("limit", limit)
                    .retry(DEFAULT_RETRY_DELAY)
            }
            TaskError::CpuBudget { adapter, .. } => limit(adapter, "cpu"),
            TaskError::MemoryLimit { adapter, .. } => limit(adapter, "memory"),
            TaskError::OutputTooLarge { adapter, .. } => limit(adapter, "output"),
            TaskError::ResultTooLarge { .. } => limit("", "background_results"),
            TaskError::DeadlineExceeded(_) => Mapping::new(DeadlineExceeded, "DEADLINE_EXCEEDED"),
            TaskError::AdapterInvalidInput { adapter, message } => {
                Mapping::new(InvalidArgument, "INVALID_INPUT")
                    .with("adapter", adapter)
                    .violation("task", message)
            }
            TaskError::Upstream(error) => wrapper_mapping(error),
            TaskError::Unavailable(_) | TaskError::StreamEnded { .. } => {
                Mapping::new(Unavailable, "WRAPPER_UNAVAILABLE").retry(DEFAULT_RETRY_DELAY)
            }
            TaskError::Trap { adapter, .. } => {
                Mapping::new(Internal, "ADAPTER_TRAP").with("adapter", adapter)
            }
            TaskError::Internal(_) => Mapping::new(Internal, "INTERNAL"),
            TaskError::NotAllowed {
                principal,
                kind,
                name,
            } => Mapping::new(PermissionDenied, "PRINCIPAL_NOT_ALLOWED")
                .with("principal", principal)
                .with(kind, name),
            TaskError::NotOwned { task_id } => {
                Mapping::new(PermissionDenied, "SESSION_NOT_OWNED").with("task_id", task_id)
            }
        }
    }

    pub fn code(&self) -> Code {
        self.mapping().code
    }

    /// The stable `ErrorInfo.reason` of this error (documented in `docs/errors.md`).
    pub fn reason(&self) -> &'static str {
        self.mapping().reason
    }
}

/// A wrapper error's answer: the gRPC code of its status, the reason of its code (else
/// of its status), its status and code as metadata, and `RetryInfo` when a retry helps
/// (after its `Retry-After`, else [`DEFAULT_RETRY_DELAY`]).
pub(super) fn wrapper_mapping(error: &WrapperError) -> Mapping {
    let (reason, retryable) = error.reason();
    let mapping = Mapping::new(grpc_code(error.grpc_code()), reason)
        .with("http_status", error.status)
        .with("wrapper_code", error.code.as_deref().unwrap_or_default());
    if retryable {
        let delay = error
            .retry_after_secs
            .map_or(DEFAULT_RETRY_DELAY, Duration::from_secs);
        mapping.retry(delay)
    } else {
        mapping
    }
}

/// The status of a task error outside a task's answer (no task context): look-ups and
/// cancels of task ids.
impl From<TaskError> for Status {
    fn from(error: TaskError) -> Self {
        plain_status(&error.to_string(), error.mapping())
    }
}

impl From<AgentsError> for TaskError {
    fn from(error: AgentsError) -> Self {
        match error {
            AgentsError::Unreachable(message) => TaskError::Unavailable(message),
            AgentsError::Status(error) => TaskError::Upstream(error),
            AgentsError::NoList(_) => TaskError::Internal(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{AdminError, DEFAULT_RETRY_DELAY, code_name};
    use crate::lifecycle::LifecycleError;
    use crate::wrapper_runs::RunApiError;
    use federation_runtime::RollbackError;
    use federation_runtime::bindings::{AdapterError, UpstreamStatus};
    use tonic_types::StatusExt;

    fn upstream(status: u16) -> TaskError {
        let error = AdapterError::UpstreamStatus(UpstreamStatus {
            status,
            message: "m".into(),
        });
        TaskError::from_run("crewai", RunError::Adapter(error.into()), Duration::ZERO)
    }

    #[test]
    fn wrapper_statuses_map_to_grpc_codes() {
        for (status, code) in [
            (422, Code::InvalidArgument),
            (404, Code::NotFound),
            (409, Code::Aborted),
            (413, Code::ResourceExhausted),
            (418, Code::FailedPrecondition),
            (499, Code::Cancelled),
            (500, Code::Internal),
            (502, Code::Internal),
            (503, Code::Unavailable),
            (504, Code::DeadlineExceeded),
        ] {
            assert_eq!(upstream(status).code(), code, "{status}");
        }
    }

    /// The table: each kind of error, its gRPC code and reason.
    #[test]
    fn every_error_has_its_code_and_reason() {
        let a = || "test-faults".to_string();
        let wrapper = |status, code| TaskError::Upstream(WrapperError::new(status, code, "m"));
        for (error, code, reason) in [
            (
                TaskError::UnknownBackend {
                    name: "x".into(),
                    loaded: "crewai".into(),
                },
                Code::NotFound,
                "BACKEND_NOT_FOUND",
            ),
            (
                TaskError::invalid("agent", "agent must be"),
                Code::InvalidArgument,
                "INVALID_INPUT",
            ),
            (
                TaskError::InteractionUnsupported {
                    adapter: a(),
                    what: "run a named agent",
                },
                Code::FailedPrecondition,
                "INTERACTION_UNSUPPORTED",
            ),
            (
                TaskError::BadInterrupt {
                    adapter: a(),
                    error: InterruptError::NotJson("eof".into()),
                },
                Code::Internal,
                "ADAPTER_ERROR",
            ),
            (
                TaskError::BadInterrupt {
                    adapter: a(),
                    error: InterruptError::TooLarge(1 << 20),
                },
                Code::ResourceExhausted,
                "RESOURCE_LIMIT",
            ),
            (
                TaskError::Overloaded(1),
                Code::ResourceExhausted,
                "HOST_OVERLOADED",
            ),
            (
                TaskError::ResultTooLarge { size: 2, budget: 1 },
                Code::ResourceExhausted,
                "RESOURCE_LIMIT",
            ),
            (
                TaskError::Unavailable("refused".into()),
                Code::Unavailable,
                "WRAPPER_UNAVAILABLE",
            ),
            (
                TaskError::StreamEnded {
                    task_id: "s/r".into(),
                    last_seq: 3,
                },
                Code::Unavailable,
                "WRAPPER_UNAVAILABLE",
            ),
            (
                TaskError::DeadlineExceeded(Duration::ZERO),
                Code::DeadlineExceeded,
                "DEADLINE_EXCEEDED",
            ),
            (
                TaskError::Trap {
                    adapter: a(),
                    message: "m".into(),
                },
                Code::Internal,
                "ADAPTER_TRAP",
            ),
            (TaskError::Internal("x".into()), Code::Internal, "INTERNAL"),
            (
                TaskError::NotOwned {
                    task_id: "s/r".into(),
                },
                Code::PermissionDenied,
                "SESSION_NOT_OWNED",
            ),
            (
                wrapper(409, Some("session_busy")),
                Code::Aborted,
                "SESSION_BUSY",
            ),
            (wrapper(499, None), Code::Cancelled, "CANCELED"),
            (wrapper(401, None), Code::Internal, "WRAPPER_REJECTED_HOST"),
            (wrapper(503, None), Code::Unavailable, "WRAPPER_UNAVAILABLE"),
            (
                wrapper(418, Some("teapot")),
                Code::FailedPrecondition,
                "WRAPPER_ERROR",
            ),
        ] {
            assert_eq!((error.code(), error.reason()), (code, reason), "{error}");
        }
    }

    #[test]
    fn a_wrapper_error_keeps_its_retry_after_as_retry_info() {
        let retry = |e: &TaskError| {
            Status::from(TaskError::Upstream(match e {
                TaskError::Upstream(w) => w.clone(),
                _ => unreachable!(),
            }))
            .get_error_details()
            .retry_info()
            .and_then(|r| r.retry_delay)
        };
        let overloaded = TaskError::Upstream(WrapperError {
            retry_after_secs: Some(7),
            ..WrapperError::new(503, Some("overloaded"), "full")
        });
        assert_eq!(retry(&overloaded), Some(Duration::from_secs(7)));
        let busy = TaskError::Upstream(WrapperError::new(409, Some("session_busy"), "busy"));
        assert_eq!(retry(&busy), Some(DEFAULT_RETRY_DELAY));
        let invalid = TaskError::Upstream(WrapperError::new(422, Some("invalid_input"), "no"));
        assert_eq!(retry(&invalid), None);
        let status = Status::from(overloaded);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.reason, "OVERLOADED");
        assert_eq!(info.metadata["wrapper_code"], "overloaded");
        assert_eq!(info.metadata["http_status"], "503");
        assert!(status.message().contains("HTTP 503 overloaded: full"));
    }

    #[test]
    fn host_limits_have_reasons_and_retry_info() {
        let retry = |e: TaskError| {
            Status::from(e)
                .get_error_details()
                .retry_info()
                .and_then(|r| r.retry_delay)
        };
        let busy = TaskError::AdapterBusy {
            adapter: "crewai".into(),
            limit: 2,
        };
        assert_eq!(busy.reason(), "ADAPTER_BUSY");
        assert_eq!(retry(busy), Some(DEFAULT_RETRY_DELAY));
        assert_eq!(retry(TaskError::Overloaded(512)), Some(DEFAULT_RETRY_DELAY));
        for (error, limit) in [
            (
                TaskError::CpuBudget {
                    adapter: "a".into(),
                    budget: Duration::from_secs(1),
                },
                "cpu",
            ),
            (
                TaskError::MemoryLimit {
                    adapter: "a".into(),
                    message: "m".into(),
                },
                "memory",
            ),
            (
                TaskError::OutputTooLarge {
                    adapter: "a".into(),
                    size: 2,
                    limit: 1,
                },
                "output",
            ),
        ] {
            assert_eq!(error.reason(), "RESOURCE_LIMIT");
            let status = Status::from(error);
            let details = status.get_error_details();
            let info = details.error_info().unwrap();
            assert_eq!(info.metadata["limit"], limit);
            assert_eq!(info.metadata["adapter"], "a");
            assert!(details.retry_info().is_none());
        }
        let status = Status::from(AdminError::NotLoaded("x".into()));
        assert_eq!(
            status.get_error_details().error_info().unwrap().reason,
            "BACKEND_NOT_FOUND"
        );
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
        let status = Status::from(upstream(500));
        assert_eq!(status.code(), Code::Internal);
        assert!(
            status.message().contains("HTTP 500: m"),
            "{}",
            status.message()
        );
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
        let refused = Status::from(RunApiError::Rejected(WrapperError::new(
            403,
            Some("session_not_owned"),
            "not yours",
        )));
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert_eq!(
            refused.get_error_details().error_info().unwrap().reason,
            "SESSION_NOT_OWNED"
        );
        assert_eq!(code_name(Code::ResourceExhausted), "RESOURCE_EXHAUSTED");
    }
}
