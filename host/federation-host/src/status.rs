//! Every failure the host answers, and its one mapping to `tonic::Status`: a task's
//! ([`TaskError`], also for `GetAgentTask`/`CancelAgentTask` and `ListAgents`, whose
//! wrapper failures it takes in), the wrapper run API's ([`RunApiError`]),
//! `AdminService`'s ([`AdminError`]) and caller authentication's ([`AuthError`]). Nothing
//! else in the host builds a `Status`. Also the answer of a task RPC: the trace id in
//! the response, or in the `x-trace-id` metadata of its error.

use std::time::Duration;

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

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
    #[error("deadline exceeded after {0:?}")]
    DeadlineExceeded(Duration),
    #[error("adapter {adapter:?} rejected the task: {message}")]
    AdapterInvalidInput { adapter: String, message: String },
    /// The wrapper's error reply: its HTTP status, its error `code` and `Retry-After`
    /// when the adapter passed them on (see `federation_wire::tag`), and its message.
    #[error("agent wrapper answered HTTP {status}{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Upstream {
        status: u16,
        code: Option<String>,
        retry_after: Option<Duration>,
        message: String,
    },
    #[error("agent wrapper unreachable: {0}")]
    Unavailable(String),
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

    /// A wrapper error reply whose message may carry the wrapper's code in front.
    pub fn upstream(status: u16, message: &str) -> Self {
        let tagged = federation_wire::untag(message);
        TaskError::Upstream {
            status,
            code: tagged.code.map(str::to_string),
            retry_after: tagged.retry_after_secs.map(Duration::from_secs),
            message: tagged.message.to_string(),
        }
    }

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
                AdapterError::UpstreamStatus(upstream) => {
                    TaskError::upstream(upstream.status, &upstream.message)
                }
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
            TaskError::InvalidArgument { .. } | TaskError::AdapterInvalidInput { .. } => {
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
            TaskError::NotAllowed { .. } | TaskError::NotOwned { .. } => Code::PermissionDenied,
        }
    }
}

/// gRPC code for a wrapper HTTP status (after the gRPC spec's HTTP mapping, with the
/// 4xx codes an agent wrapper uses spelled out).
pub fn upstream_code(status: u16) -> Code {
    match status {
        400 | 422 => Code::InvalidArgument,
        // The wrapper authenticates the host, not the caller: a 401 is the host's
        // misconfiguration (reason WRAPPER_REJECTED_HOST).
        401 => Code::Internal,
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
        let details = error.details();
        Status::with_error_details(error.code(), error.to_string(), details)
    }
}

impl From<AgentsError> for TaskError {
    fn from(error: AgentsError) -> Self {
        match error {
            AgentsError::Unreachable(message) => TaskError::Unavailable(message),
            AgentsError::Status { status, message } => TaskError::upstream(status, &message),
            AgentsError::NoList(_) => TaskError::Internal(error.to_string()),
        }
    }
}

/// The `ErrorInfo.domain` of every error the host answers.
pub const ERROR_DOMAIN: &str = "federation.v1";

/// The `RetryInfo` delay of a retryable error whose cause names none (a busy host,
/// adapter or session; a wrapper that is unreachable or answered 503 without
/// `Retry-After`).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// `google.rpc` details: an `ErrorInfo` (`reason`, domain [`ERROR_DOMAIN`], metadata),
/// `RetryInfo` when a retry helps, `BadRequest` for an invalid field.
fn error_details(
    reason: &str,
    metadata: Vec<(&str, String)>,
    retry: Option<Duration>,
) -> ErrorDetails {
    let metadata: HashMap<String, String> = metadata
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    let mut details = ErrorDetails::with_error_info(reason, ERROR_DOMAIN, metadata);
    if let Some(delay) = retry {
        details.set_retry_info(Some(delay));
    }
    details
}

