//! The wrapper's errors: its error replies (`ErrorResponse` in `models.py`), the one
//! data type a wrapper error travels as ([`WrapperError`]: HTTP status, code,
//! `Retry-After`, message) from the reply to the host's gRPC status, every error code
//! the wrapper sends with the gRPC code and reason the host answers for it
//! ([`ERROR_CODES`], bound to the Python list by `tests/golden.rs`), and what is kept
//! of an error body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::grpc::GrpcCode;

/// Longest error text carried on from a wrapper's body (bytes).
pub const MAX_ERROR_EXCERPT: usize = 512;

/// Every non-2xx reply of the wrapper: `{"error": {"code": .., "message": ..}}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}

/// A wrapper error as data, whichever way it reached the host: an error reply, a
/// `failed`/`canceled` event, a run record's `error`, or an adapter's `upstream-status`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapperError {
    /// The HTTP status (a 4xx or 5xx; 499 for a canceled run).
    pub status: u16,
    /// The wrapper's `error.code` (`session_busy`), when it sent a well-formed one.
    pub code: Option<String>,
    /// The whole seconds of its `Retry-After`, when it sent them.
    pub retry_after_secs: Option<u64>,
    /// Its message (at most [`MAX_ERROR_EXCERPT`] bytes).
    pub message: String,
}

impl WrapperError {
    /// An error with `status`, `code` (dropped unless well-formed) and `message`
    /// (truncated).
    pub fn new(status: u16, code: Option<&str>, message: &str) -> WrapperError {
        WrapperError {
            status,
            code: code.filter(|c| code_is_valid(c)).map(str::to_string),
            retry_after_secs: None,
            message: truncate(message),
        }
    }

    /// The error of a non-2xx reply: its status, its body's code and message, and its
    /// `Retry-After` header's whole seconds (an HTTP date is ignored).
    pub fn from_reply(status: u16, body: &[u8], retry_after: Option<&str>) -> WrapperError {
        WrapperError {
            retry_after_secs: retry_after.and_then(|v| v.trim().parse().ok()),
            ..WrapperError::new(
                status,
                upstream_code(body).as_deref(),
                &upstream_message(body),
            )
        }
    }

    /// The error of an adapter built against contract 0.1.2 or earlier, whose
    /// `upstream-status` had no field for the code and `Retry-After`, so the SDK wrote
    /// them in front of the message (`[code] message`, `[code retry-after=S] message`).
    /// The host's one reader of that form, where such an adapter's error enters it.
    pub fn from_tagged(status: u16, message: &str) -> WrapperError {
        let (code, retry_after_secs, message) = untag(message);
        WrapperError {
            retry_after_secs,
            ..WrapperError::new(status, code, message)
        }
    }

    /// What this crate knows of its code, if it is one of [`ERROR_CODES`].
    pub fn known_code(&self) -> Option<&'static ErrorCode> {
        self.code.as_deref().and_then(ErrorCode::find)
    }

    /// The gRPC code the host answers for it (by HTTP status).
    pub fn grpc_code(&self) -> GrpcCode {
        GrpcCode::of_http_status(self.status)
    }

    /// Its stable `ErrorInfo.reason`, and whether a retry may help: its code's, else its
    /// status's.
    pub fn reason(&self) -> (&'static str, bool) {
        match self.known_code() {
            Some(code) => (code.reason, code.retryable),
            None => status_reason(self.status),
        }
    }
}

