//! The host's gRPC errors in MCP: a caller's mistake (`INVALID_ARGUMENT`,
//! `OUT_OF_RANGE`) is a JSON-RPC error -32602 (invalid params) whose `data` holds the
//! `google.rpc` details; any other failure of a call is a tool result with `isError`
//! and the same details (see `mapping::failure_result`), as MCP asks of tool errors
//! so that the model reads them. The details keep the `ErrorInfo` reason of the gRPC
//! error (docs/errors.md), in ProtoJSON form as the A2A door gives them.

pub use federation_proto::status_json::{any_to_json, reason_of, status_details_json};
use federation_wire::GrpcCode;
use rmcp::ErrorData;
use serde_json::json;
use tonic::{Code, Status};

/// The SCREAMING_CASE name of a gRPC code (federation-wire's [`GrpcCode`] names, as
/// the host's error module, the A2A door and the command line give them).
pub fn code_name(code: Code) -> &'static str {
    GrpcCode::from_number(code as i32).name()
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