/// The stable reason of a wrapper error code (`agent-wrapper`'s `core/errors.py`), and
/// whether a retry helps.
fn wrapper_reason(code: &str) -> Option<(&'static str, bool)> {
    Some(match code {
        "bad_request" | "invalid_input" => ("INVALID_INPUT", false),
        "payload_too_large" => ("PAYLOAD_TOO_LARGE", false),
        "session_busy" => ("SESSION_BUSY", true),
        "store_unavailable" => ("STORE_UNAVAILABLE", true),
        "llm_failure" => ("LLM_FAILURE", false),
        "run_not_found" => ("RUN_NOT_FOUND", false),
        "request_id_reused" => ("REQUEST_ID_REUSED", false),
        "canceled" => ("CANCELED", false),
        "run_superseded" => ("RUN_SUPERSEDED", false),
        "deadline_exceeded" => ("DEADLINE_EXCEEDED", false),
        "shutting_down" => ("WRAPPER_SHUTTING_DOWN", true),
        "overloaded" => ("OVERLOADED", true),
        "agent_not_found" => ("AGENT_NOT_FOUND", false),
        "no_pending_interrupt" => ("NO_PENDING_INTERRUPT", false),
        "input_required" => ("INPUT_REQUIRED", false),
        "internal" => ("WRAPPER_INTERNAL", false),
        "session_not_owned" => ("SESSION_NOT_OWNED", false),
        "unauthenticated" => ("WRAPPER_REJECTED_HOST", false),
        _ => return None,
    })
}

/// The reason of a wrapper reply without a known code, by its HTTP status.
fn wrapper_status_reason(status: u16) -> (&'static str, bool) {
    match status {
        499 => ("CANCELED", false),
        401 => ("WRAPPER_REJECTED_HOST", false),
        503 => ("WRAPPER_UNAVAILABLE", true),
        500..=599 => ("WRAPPER_INTERNAL", false),
        _ => ("WRAPPER_ERROR", false),
    }
}

impl TaskError {
    /// The stable `ErrorInfo.reason` of this error (documented in `docs/errors.md`).
    pub fn reason(&self) -> &'static str {
        match self {
            TaskError::UnknownBackend { .. } => "BACKEND_NOT_FOUND",
            TaskError::InvalidArgument { .. } => "INVALID_INPUT",
            TaskError::InteractionUnsupported { .. } => "INTERACTION_UNSUPPORTED",
            TaskError::BadInterrupt { error, .. } => match error {
                InterruptError::TooLarge(_) => "RESOURCE_LIMIT",
                InterruptError::NotJson(_) => "ADAPTER_ERROR",
            },
            TaskError::Overloaded(_) => "HOST_OVERLOADED",
            TaskError::AdapterBusy { .. } => "ADAPTER_BUSY",
            TaskError::CpuBudget { .. }
            | TaskError::MemoryLimit { .. }
            | TaskError::OutputTooLarge { .. } => "RESOURCE_LIMIT",
            TaskError::DeadlineExceeded(_) => "DEADLINE_EXCEEDED",
            TaskError::AdapterInvalidInput { .. } => "INVALID_INPUT",
            TaskError::Upstream { status, code, .. } => {
                code.as_deref()
                    .and_then(wrapper_reason)
                    .unwrap_or_else(|| wrapper_status_reason(*status))
                    .0
            }
            TaskError::Unavailable(_) => "WRAPPER_UNAVAILABLE",
            TaskError::Trap { .. } => "ADAPTER_TRAP",
            TaskError::Internal(_) => "INTERNAL",
            TaskError::NotAllowed { .. } => "PRINCIPAL_NOT_ALLOWED",
            TaskError::NotOwned { .. } => "SESSION_NOT_OWNED",
        }
    }

    /// Its `google.rpc` details: `ErrorInfo` always, `RetryInfo` when a retry helps,
    /// `BadRequest` for an invalid field.
    pub fn details(&self) -> ErrorDetails {
        let reason = self.reason();
        let adapter = |a: &String| vec![("adapter", a.clone())];
        let mut details = match self {
            TaskError::UnknownBackend { name, loaded } => error_details(
                reason,
                vec![("backend", name.clone()), ("loaded", loaded.clone())],
                None,
            ),
            TaskError::InvalidArgument { field, message } => {
                let mut details = error_details(reason, vec![("field", field.clone())], None);
                details.add_bad_request_violation(field.clone(), message.clone());
                details
            }
            TaskError::InteractionUnsupported { adapter: a, .. }
            | TaskError::BadInterrupt { adapter: a, .. }
            | TaskError::Trap { adapter: a, .. }
            | TaskError::AdapterInvalidInput { adapter: a, .. } => {
                error_details(reason, adapter(a), None)
            }
            TaskError::Overloaded(limit) => error_details(
                reason,
                vec![("limit", limit.to_string())],
                Some(DEFAULT_RETRY_DELAY),
            ),
            TaskError::AdapterBusy { adapter: a, limit } => error_details(
                reason,
                vec![("adapter", a.clone()), ("limit", limit.to_string())],
                Some(DEFAULT_RETRY_DELAY),
            ),
            TaskError::CpuBudget { adapter: a, .. } => error_details(
                reason,
                vec![("adapter", a.clone()), ("limit", "cpu".into())],
                None,
            ),
            TaskError::MemoryLimit { adapter: a, .. } => error_details(
                reason,
                vec![("adapter", a.clone()), ("limit", "memory".into())],
                None,
            ),
            TaskError::OutputTooLarge { adapter: a, .. } => error_details(
                reason,
                vec![("adapter", a.clone()), ("limit", "output".into())],
                None,
            ),
            TaskError::Upstream {
                status,
                code,
                retry_after,
                ..
            } => {
                let retryable = code
                    .as_deref()
                    .and_then(wrapper_reason)
                    .unwrap_or_else(|| wrapper_status_reason(*status))
                    .1;
                error_details(
                    reason,
                    vec![
                        ("http_status", status.to_string()),
                        ("wrapper_code", code.clone().unwrap_or_default()),
                    ],
                    retryable.then(|| retry_after.unwrap_or(DEFAULT_RETRY_DELAY)),
                )
            }
            TaskError::Unavailable(_) => error_details(reason, vec![], Some(DEFAULT_RETRY_DELAY)),
            TaskError::DeadlineExceeded(_) | TaskError::Internal(_) => {
                error_details(reason, vec![], None)
            }
            TaskError::NotAllowed {
                principal,
                kind,
                name,
            } => error_details(
                reason,
                vec![("principal", principal.clone()), (*kind, name.clone())],
                None,
            ),
            TaskError::NotOwned { task_id } => {
                error_details(reason, vec![("task_id", task_id.clone())], None)
            }
        };
        if let TaskError::AdapterInvalidInput { message, .. } = self {
            details.add_bad_request_violation("task", message.clone());
        }
        details
    }
}

