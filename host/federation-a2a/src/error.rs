//! A2A errors in their JSON-RPC form (spec §5.4, §9.5): the code, a message, and
//! `data` as a list of `google.rpc` details in ProtoJSON `Any` form. The host's gRPC
//! errors keep their details (the `ErrorInfo` reason above all) on the way out.

pub use federation_proto::status_json::{any_to_json, reason_of, status_details_json};
use federation_wire::GrpcCode;
use serde_json::{Value, json};
use tonic::{Code, Status};

/// JSON-RPC 2.0 and A2A error codes.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    pub const TASK_NOT_FOUND: i64 = -32001;
    pub const TASK_NOT_CANCELABLE: i64 = -32002;
    pub const PUSH_NOT_SUPPORTED: i64 = -32003;
    pub const UNSUPPORTED_OPERATION: i64 = -32004;
    pub const CONTENT_TYPE_NOT_SUPPORTED: i64 = -32005;
    pub const VERSION_NOT_SUPPORTED: i64 = -32009;
    /// Not an A2A code (the spec leaves authentication errors to the binding): the
    /// call carried no usable credential. Sent with HTTP 401.
    pub const UNAUTHENTICATED: i64 = -32040;
}

/// One error answer: JSON-RPC code, message, `google.rpc` details (ProtoJSON).
#[derive(Clone, Debug, PartialEq)]
pub struct A2aError {
    pub code: i64,
    pub message: String,
    pub data: Vec<Value>,
}

impl A2aError {
    pub fn new(code: i64, message: impl Into<String>) -> A2aError {
        A2aError {
            code,
            message: message.into(),
            data: Vec::new(),
        }
    }

    /// An error with an `ErrorInfo` detail of reason `reason` (domain a2a-protocol.org,
    /// as the spec's examples).
    pub fn with_reason(code: i64, reason: &str, message: impl Into<String>) -> A2aError {
        let mut error = A2aError::new(code, message);
        error.data.push(json!({
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            "reason": reason,
            "domain": "a2a-protocol.org",
        }));
        error
    }

    pub fn task_not_found(id: &str) -> A2aError {
        let mut error = A2aError::with_reason(
            code::TASK_NOT_FOUND,
            "TASK_NOT_FOUND",
            format!("task {id:?} not found"),
        );
        error.data[0]["metadata"] = json!({ "taskId": id });
        error
    }

    pub fn invalid_params(message: impl Into<String>) -> A2aError {
        A2aError::new(code::INVALID_PARAMS, message)
    }

    pub fn unsupported(message: impl Into<String>) -> A2aError {
        A2aError::with_reason(
            code::UNSUPPORTED_OPERATION,
            "UNSUPPORTED_OPERATION",
            message,
        )
    }

    /// The A2A error of a host gRPC error answering a caller's call: a bad argument is
    /// the caller's (invalid params), an unknown or foreign task is not found (the
    /// spec forbids telling them apart), the rest an internal error that keeps the
    /// host's code, message and details.
    pub fn from_status(status: &Status, task_id: Option<&str>) -> A2aError {
        let mut error = match (status.code(), task_id) {
            (Code::NotFound | Code::PermissionDenied, Some(id)) => {
                return A2aError::task_not_found(id);
            }
            (Code::InvalidArgument, Some(id)) => return A2aError::task_not_found(id),
            (Code::InvalidArgument | Code::OutOfRange, None) => {
                A2aError::invalid_params(status.message())
            }
            (code, _) => A2aError::new(
                code::INTERNAL,
                format!("{}: {}", code_name(code), status.message()),
            ),
        };
        error.data = status_details_json(status);
        error
    }

    /// The JSON-RPC error object.
    pub fn to_json(&self) -> Value {
        let mut error = json!({"code": self.code, "message": self.message});
        if !self.data.is_empty() {
            error["data"] = Value::Array(self.data.clone());
        }
        error
    }
}

/// The SCREAMING_CASE name of a gRPC code: federation-wire's [`GrpcCode`] names, as
/// the host's error module and command line give them.
pub fn code_name(code: Code) -> &'static str {
    GrpcCode::from_number(code as i32).name()
}
