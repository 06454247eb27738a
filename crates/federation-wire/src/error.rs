//! The wrapper's error replies (`ErrorResponse` in `models.py`) and what is kept of an
//! error body.

use serde::{Deserialize, Serialize};
use serde_json::Value;

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

/// The start of a body as text (lossy UTF-8), at most [`MAX_ERROR_EXCERPT`] bytes.
pub fn excerpt(body: &[u8]) -> String {
    truncate(&String::from_utf8_lossy(body))
}

/// `text` cut to [`MAX_ERROR_EXCERPT`] bytes on a char boundary, marked `…` when cut.
pub fn truncate(text: &str) -> String {
    if text.len() <= MAX_ERROR_EXCERPT {
        return text.to_string();
    }
    let mut end = MAX_ERROR_EXCERPT;
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
}