/// The gRPC code of a failed call to the wrapper's run API.
pub fn run_api_code(error: &RunApiError) -> Code {
    match error {
        RunApiError::NotFound { .. } => Code::NotFound,
        RunApiError::Failed(_) => Code::Unavailable,
        RunApiError::Rejected { status, .. } => upstream_code(*status),
    }
}

impl From<RunApiError> for Status {
    fn from(error: RunApiError) -> Self {
        if let RunApiError::Rejected {
            status,
            code,
            message,
        } = error
        {
            // The wrapper refused the host's call (e.g. 403 session_not_owned): the
            // same status as a task's wrapper refusal.
            return TaskError::Upstream {
                status,
                code,
                retry_after: None,
                message,
            }
            .into();
        }
        let details = match &error {
            RunApiError::NotFound {
                session,
                request_id,
            } => error_details(
                "RUN_NOT_FOUND",
                vec![
                    ("federation_session_id", session.clone()),
                    ("request_id", request_id.clone()),
                ],
                None,
            ),
            RunApiError::Failed(_) => {
                error_details("WRAPPER_UNAVAILABLE", vec![], Some(DEFAULT_RETRY_DELAY))
            }
            RunApiError::Rejected { .. } => unreachable!("answered above"),
        };
        Status::with_error_details(run_api_code(&error), error.to_string(), details)
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

impl AdminError {
    /// The stable `ErrorInfo.reason` of this error.
    pub fn reason(&self) -> &'static str {
        match self {
            AdminError::Unauthenticated => "UNAUTHENTICATED",
            AdminError::EmptyComponent => "INVALID_INPUT",
            AdminError::ComponentTooLarge { .. } => "RESOURCE_LIMIT",
            AdminError::NotLoaded(_) => "BACKEND_NOT_FOUND",
            AdminError::Lifecycle(error) => match error {
                LifecycleError::Rollback(RollbackError::NotFound(_)) => "BACKEND_NOT_FOUND",
                LifecycleError::Rollback(RollbackError::NoPrevious(_)) => "NO_PREVIOUS_VERSION",
                LifecycleError::Rejected(_) => "ADAPTER_REJECTED",
                LifecycleError::Directory { .. } => "INTERNAL",
            },
        }
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        let details = error_details(error.reason(), vec![], None);
        Status::with_error_details(error.code(), error.to_string(), details)
    }
}

/// Why a call was refused before it reached a handler: the caller is not known.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(
        "this host authenticates callers: send `authorization: Bearer <token>` or a client certificate"
    )]
    Missing,
    #[error("the bearer token is not one this host knows")]
    BadToken,
    #[error("the client certificate ({0}) names no principal of this host")]
    UnknownCertificate(String),
    #[error("the client certificate's identity {0:?} cannot be a principal name")]
    UnusableIdentity(String),
    #[error("the bearer token and the client certificate name different principals")]
    Conflict,
}

