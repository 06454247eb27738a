//! The in-memory span store, with a notification on every arrival so waiters never
//! poll blindly.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::Notify;

use crate::span::RecordedSpan;

#[derive(Clone, Default)]
pub struct SpanStore {
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
    arrived: Arc<Notify>,
}

impl SpanStore {
    pub fn extend(&self, spans: Vec<RecordedSpan>) {
        self.spans
            .lock()
            .expect("span store poisoned")
            .extend(spans);
        self.arrived.notify_waiters();
    }

    pub fn all(&self) -> Vec<RecordedSpan> {
        self.spans.lock().expect("span store poisoned").clone()
    }

    pub fn trace(&self, trace_id: &str) -> Vec<RecordedSpan> {
        self.spans
            .lock()
            .expect("span store poisoned")
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedSpan]) -> bool,
    ) -> anyhow::Result<Vec<RecordedSpan>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            // Register interest before checking, so an arrival in between is not missed.
            let arrived = self.arrived.notified();
            let spans = self.all();
            if pred(&spans) {
                return Ok(spans);
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                let names: Vec<_> = spans
                    .iter()
                    .map(|s| {
                        format!(
                            "{} [{}] trace={} parent={:?}",
                            s.name, s.service_name, s.trace_id, s.parent_span_id
                        )
                    })
                    .collect();
                anyhow::bail!(
                    "condition not met within {timeout:?}; {} spans received:\n{}",
                    spans.len(),
                    names.join("\n")
                );
            }
        }
    }
}
