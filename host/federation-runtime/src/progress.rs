//! Progress of a watched task (`StreamAgentTask`): the host side of the world's
//! `progress` import, and the channel that carries a task's events to whoever watches.
//!
//! An adapter's events are checked and capped here (the adapter is untrusted: it may
//! send too many, too large or malformed ones), stamped with the time, and queued on a
//! bounded channel, so a slow watcher slows the adapter down instead of growing a
//! queue. The service turns them into the gRPC stream's events.

use std::time::SystemTime;

use serde_json::{Map, Value};
use tokio::sync::mpsc;
use wasmtime::component::{HasData, Linker};

use crate::bindings::federation::agent_backend::progress;
use crate::bindings::{EventKind, ProgressEvent};

/// Events one task may report; later ones are dropped (and counted).
pub const MAX_EVENTS_PER_TASK: u32 = 10_000;
/// Longest event message kept, bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest event data accepted, bytes of JSON.
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// Events queued between the task and a slow watcher before `emit` waits.
const QUEUE: usize = 64;

/// One checked event of an adapter: its message capped, its data a JSON object (or
/// `{"dropped": why}` when the adapter's was not one, or too large).
#[derive(Clone, Debug, PartialEq)]
pub struct Progress {
    pub kind: EventKind,
    pub message: String,
    pub data: Map<String, Value>,
}

/// An event with the time it was reported.
#[derive(Debug)]
pub struct Stamped {
    pub at: SystemTime,
    pub progress: Progress,
}

/// The sending side of a watched task's events. Cheap to clone.
#[derive(Clone, Debug)]
pub struct ProgressSink {
    tx: mpsc::Sender<Stamped>,
}

impl ProgressSink {
    pub fn channel() -> (ProgressSink, mpsc::Receiver<Stamped>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (ProgressSink { tx }, rx)
    }

    /// Queues `progress`, waiting while the queue is full. An event for a watcher that
    /// went away is dropped: the task is being cancelled anyway.
    pub async fn send(&self, progress: Progress) {
        let stamped = Stamped {
            at: SystemTime::now(),
            progress,
        };
        let _ = self.tx.send(stamped).await;
    }
}

/// Per-task state of the `progress` import.
#[derive(Debug, Default)]
pub struct ProgressCtx {
    sink: Option<ProgressSink>,
    emitted: u32,
    /// Events dropped because the task reported too many.
    pub dropped: u32,
}

impl ProgressCtx {
    /// `sink`: where the events go when someone watches the task.
    pub fn new(sink: Option<ProgressSink>) -> Self {
        ProgressCtx {
            sink,
            emitted: 0,
            dropped: 0,
        }
    }
}

/// A store's data that serves the `progress` import.
pub trait ProgressView: Send {
    fn progress(&mut self) -> &mut ProgressCtx;
}

struct HasProgress;

impl HasData for HasProgress {
    type Data<'a> = &'a mut ProgressCtx;
}

/// Links the `progress` import.
pub fn add_to_linker<T: ProgressView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    progress::add_to_linker::<T, HasProgress>(linker, |t| t.progress())
}

impl progress::Host for ProgressCtx {
    async fn watched(&mut self) -> bool {
        self.sink.is_some()
    }

    /// Checks, caps and queues one event from the adapter.
    async fn emit(&mut self, event: ProgressEvent) {
        let Some(sink) = &self.sink else { return };
        if self.emitted >= MAX_EVENTS_PER_TASK {
            self.dropped += 1;
            return;
        }
        self.emitted += 1;
        sink.send(checked(event)).await;
    }
}

/// An adapter's event, checked: message truncated, data parsed into a JSON object or
/// replaced by `{"dropped": why}`.
pub fn checked(event: ProgressEvent) -> Progress {
    let data = match parse_data(&event.data_json) {
        Ok(map) => map,
        Err(why) => {
            let mut map = Map::new();
            map.insert("dropped".into(), why.into());
            map
        }
    };
    Progress {
        kind: event.kind,
        message: crate::log::truncate(&event.message, MAX_MESSAGE_BYTES).into_owned(),
        data,
    }
}

fn parse_data(json: &str) -> Result<Map<String, Value>, String> {
    if json.trim().is_empty() {
        return Ok(Map::new());
    }
    if json.len() > MAX_DATA_BYTES {
        return Err(format!(
            "data of {} bytes exceeds the {MAX_DATA_BYTES}-byte limit",
            json.len()
        ));
    }
    match serde_json::from_str(json) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err("data is not a JSON object".into()),
        Err(e) => Err(format!("data is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::federation::agent_backend::progress::Host;

    fn event(message: &str, data_json: &str) -> ProgressEvent {
        ProgressEvent {
            kind: EventKind::LlmCall,
            message: message.into(),
            data_json: data_json.into(),
        }
    }

    fn dropped_reason(progress: &Progress) -> Option<String> {
        progress.data.get("dropped")?.as_str().map(str::to_string)
    }

    #[test]
    fn keeps_a_valid_event() {
        let progress = checked(event("LLM call", r#"{"model":"offline"}"#));
        assert_eq!(progress.kind, EventKind::LlmCall);
        assert_eq!(progress.message, "LLM call");
        assert_eq!(progress.data["model"], "offline");
    }

    #[test]
    fn replaces_bad_or_oversized_data_and_truncates_the_message() {
        assert!(
            dropped_reason(&checked(event("m", "[1]")))
                .unwrap()
                .contains("not a JSON object")
        );
        assert!(
            dropped_reason(&checked(event("m", "{nope")))
                .unwrap()
                .contains("not JSON")
        );
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_DATA_BYTES));
        assert!(
            dropped_reason(&checked(event("m", &big)))
                .unwrap()
                .contains("limit")
        );
        assert!(checked(event("m", "")).data.is_empty());
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = checked(event(&long, "{}")).message;
        assert!(cut.starts_with(&"é".repeat(MAX_MESSAGE_BYTES / 2)), "{cut}");
        assert!(cut.ends_with("[1024 bytes cut]"), "{cut}");
    }

    #[tokio::test]
    async fn unwatched_tasks_queue_nothing_and_the_count_is_capped() {
        let mut unwatched = ProgressCtx::new(None);
        assert!(!unwatched.watched().await);
        unwatched.emit(event("m", "{}")).await;
        assert_eq!(unwatched.dropped, 0);

        let (sink, mut rx) = ProgressSink::channel();
        let mut watched = ProgressCtx::new(Some(sink));
        watched.emitted = MAX_EVENTS_PER_TASK - 1;
        watched.emit(event("last", "{}")).await;
        watched.emit(event("one too many", "{}")).await;
        assert_eq!(watched.dropped, 1);
        let first = rx.recv().await.unwrap();
        assert_eq!(first.progress.message, "last");
        assert!(rx.try_recv().is_err());
    }
}