/// The status of a refused caller: `UNAUTHENTICATED`, reason `UNAUTHENTICATED`, with
/// the trace id (in the `ErrorInfo` and `x-trace-id`) like every other error.
pub fn auth_status(error: AuthError) -> Status {
    let trace_id = crate::telemetry::current_trace_id();
    let details = error_details(
        "UNAUTHENTICATED",
        vec![("trace_id", trace_id.clone())],
        None,
    );
    let span = tracing::Span::current();
    span.record("rpc.grpc.status_code", Code::Unauthenticated as i32);
    span.record("otel.status_code", "ERROR");
    tracing::warn!(%error, "caller refused");
    let mut status = Status::with_error_details(Code::Unauthenticated, error.to_string(), details);
    if let Ok(value) = trace_id.parse() {
        status.metadata_mut().insert("x-trace-id", value);
    }
    status
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

/// What the host knows of the task an error is about, added to the `ErrorInfo`
/// metadata (empty fields are left out).
#[derive(Clone, Debug, Default)]
pub struct TaskContext {
    pub backend: String,
    pub agent: String,
    pub federation_session_id: String,
    pub request_id: String,
}

impl TaskContext {
    pub fn of(request: &federation_proto::TaskRequest) -> Self {
        TaskContext {
            backend: request.backend.clone(),
            agent: request.agent.clone(),
            federation_session_id: request.federation_session_id.clone(),
            request_id: request.request_id.clone(),
        }
    }
}

/// A task's result as the gRPC answer: the trace id in the response, or in the
/// `x-trace-id` metadata of the error; the server span gets the status code.
pub fn answer(
    result: Result<TaskResponse, TaskError>,
    trace_id: String,
    context: &TaskContext,
) -> Result<TaskResponse, Status> {
    let span = tracing::Span::current();
    match result {
        Ok(mut response) => {
            response.trace_id = trace_id;
            span.record("rpc.grpc.status_code", 0);
            Ok(response)
        }
        Err(error) => Err(error_status(error, &trace_id, context)),
    }
}

/// The gRPC status of a failed task, with its `google.rpc` details (the `ErrorInfo`
/// metadata also names the task's backend, agent, session, request id and trace id
/// where known) and its trace id in the `x-trace-id` metadata; the server span gets
/// the status code.
pub fn error_status(error: TaskError, trace_id: &str, context: &TaskContext) -> Status {
    let span = tracing::Span::current();
    let code = error.code();
    tracing::warn!(?code, reason = error.reason(), message = %error, "task failed");
    span.record("rpc.grpc.status_code", code as i32);
    span.record("otel.status_code", "ERROR");
    task_status(&error, trace_id, context)
}

/// The status [`error_status`] answers, without logging or touching the span: also
/// what a task's `failed` event and `AgentTaskStatus` carry, so a reason is built in
/// one place whichever way the caller learns of it.
pub fn task_status(error: &TaskError, trace_id: &str, context: &TaskContext) -> Status {
    let mut details = error.details();
    if let Some(mut info) = details.error_info().cloned() {
        for (key, value) in [
            ("backend", &context.backend),
            ("agent", &context.agent),
            ("federation_session_id", &context.federation_session_id),
            ("request_id", &context.request_id),
            ("trace_id", &trace_id.to_string()),
        ] {
            if !value.is_empty() {
                info.metadata
                    .entry(key.to_string())
                    .or_insert_with(|| value.clone());
            }
        }
        details.set_error_info(info.reason, info.domain, info.metadata);
    }
    let mut status = Status::with_error_details(error.code(), error.to_string(), details);
    if let Ok(value) = trace_id.parse() {
        status.metadata_mut().insert("x-trace-id", value);
    }
    status
}

/// The `google.rpc` details of `status` as `Any` messages, for the fields that carry
/// an error inside a message (`TaskFailed.details`, `AgentTaskStatus.error_details`).
pub fn status_details(status: &Status) -> Vec<prost_types::Any> {
    <tonic_types::pb::Status as prost::Message>::decode(status.details())
        .map(|rpc| rpc.details)
        .unwrap_or_default()
}

/// Rewrites the statuses tonic's codec answers before a handler runs, so they carry
/// a trace id and details like every other error: a request over the message size
/// limit (tonic: `OUT_OF_RANGE`) becomes `RESOURCE_EXHAUSTED`, reason
/// `MESSAGE_TOO_LARGE`; a request protobuf cannot decode (e.g. `input_data` nested
/// deeper than its recursion limit; tonic: `INTERNAL`) becomes `INVALID_ARGUMENT`,
/// reason `INVALID_INPUT`. Runs inside the server span (for the trace id).
pub fn codec_error<B: Default>(response: http::Response<B>) -> http::Response<B> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let message = status.message();
    let rewritten = match status.code() {
        Code::OutOfRange if message.contains("message length too large") => (
            Code::ResourceExhausted,
            format!("request too large: {message}"),
            error_details("MESSAGE_TOO_LARGE", vec![], None),
        ),
        Code::Internal if message.starts_with("failed to decode Protobuf message") => {
            let mut details = error_details("INVALID_INPUT", vec![], None);
            details.add_bad_request_violation("request", message.to_string());
            (
                Code::InvalidArgument,
                format!("invalid request (is input_data nested too deeply?): {message}"),
                details,
            )
        }
        _ => return response,
    };
    let (code, message, mut details) = rewritten;
    let trace_id = crate::telemetry::current_trace_id();
    if let Some(mut info) = details.error_info().cloned() {
        info.metadata.insert("trace_id".into(), trace_id.clone());
        details.set_error_info(info.reason, info.domain, info.metadata);
    }
    let span = tracing::Span::current();
    span.record("rpc.grpc.status_code", code as i32);
    span.record("otel.status_code", "ERROR");
    tracing::warn!(?code, %message, "request refused by the codec");
    let mut status = Status::with_error_details(code, message, details);
    if let Ok(value) = trace_id.parse() {
        status.metadata_mut().insert("x-trace-id", value);
    }
    status.into_http()
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
                TaskError::invalid("agent", "agent must be"),
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
    fn host_limits_have_reasons_and_retry_info() {
        let retry = |e: &TaskError| e.details().retry_info().and_then(|r| r.retry_delay);
        let busy = TaskError::AdapterBusy {
            adapter: "crewai".into(),
            limit: 2,
        };
        assert_eq!(busy.reason(), "ADAPTER_BUSY");
        assert_eq!(retry(&busy), Some(DEFAULT_RETRY_DELAY));
        let overloaded = TaskError::Overloaded(512);
        assert_eq!(overloaded.reason(), "HOST_OVERLOADED");
        assert_eq!(retry(&overloaded), Some(DEFAULT_RETRY_DELAY));
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
            let details = error.details();
            let info = details.error_info().unwrap();
            assert_eq!(info.metadata["limit"], limit);
            assert_eq!(info.metadata["adapter"], "a");
            assert_eq!(retry(&error), None);
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
        let status = Status::from(TaskError::upstream(500, "boom"));
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
