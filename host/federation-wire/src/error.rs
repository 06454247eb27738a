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

/// An `upstream-status` message that carries the wrapper's error `code` (and the seconds
/// of its `Retry-After` header) in front of its message, as `[code] message` or
/// `[code retry-after=S] message`: the adapter contract has no field for them, and the
/// host reads them back with [`untag`] to name the error's reason.
pub fn tag(code: &str, retry_after_secs: Option<u64>, message: &str) -> String {
    if !code_is_valid(code) {
        return message.to_string();
    }
    match retry_after_secs {
        Some(secs) => format!("[{code} retry-after={secs}] {message}"),
        None => format!("[{code}] {message}"),
    }
}

/// What [`tag`] put in front of a message: the wrapper's code, the retry delay in
/// seconds, and the message itself. A message without a tag comes back whole.
#[derive(Clone, Debug, PartialEq)]
pub struct Tagged<'a> {
    pub code: Option<&'a str>,
    pub retry_after_secs: Option<u64>,
    pub message: &'a str,
}

/// Reads back what [`tag`] wrote.
pub fn untag(message: &str) -> Tagged<'_> {
    let whole = Tagged {
        code: None,
        retry_after_secs: None,
        message,
    };
    let Some(rest) = message.strip_prefix('[') else {
        return whole;
    };
    let Some((head, text)) = rest.split_once("] ") else {
        return whole;
    };
    let (code, retry) = match head.split_once(" retry-after=") {
        Some((code, secs)) => match secs.parse::<u64>() {
            Ok(secs) => (code, Some(secs)),
            Err(_) => return whole,
        },
        None => (head, None),
    };
    if !code_is_valid(code) {
        return whole;
    }
    Tagged {
        code: Some(code),
        retry_after_secs: retry,
        message: text,
    }
}

/// The wrapper's error code in an error body (`error.code`), if it has one.
pub fn upstream_code(body: &[u8]) -> Option<String> {
    let value = serde_json::from_slice::<Value>(body).ok()?;
    let code = value.pointer("/error/code")?.as_str()?;
    code_is_valid(code).then(|| code.to_string())
}

/// The message of an error reply with the wrapper's code and `Retry-After` (whole
/// seconds; an HTTP date is ignored) tagged in front ([`tag`]).
pub fn upstream_detail(body: &[u8], retry_after: Option<&str>) -> String {
    let message = upstream_message(body);
    match upstream_code(body) {
        Some(code) => {
            let secs = retry_after.and_then(|v| v.trim().parse::<u64>().ok());
            tag(&code, secs, &message)
        }
        None => message,
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

    #[test]
    fn the_wrapper_code_and_retry_after_travel_in_front_of_the_message() {
        let body = serde_json::to_vec(&ErrorBody::new("overloaded", "queue full")).unwrap();
        let tagged = upstream_detail(&body, Some("7"));
        assert_eq!(tagged, "[overloaded retry-after=7] queue full");
        let back = untag(&tagged);
        assert_eq!(back.code, Some("overloaded"));
        assert_eq!(back.retry_after_secs, Some(7));
        assert_eq!(back.message, "queue full");
        let busy = upstream_detail(
            &serde_json::to_vec(&ErrorBody::new("session_busy", "busy")).unwrap(),
            None,
        );
        assert_eq!(untag(&busy).code, Some("session_busy"));
        assert_eq!(untag(&busy).retry_after_secs, None);
        // No code, or not a code: the message stays as it is.
        assert_eq!(
            upstream_detail(b"Traceback: boom", Some("3")),
            "Traceback: boom"
        );
        for plain in [
            "[not a code] x",
            "[Busy] x",
            "[x retry-after=soon] y",
            "plain",
        ] {
            assert_eq!(untag(plain).code, None, "{plain}");
            assert_eq!(untag(plain).message, plain);
        }
    }
}
