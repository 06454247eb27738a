//! The `log` import: adapter log lines land in the host's structured log, tagged with
//! the adapter's name and (through the current span) the task's trace.
//!
//! Capped per task like stdout and stderr: at most [`MAX_LINES_PER_TASK`] lines and
//! [`MAX_BYTES_PER_TASK`] bytes reach the host's log; the rest are counted, and one
//! warning with the dropped count is written when the task ends ([`LogCtx::flush`]).

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::Level;
use crate::bindings::federation::agent_backend::log;

/// Longest adapter log line kept, bytes; the rest is cut so a guest cannot flood logs.
pub const MAX_LINE_BYTES: usize = 4096;
/// Log lines one task may write to the host's log.
pub const MAX_LINES_PER_TASK: usize = 256;
/// Bytes of log messages one task may write to the host's log.
pub const MAX_BYTES_PER_TASK: usize = 64 * 1024;

/// Per-task state of the `log` import: whose lines these are, and how many were
/// written and dropped.
#[derive(Clone, Debug)]
pub struct LogCtx {
    adapter: Arc<str>,
    lines: usize,
    bytes: usize,
    /// Lines dropped for the per-task caps.
    pub dropped_lines: usize,
    /// Bytes of the dropped lines.
    pub dropped_bytes: usize,
}

impl LogCtx {
    pub fn new(adapter: Arc<str>) -> Self {
        LogCtx {
            adapter,
            lines: 0,
            bytes: 0,
            dropped_lines: 0,
            dropped_bytes: 0,
        }
    }

    /// The adapter's name.
    pub fn adapter(&self) -> &str {
        &self.adapter
    }

    /// Whether a line of `len` bytes still fits the task's caps (counted either way).
    fn admit(&mut self, len: usize) -> bool {
        let len = len.min(MAX_LINE_BYTES);
        if self.lines < MAX_LINES_PER_TASK && self.bytes + len <= MAX_BYTES_PER_TASK {
            self.lines += 1;
            self.bytes += len;
            true
        } else {
            self.dropped_lines += 1;
            self.dropped_bytes += len;
            false
        }
    }

    /// Reports what the caps dropped, once, when the task ends.
    pub fn flush(&self) {
        if self.dropped_lines > 0 {
            tracing::warn!(
                target: "adapter",
                adapter = %self.adapter,
                dropped_lines = self.dropped_lines,
                dropped_bytes = self.dropped_bytes,
                max_lines = MAX_LINES_PER_TASK,
                max_bytes = MAX_BYTES_PER_TASK,
                "[{} log lines ({} bytes) after the first {} lines / {} bytes dropped]",
                self.dropped_lines,
                self.dropped_bytes,
                MAX_LINES_PER_TASK,
                MAX_BYTES_PER_TASK,
            );
        }
    }
}

/// A store's data that serves the `log` import.
pub trait LogView: Send {
    fn log(&mut self) -> &mut LogCtx;
}

struct HasLog;

impl HasData for HasLog {
    type Data<'a> = &'a mut LogCtx;
}

/// Links the `log` import.
pub fn add_to_linker<T: LogView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    log::add_to_linker::<T, HasLog>(linker, |t| t.log())
}

impl log::Host for LogCtx {
    async fn log(&mut self, level: Level, message: String) {
        if self.admit(message.len()) {
            emit(&self.adapter, level, &message);
        }
    }
}

/// Writes one adapter log line.
pub fn emit(adapter: &str, level: Level, message: &str) {
    let message = truncate(message, MAX_LINE_BYTES);
    match level {
        Level::Trace => tracing::trace!(target: "adapter", adapter, "{message}"),
        Level::Debug => tracing::debug!(target: "adapter", adapter, "{message}"),
        Level::Info => tracing::info!(target: "adapter", adapter, "{message}"),
        Level::Warn => tracing::warn!(target: "adapter", adapter, "{message}"),
        Level::Error => tracing::error!(target: "adapter", adapter, "{message}"),
    }
}

/// `text` cut to at most `max` bytes on a char boundary, marked when cut.
pub fn truncate(text: &str, max: usize) -> std::borrow::Cow<'_, str> {
    if text.len() <= max {
        return text.into();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… [{} bytes cut]", &text[..end], text.len() - end).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_is_capped_and_counted() {
        let mut ctx = LogCtx::new("flood".into());
        // 5,000 lines of 4 KiB, as the flood: only the byte cap's worth pass.
        let passed = (0..5000).filter(|_| ctx.admit(4096)).count();
        assert_eq!(passed, MAX_BYTES_PER_TASK / 4096);
        assert_eq!(ctx.dropped_lines, 5000 - passed);
        assert_eq!(ctx.dropped_bytes, (5000 - passed) * 4096);
        // Short lines stop at the line cap.
        let mut ctx = LogCtx::new("chatty".into());
        let passed = (0..1000).filter(|_| ctx.admit(10)).count();
        assert_eq!(passed, MAX_LINES_PER_TASK);
        assert_eq!(ctx.dropped_lines, 1000 - MAX_LINES_PER_TASK);
    }

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééé", 3);
        assert!(cut.starts_with("é…"), "{cut}");
        assert!(cut.ends_with("[4 bytes cut]"), "{cut}");
    }
}
