//! The host's gRPC errors in MCP: a caller's mistake (`INVALID_ARGUMENT`,
//! `OUT_OF_RANGE`) is a JSON-RPC error -32602 (invalid params) whose `data` holds the
//! `google.rpc` details; any other failure of a call is a tool result with `isError`
//! and the same details (see `mapping::failure_result`), as MCP asks of tool errors
//! so that the model reads them. The details keep the `ErrorInfo` reason of the gRPC
//! error (docs/errors.md), in ProtoJSON form as the A2A door gives them.

use prost::Message as _;
use rmcp::ErrorData;
use serde_json::{Value, json};
use tonic::{Code, Status};

/// The SCREAMING_CASE name of a gRPC code.
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

/// A caller's bad argument: JSON-RPC invalid params.
pub fn invalid_params(message: impl Into<String>) -> ErrorData {
    ErrorData::invalid_params(message.into(), None)
}

/// Whether the host refused a call for its arguments (the caller's mistake).
pub fn is_bad_argument(status: &Status) -> bool {
    matches!(status.code(), Code::InvalidArgument | Code::OutOfRange)
}

/// The JSON-RPC invalid params error of a host `INVALID_ARGUMENT`, its details kept.
pub fn bad_argument(status: &Status) -> ErrorData {
    let details = status_details_json(status);
    let data = (!details.is_empty()).then(|| json!({ "details": details }));
    ErrorData::invalid_params(status.message().to_string(), data)
}

/// The JSON-RPC error of a host error that is not about one call's arguments (listing
/// the agents failed): internal, with the host's code, message and details.
pub fn internal(status: &Status) -> ErrorData {
    let details = status_details_json(status);
    ErrorData::internal_error(
        format!("{}: {}", code_name(status.code()), status.message()),
        Some(json!({ "details": details })),
    )
}

/// The `google.rpc` details of a status (its `grpc-status-details-bin`), ProtoJSON.
pub fn status_details_json(status: &Status) -> Vec<Value> {
    if status.details().is_empty() {
        return Vec::new();
    }
    match tonic_types::pb::Status::decode(status.details()) {
        Ok(decoded) => decoded.details.iter().filter_map(any_to_json).collect(),
        Err(_) => Vec::new(),
    }
}

/// A `google.rpc` detail (`ErrorInfo`, `RetryInfo`, `BadRequest`) as ProtoJSON `Any`;
/// `None` for other types.
pub fn any_to_json(any: &prost_types::Any) -> Option<Value> {
    use tonic_types::pb::{BadRequest, ErrorInfo, RetryInfo};
    let type_url = any.type_url.as_str();
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let mut body = match name {
        "google.rpc.ErrorInfo" => {
            let info = ErrorInfo::decode(any.value.as_slice()).ok()?;
            json!({"reason": info.reason, "domain": info.domain, "metadata": info.metadata})
        }
        "google.rpc.RetryInfo" => {
            let info = RetryInfo::decode(any.value.as_slice()).ok()?;
            let delay = info.retry_delay.unwrap_or_default();
            let seconds = delay.seconds as f64 + f64::from(delay.nanos) / 1e9;
            json!({"retryDelay": format!("{seconds}s")})
        }
        "google.rpc.BadRequest" => {
            let request = BadRequest::decode(any.value.as_slice()).ok()?;
            let violations: Vec<Value> = request
                .field_violations
                .iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect();
            json!({"fieldViolations": violations})
        }
        _ => return None,
    };
    body["@type"] = Value::String(format!("type.googleapis.com/{name}"));
    Some(body)
}

/// The `ErrorInfo` reason among ProtoJSON details, if any.
pub fn reason_of(details: &[Value]) -> Option<String> {
    details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .and_then(|d| d["reason"].as_str())
        .map(str::to_string)
}
