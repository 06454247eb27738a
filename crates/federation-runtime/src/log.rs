//! The `log` import: adapter log lines land in the host's structured log, tagged with
//! the adapter's name and (through the current span) the task's trace.

use std::sync::Arc;

use wasmtime::component::{HasData, Linker};

use crate::bindings::Level;
use crate::bindings::federation::agent_backend::log;

/// Longest adapter log line kept, bytes; the rest is cut so a guest cannot flood logs.
pub const MAX_LINE_BYTES: usize = 4096;

/// Per-task state of the `log` import: whose lines these are.
#[derive(Clone, Debug)]
pub struct LogCtx {
    adapter: Arc<str>,
}

impl LogCtx {
    pub fn new(adapter: Arc<str>) -> Self {
        LogCtx { adapter }
    }

    /// The adapter's name.
    pub fn adapter(&self) -> &str {
        &self.adapter
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
        emit(&self.adapter, level, &message);
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
    use super::truncate;

    #[test]
    fn truncates_on_char_boundary() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééé", 3);
        assert!(cut.starts_with("é…"), "{cut}");
        assert!(cut.ends_with("[4 bytes cut]"), "{cut}");
    }
}