impl std::fmt::Display for WrapperError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if let Some(code) = &self.code {
            write!(f, " {code}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// One error code of the wrapper (`contract.ErrorCode` in the wrapper): the HTTP status
/// it comes with, and the `ErrorInfo.reason` the host answers (documented in
/// `docs/errors.md`) and whether a retry helps. The gRPC code follows the status
/// ([`GrpcCode::of_http_status`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ErrorCode {
    pub code: &'static str,
    pub http_status: u16,
    pub reason: &'static str,
    pub retryable: bool,
}

const fn code(code: &'static str, http_status: u16, reason: &'static str) -> ErrorCode {
    ErrorCode {
        code,
        http_status,
        reason,
        retryable: false,
    }
}

const fn retryable(code: &'static str, http_status: u16, reason: &'static str) -> ErrorCode {
    ErrorCode {
        code,
        http_status,
        reason,
        retryable: true,
    }
}

/// Every error code the wrapper sends, sorted by code.
pub const ERROR_CODES: &[ErrorCode] = &[
    code("agent_not_found", 404, "AGENT_NOT_FOUND"),
    code("bad_request", 400, "INVALID_INPUT"),
    code("canceled", 499, "CANCELED"),
    code("deadline_exceeded", 504, "DEADLINE_EXCEEDED"),
    code("input_required", 412, "INPUT_REQUIRED"),
    code("internal", 500, "WRAPPER_INTERNAL"),
    code("invalid_input", 422, "INVALID_INPUT"),
    code("llm_failure", 502, "LLM_FAILURE"),
    // Starlette's own refusals, in the wrapper's error shape.
    code("method_not_allowed", 405, "WRAPPER_ERROR"),
    code("no_pending_interrupt", 412, "NO_PENDING_INTERRUPT"),
    code("not_found", 404, "WRAPPER_ERROR"),
    retryable("overloaded", 503, "OVERLOADED"),
    code("payload_too_large", 413, "PAYLOAD_TOO_LARGE"),
    code("request_id_reused", 412, "REQUEST_ID_REUSED"),
    code("run_not_found", 404, "RUN_NOT_FOUND"),
    code("run_superseded", 409, "RUN_SUPERSEDED"),
    retryable("session_busy", 409, "SESSION_BUSY"),
    code("session_not_owned", 403, "SESSION_NOT_OWNED"),
    retryable("shutting_down", 503, "WRAPPER_SHUTTING_DOWN"),
    retryable("store_unavailable", 503, "STORE_UNAVAILABLE"),
    // The wrapper refused the host's credential: the host's misconfiguration.
    code("unauthenticated", 401, "WRAPPER_REJECTED_HOST"),
    code("unsupported_media_type", 415, "WRAPPER_ERROR"),
];

impl ErrorCode {
    /// The entry of `code`, if the wrapper sends it.
    pub fn find(code: &str) -> Option<&'static ErrorCode> {
        ERROR_CODES
            .binary_search_by(|entry| entry.code.cmp(code))
            .ok()
            .map(|i| &ERROR_CODES[i])
    }
}

/// The reason of a wrapper error without a known code, by its HTTP status, and whether
/// a retry helps.
fn status_reason(status: u16) -> (&'static str, bool) {
    match status {
        499 => ("CANCELED", false),
        401 => ("WRAPPER_REJECTED_HOST", false),
        503 => ("WRAPPER_UNAVAILABLE", true),
        500..=599 => ("WRAPPER_INTERNAL", false),
        _ => ("WRAPPER_ERROR", false),
    }
}

/// The message of an error reply: `error.message` (also FastAPI's `detail`, or a bare
/// `error`), else an excerpt of the body; at most [`MAX_ERROR_EXCERPT`] bytes.
pub fn upstream_message(body: &[u8]) -> String {
    if let Ok(value) = serde_json::from_slice::<Value>(body) {
        let message = value
            .pointer("/error/message")
            .or_else(|| value.get("detail"))
            .or_else(|| value.get("error"));
        match message {
            Some(Value::String(s)) => return truncate(s),
            Some(other) => return truncate(&other.to_string()),
            None => {}
        }
    }
    excerpt(body)
}

/// The wrapper's error code in an error body (`error.code`), if it has a well-formed one.
pub fn upstream_code(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let code = value.pointer("/error/code")?.as_str()?;
    code_is_valid(code).then(|| code.to_string())
}

/// Reads the code and retry delay an adapter before contract 0.1.3 wrote in front of
/// a message; a message without them comes back whole.
fn untag(message: &str) -> (Option<&str>, Option<u64>, &str) {
    let whole = (None, None, message);
    let Some((head, text)) = message
        .strip_prefix('[')
        .and_then(|rest| rest.split_once("] "))
    else {
        return whole;
    };
    let (code, retry) = match head.split_once(" retry-after=") {
        Some((code, secs)) => match secs.parse::<u64>() {
            Ok(secs) => (code, Some(secs)),
            Err(_) => return whole,
        },
        None => (head, None),
    };
    if code_is_valid(code) {
        (Some(code), retry, text)
    } else {
        whole
    }
}

