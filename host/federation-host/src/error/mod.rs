//! Every failure the host answers, and the one place a `tonic::Status` is built
//! ([`build_status`]). Each error type says, in one match, how it is answered: a
//! [`Mapping`] of gRPC code, stable `ErrorInfo.reason` (documented in
//! `docs/errors.md`), metadata, retry delay and bad field. A task's ([`TaskError`],
//! also for `GetAgentTask`, `CancelAgentTask`, `WatchAgentTask` and `ListAgents`), the
//! wrapper run API's ([`RunApiError`](crate::wrapper_runs::RunApiError)),
//! `AdminService`'s ([`AdminError`]), a refused caller's ([`AuthError`]) and the
//! codec's ([`codec_error`]).
//!
//! Every status carries the trace id (`x-trace-id` and `ErrorInfo.metadata.trace_id`)
//! and quotes bounded excerpts only: a hostile caller's 10,000-character field must not
//! grow the trailers past what standard clients accept (grpcio: 8 KiB of metadata).

mod admin;
mod caller;
mod run_api;
mod task;

use std::collections::HashMap;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use federation_proto::TaskResponse;
use federation_wire::{GrpcCode, truncate_to};

pub use admin::AdminError;
pub use caller::{AuthError, auth_status, codec_error};
pub use task::TaskError;

/// The `ErrorInfo.domain` of every error the host answers.
pub const ERROR_DOMAIN: &str = "federation.v1";

/// The `RetryInfo` delay of a retryable error whose cause names none (a busy host,
/// adapter or session; a wrapper that is unreachable or answered 503 without
/// `Retry-After`).
pub const DEFAULT_RETRY_DELAY: Duration = Duration::from_secs(1);

/// Longest status message (bytes): it travels as the `grpc-message` header.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Longest `ErrorInfo.metadata` value (bytes); valid ids and names are shorter.
pub const MAX_METADATA_VALUE_BYTES: usize = 256;
/// Longest `BadRequest` field name (bytes); the host's are short paths.
pub const MAX_FIELD_NAME_BYTES: usize = 128;
/// Longest `BadRequest` violation description (bytes).
pub const MAX_VIOLATION_BYTES: usize = 512;

/// How one error is answered, besides its message.
#[derive(Clone, Debug, PartialEq)]
pub struct Mapping {
    pub code: Code,
    /// The stable `ErrorInfo.reason`.
    pub reason: &'static str,
    /// `ErrorInfo.metadata` (empty values are left out).
    pub metadata: Vec<(&'static str, String)>,
    /// The `RetryInfo` delay, when a retry helps.
    pub retry: Option<Duration>,
    /// A `BadRequest` field violation: the field and what is wrong with it.
    pub violation: Option<(String, String)>,
}

impl Mapping {
    pub fn new(code: Code, reason: &'static str) -> Mapping {
        Mapping {
            code,
            reason,
            metadata: Vec::new(),
            retry: None,
            violation: None,
        }
    }

    /// Adds `key` = `value` to the `ErrorInfo` metadata.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Mapping {
        self.metadata.push((key, value.to_string()));
        self
    }

    /// Advises a retry after `delay`.
    pub fn retry(mut self, delay: Duration) -> Mapping {
        self.retry = Some(delay);
        self
    }

    /// Names the invalid `field` and why.
    pub fn violation(mut self, field: impl Into<String>, description: impl Into<String>) -> Self {
        self.violation = Some((field.into(), description.into()));
        self
    }
}

/// The `tonic::Code` of a wrapper-side [`GrpcCode`].
pub fn grpc_code(code: GrpcCode) -> Code {
    Code::from_i32(code.number())
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

    /// The context of a task id's session and request id.
    pub fn of_run(federation_session_id: &str, request_id: &str) -> Self {
        TaskContext {
            federation_session_id: federation_session_id.to_string(),
            request_id: request_id.to_string(),
            ..Default::default()
        }
    }
}

/// The one builder of a `Status`: `message` and `mapping` (its metadata with the
/// task's `context` and `trace_id` added where the error names none), every quoted
/// value cut to a bounded excerpt, the trace id also as `x-trace-id`.
pub fn build_status(
    message: &str,
    mapping: Mapping,
    trace_id: &str,
    context: &TaskContext,
) -> Status {
    // No span, no trace: an all-zero id names nothing.
    let trace_id = Some(trace_id).filter(|id| !id.is_empty() && id.bytes().any(|b| b != b'0'));
    let mut metadata: HashMap<String, String> = HashMap::new();
    let known = [
        ("backend", context.backend.as_str()),
        ("agent", context.agent.as_str()),
        (
            "federation_session_id",
            context.federation_session_id.as_str(),
        ),
        ("request_id", context.request_id.as_str()),
        ("trace_id", trace_id.unwrap_or_default()),
    ];
    let entries = mapping
        .metadata
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(known);
    for (key, value) in entries.filter(|(_, v)| !v.is_empty()) {
        metadata
            .entry(key.to_string())
            .or_insert_with(|| truncate_to(value, MAX_METADATA_VALUE_BYTES));
    }
    let mut details = ErrorDetails::with_error_info(mapping.reason, ERROR_DOMAIN, metadata);
    if let Some(delay) = mapping.retry {
        details.set_retry_info(Some(delay));
    }
    if let Some((field, description)) = mapping.violation {
        details.add_bad_request_violation(
            truncate_to(&field, MAX_FIELD_NAME_BYTES),
            truncate_to(&description, MAX_VIOLATION_BYTES),
        );
    }
    let message = truncate_to(message, MAX_MESSAGE_BYTES);
    let mut status = Status::with_error_details(mapping.code, message, details);
    if let Some(value) = trace_id.and_then(|id| id.parse().ok()) {
        status.metadata_mut().insert("x-trace-id", value);
    }
    status
}

