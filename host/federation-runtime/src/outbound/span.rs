//! The client span of an outbound request: what it records of the response, or of the
//! failure (shared by whole responses and line streams).

use crate::bindings::HttpError;

/// Records the response's status and body size; a 5xx marks the span an error.
pub(super) fn record_response(span: &tracing::Span, status: u16, body_size: usize) {
    span.record("http.response.status_code", i64::from(status));
    span.record("http.response.body.size", body_size as i64);
    if status >= 500 {
        span.record("otel.status_code", "ERROR");
        span.record("error.type", i64::from(status));
    }
}

/// Marks the span an error of `error`'s kind.
pub(super) fn record_error(span: &tracing::Span, error: &HttpError) {
    span.record("otel.status_code", "ERROR");
    span.record("error.type", error_kind(error));
}

fn error_kind(error: &HttpError) -> &'static str {
    match error {
        HttpError::Denied(_) => "denied",
        HttpError::InvalidRequest(_) => "invalid_request",
        HttpError::Transport(_) => "transport",
        HttpError::Timeout(_) => "timeout",
        HttpError::TooLarge(_) => "too_large",
    }
}