/// Wrapper codes are short snake_case words (`session_busy`).
fn code_is_valid(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The start of a body as text (lossy UTF-8), at most [`MAX_ERROR_EXCERPT`] bytes.
pub fn excerpt(body: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(body))
}

/// `text` cut to [`MAX_ERROR_EXCERPT`] bytes on a char boundary, marked `…` when cut.
pub fn truncate(text: &str) -> String {
    truncate_to(text, MAX_ERROR_EXCERPT)
}

/// `text` cut to `max` bytes on a char boundary, marked `…` when cut.
pub fn truncate_to(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_comes_from_the_error_body_or_an_excerpt() {
        let body = serde_json::to_vec(&ErrorBody::new("stub", "refused")).unwrap();
        assert_eq!(upstream_message(&body), "refused");
        assert_eq!(upstream_message(br#"{"detail": "bad"}"#), "bad");
        assert_eq!(upstream_message(b"Traceback: boom"), "Traceback: boom");
        let long = "é".repeat(MAX_ERROR_EXCERPT);
        let cut = upstream_message(long.as_bytes());
        assert!(cut.len() <= MAX_ERROR_EXCERPT + "…".len() && cut.ends_with('…'));
    }

    #[test]
    fn a_reply_becomes_a_wrapper_error_with_its_code_and_retry_after() {
        let body = serde_json::to_vec(&ErrorBody::new("overloaded", "queue full")).unwrap();
        let error = WrapperError::from_reply(503, &body, Some("7"));
        assert_eq!(error.code.as_deref(), Some("overloaded"));
        assert_eq!(error.retry_after_secs, Some(7));
        assert_eq!(error.message, "queue full");
        assert_eq!(error.reason(), ("OVERLOADED", true));
        assert_eq!(error.grpc_code(), GrpcCode::Unavailable);
        assert_eq!(error.to_string(), "HTTP 503 overloaded: queue full");
        // No code, or not a code; an HTTP date: left out.
        let plain = WrapperError::from_reply(502, b"Traceback: boom", Some("Wed, 1 Jan"));
        assert_eq!((plain.code, plain.retry_after_secs), (None, None));
        assert_eq!(plain.message, "Traceback: boom");
        let odd = WrapperError::new(500, Some("Not A Code"), "m");
        assert_eq!(odd.code, None);
        assert_eq!(odd.reason(), ("WRAPPER_INTERNAL", false));
    }

    #[test]
    fn an_old_adapters_tagged_message_reads_back_as_data() {
        let error = WrapperError::from_tagged(503, "[overloaded retry-after=7] queue full");
        assert_eq!(
            error,
            WrapperError {
                status: 503,
                code: Some("overloaded".into()),
                retry_after_secs: Some(7),
                message: "queue full".into(),
            }
        );
        let busy = WrapperError::from_tagged(409, "[session_busy] busy");
        assert_eq!(busy.code.as_deref(), Some("session_busy"));
        assert_eq!(busy.retry_after_secs, None);
        for plain in [
            "[not a code] x",
            "[Busy] x",
            "[x retry-after=soon] y",
            "plain",
        ] {
            let error = WrapperError::from_tagged(500, plain);
            assert_eq!(error.code, None, "{plain}");
            assert_eq!(error.message, plain);
        }
    }

    #[test]
    fn the_code_table_is_sorted_and_every_code_well_formed() {
        assert!(ERROR_CODES.windows(2).all(|w| w[0].code < w[1].code));
        for entry in ERROR_CODES {
            assert!(code_is_valid(entry.code), "{}", entry.code);
            assert_eq!(ErrorCode::find(entry.code), Some(entry));
            assert!((400..600).contains(&entry.http_status), "{}", entry.code);
        }
        assert_eq!(ErrorCode::find("nope"), None);
    }
}