/// A status for an error outside a task (no task context), with the current trace id.
fn plain_status(message: &str, mapping: Mapping) -> Status {
    let trace_id = crate::telemetry::current_trace_id();
    build_status(message, mapping, &trace_id, &TaskContext::default())
}

/// Records a failed call's code on the server span and logs it.
fn record_failure(code: Code, reason: &str, message: &dyn std::fmt::Display) {
    let span = tracing::Span::current();
    tracing::warn!(?code, reason, %message, "call failed");
    span.record("rpc.grpc.status_code", code as i32);
    span.record("otel.status_code", "ERROR");
}

/// A task's result as the gRPC answer: the trace id in the response, or in the
/// `x-trace-id` metadata of the error; the server span gets the status code.
pub fn answer(
    result: Result<TaskResponse, TaskError>,
    trace_id: String,
    context: &TaskContext,
) -> Result<TaskResponse, Status> {
    match result {
        Ok(mut response) => {
            response.trace_id = trace_id;
            tracing::Span::current().record("rpc.grpc.status_code", 0);
            Ok(response)
        }
        Err(error) => Err(error_status(error, &trace_id, context)),
    }
}

/// The gRPC status of a failed task (see [`task_status`]), logged, and its code
/// recorded on the server span.
pub fn error_status(error: TaskError, trace_id: &str, context: &TaskContext) -> Status {
    let mapping = error.mapping();
    record_failure(mapping.code, mapping.reason, &error);
    build_status(&error.to_string(), mapping, trace_id, context)
}

/// The status [`error_status`] answers, without logging or touching the span: also
/// what a task's `failed` event and `AgentTaskStatus` carry, so a reason is built in
/// one place whichever way the caller learns of it.
pub fn task_status(error: &TaskError, trace_id: &str, context: &TaskContext) -> Status {
    build_status(&error.to_string(), error.mapping(), trace_id, context)
}

/// The `google.rpc` details of `status` as `Any` messages, for the fields that carry
/// an error inside a message (`TaskFailed.details`, `AgentTaskStatus.error_details`).
pub fn status_details(status: &Status) -> Vec<prost_types::Any> {
    <tonic_types::pb::Status as prost::Message>::decode(status.details())
        .map(|rpc| rpc.details)
        .unwrap_or_default()
}

/// The canonical name of `code` (`RESOURCE_EXHAUSTED`), for metrics and the command
/// line: federation-wire's [`GrpcCode`] names, the one table of them.
pub fn code_name(code: Code) -> &'static str {
    GrpcCode::from_number(code as i32).name()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_quoted_value_is_a_bounded_excerpt() {
        let huge = "s".repeat(10_000);
        let context = TaskContext {
            federation_session_id: huge.clone(),
            request_id: huge.clone(),
            ..Default::default()
        };
        let mapping = Mapping::new(Code::InvalidArgument, "INVALID_INPUT")
            .with("field", &huge)
            .violation(&huge, &huge);
        let status = build_status(&huge, mapping, &"1".repeat(32), &context);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().len() <= MAX_MESSAGE_BYTES + 3);
        // base64 on the wire (`grpc-status-details-bin`): well under 8 KiB.
        let on_wire = status.details().len().div_ceil(3) * 4;
        assert!(on_wire < 4096, "{on_wire}");
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert!(info.metadata["federation_session_id"].starts_with("sss"));
        assert!(info.metadata["federation_session_id"].ends_with('…'));
        assert_eq!(info.metadata["trace_id"], "1".repeat(32));
        assert_eq!(
            status.metadata().get("x-trace-id").unwrap(),
            &"1".repeat(32)
        );
    }

    #[test]
    fn an_errors_own_metadata_wins_over_the_context_and_empty_values_are_left_out() {
        let context = TaskContext {
            backend: "crewai".into(),
            ..Default::default()
        };
        let mapping = Mapping::new(Code::NotFound, "BACKEND_NOT_FOUND")
            .with("backend", "x")
            .with("loaded", "");
        let status = build_status("m", mapping, &"0".repeat(32), &context);
        let details = status.get_error_details();
        let info = details.error_info().unwrap();
        assert_eq!(info.metadata["backend"], "x");
        assert!(!info.metadata.contains_key("loaded"));
        assert!(!info.metadata.contains_key("trace_id"), "an all-zero id");
        assert!(status.metadata().get("x-trace-id").is_none());
    }
}
