//! Refusals before a handler runs: a caller the host does not know ([`AuthError`]),
//! and a request tonic's codec could not take ([`codec_error`]).

use tonic::{Code, Status};

use super::{Mapping, plain_status, record_failure};

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
    let mapping = Mapping::new(Code::Unauthenticated, "UNAUTHENTICATED");
    record_failure(mapping.code, mapping.reason, &error);
    plain_status(&error.to_string(), mapping)
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
    let (message, mapping) = match status.code() {
        Code::OutOfRange if message.contains("message length too large") => (
            format!("request too large: {message}"),
            Mapping::new(Code::ResourceExhausted, "MESSAGE_TOO_LARGE"),
        ),
        Code::Internal if message.starts_with("failed to decode Protobuf message") => (
            format!("invalid request (is input_data nested too deeply?): {message}"),
            Mapping::new(Code::InvalidArgument, "INVALID_INPUT").violation("request", message),
        ),
        _ => return response,
    };
    record_failure(mapping.code, mapping.reason, &message);
    plain_status(&message, mapping).into_http()
}
