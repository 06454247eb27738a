//! The in-memory span store. Spans live in a `watch` channel so waiters wake on every
//! arrival instead of polling.

use std::{sync::Arc, time::Duration};

use tokio::sync::watch;

use crate::span::RecordedSpan;

#[derive(Clone)]
pub struct SpanStore {
    spans: Arc<watch::Sender<Vec<RecordedSpan>>>,
}

impl Default for SpanStore {
    fn default() -> Self {
        Self {
            spans: Arc::new(watch::Sender::new(Vec::new())),
        }
    }
}

impl SpanStore {
    pub fn extend(&self, spans: Vec<RecordedSpan>) {
        // An empty export changes nothing, so it wakes nobody.
        if !spans.is_empty() {
            self.spans.send_modify(|all| all.extend(spans));
        }
    }

    pub fn all(&self) -> Vec<RecordedSpan> {
        self.spans.borrow().clone()
    }

    pub fn trace(&self, trace_id: &str) -> Vec<RecordedSpan> {
        let trace_id = trace_id.to_ascii_lowercase();
        self.spans
            .borrow()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .cloned()
            .collect()
    }

    /// Waits until more than `seen` spans are held and returns those after the first `seen`.
    pub async fn after(&self, seen: usize) -> Vec<RecordedSpan> {
        let mut rx = self.spans.subscribe();
        // The sender lives in `self`, so the channel cannot close while we wait.
        let spans = rx
            .wait_for(|all| all.len() > seen)
            .await
            .expect("span store sender outlives its receivers");
        spans[seen..].to_vec()
    }

    pub async fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&[RecordedSpan]) -> bool,
    ) -> anyhow::Result<Vec<RecordedSpan>> {
        let mut rx = self.spans.subscribe();
        // `watch::Receiver::wait_for` checks the current value first, then every change.
        if let Ok(result) = tokio::time::timeout(timeout, rx.wait_for(|all| pred(all))).await {
            return Ok(result
                .expect("span store sender outlives its receivers")
                .clone());
        }
        let spans = self.all();
        let listing: Vec<String> = spans
            .iter()
            .map(|s| {
                format!(
                    "  {} [{}] {} trace={} span={} parent={}",
                    s.name,
                    s.service_name,
                    s.kind,
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id.as_deref().unwrap_or("-")
                )
            })
            .collect();
        anyhow::bail!(
            "condition not met within {timeout:?}; {} spans received:\n{}",
            spans.len(),
            listing.join("\n")
        )
    }
}
