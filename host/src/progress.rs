//! Progress of a watched task (`StreamAgentTask`): the host side of the world's
//! `progress` import, and the channel that carries a task's events to its caller.
//!
//! An adapter's events are checked and capped here (the adapter is untrusted: it may
//! send too many, too large or malformed ones), stamped with the time, and queued on a
//! bounded channel, so a slow watcher slows the adapter down instead of growing a
//! queue. The service numbers the events and adds the trace id as it streams them.

use std::time::SystemTime;

use tokio::sync::mpsc;

use crate::json::json_to_struct;
use crate::proto::{TaskProgress, task_event, task_progress};
use crate::runtime::bindings::{EventKind, ProgressEvent};

/// Events one task may report; later ones are dropped (and counted).
pub const MAX_EVENTS_PER_TASK: u32 = 10_000;
/// Longest event message kept, bytes.
pub const MAX_MESSAGE_BYTES: usize = 1024;
/// Largest event data accepted, bytes of JSON.
pub const MAX_DATA_BYTES: usize = 64 * 1024;
/// Events queued between the task and a slow watcher before `emit` waits.
const QUEUE: usize = 64;

/// One event on its way to the watcher, before it is numbered.
#[derive(Debug)]
pub struct Stamped {
    pub at: SystemTime,
    pub event: task_event::Event,
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

    /// Queues `event`, waiting while the queue is full. An event for a watcher that
    /// went away is dropped: the task is being cancelled anyway.
    pub async fn send(&self, event: task_event::Event) {
        let stamped = Stamped {
            at: SystemTime::now(),
            event,
        };
        let _ = self.tx.send(stamped).await;
    }
}

/// Per-task state of the `progress` import.
#[derive(Debug, Default)]
pub struct ProgressState {
    sink: Option<ProgressSink>,
    emitted: u32,
    /// Events dropped because the task reported too many.
    pub dropped: u32,
}

impl ProgressState {
    pub fn new(sink: Option<ProgressSink>) -> Self {
        ProgressState {
            sink,
            emitted: 0,
            dropped: 0,
        }
    }

    pub fn watched(&self) -> bool {
        self.sink.is_some()
    }

    /// Checks, caps and queues one event from the adapter.
    pub async fn emit(&mut self, event: ProgressEvent) {
        let Some(sink) = &self.sink else { return };
        if self.emitted >= MAX_EVENTS_PER_TASK {
            self.dropped += 1;
            return;
        }
        self.emitted += 1;
        sink.send(task_event::Event::Progress(progress_from_guest(event)))
            .await;
    }
}

/// The proto form of an adapter's event: message truncated, data parsed into a
/// `Struct` or replaced by `{"dropped": why}`.
pub fn progress_from_guest(event: ProgressEvent) -> TaskProgress {
    let kind = match event.kind {
        EventKind::Step => task_progress::Kind::Step,
        EventKind::LlmCall => task_progress::Kind::LlmCall,
        EventKind::ToolCall => task_progress::Kind::ToolCall,
        EventKind::CheckpointSaved => task_progress::Kind::CheckpointSaved,
    };
    let data = match parse_data(&event.data_json) {
        Ok(map) => map,
        Err(why) => {
            let mut map = serde_json::Map::new();
            map.insert("dropped".into(), why.into());
            map
        }
    };
    TaskProgress {
        kind: kind as i32,
        message: crate::guest_log::truncate(&event.message, MAX_MESSAGE_BYTES).into_owned(),
        data: Some(json_to_struct(data)),
    }
}

fn parse_data(json: &str) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    if json.trim().is_empty() {
        return Ok(serde_json::Map::new());
    }
    if json.len() > MAX_DATA_BYTES {
        return Err(format!(
            "data of {} bytes exceeds the {MAX_DATA_BYTES}-byte limit",
            json.len()
        ));
    }
    match serde_json::from_str(json) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err("data is not a JSON object".into()),
        Err(e) => Err(format!("data is not JSON: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost_types::value::Kind;

    fn event(message: &str, data_json: &str) -> ProgressEvent {
        ProgressEvent {
            kind: EventKind::LlmCall,
            message: message.into(),
            data_json: data_json.into(),
        }
    }

    fn dropped_reason(progress: &TaskProgress) -> Option<String> {
        match &progress.data.as_ref()?.fields.get("dropped")?.kind {
            Some(Kind::StringValue(why)) => Some(why.clone()),
            _ => None,
        }
    }

    #[test]
    fn keeps_a_valid_event() {
        let progress = progress_from_guest(event("LLM call", r#"{"model":"offline"}"#));
        assert_eq!(progress.kind, task_progress::Kind::LlmCall as i32);
        assert_eq!(progress.message, "LLM call");
        let data = progress.data.unwrap();
        assert!(matches!(&data.fields["model"].kind, Some(Kind::StringValue(m)) if m == "offline"));
    }

    #[test]
    fn replaces_bad_or_oversized_data_and_truncates_the_message() {
        assert!(
            dropped_reason(&progress_from_guest(event("m", "[1]")))
                .unwrap()
                .contains("not a JSON object")
        );
        assert!(
            dropped_reason(&progress_from_guest(event("m", "{nope")))
                .unwrap()
                .contains("not JSON")
        );
        let big = format!(r#"{{"x":"{}"}}"#, "a".repeat(MAX_DATA_BYTES));
        assert!(
            dropped_reason(&progress_from_guest(event("m", &big)))
                .unwrap()
                .contains("limit")
        );
        assert!(
            progress_from_guest(event("m", ""))
                .data
                .unwrap()
                .fields
                .is_empty()
        );
        let long = "é".repeat(MAX_MESSAGE_BYTES);
        let cut = progress_from_guest(event(&long, "{}")).message;
        assert!(cut.starts_with(&"é".repeat(MAX_MESSAGE_BYTES / 2)), "{cut}");
        assert!(cut.ends_with("[1024 bytes cut]"), "{cut}");
    }

    #[tokio::test]
    async fn unwatched_tasks_queue_nothing_and_the_count_is_capped() {
        let mut unwatched = ProgressState::new(None);
        assert!(!unwatched.watched());
        unwatched.emit(event("m", "{}")).await;
        assert_eq!(unwatched.dropped, 0);

        let (sink, mut rx) = ProgressSink::channel();
        let mut watched = ProgressState::new(Some(sink));
        watched.emitted = MAX_EVENTS_PER_TASK - 1;
        watched.emit(event("last", "{}")).await;
        watched.emit(event("one too many", "{}")).await;
        assert_eq!(watched.dropped, 1);
        let first = rx.recv().await.unwrap();
        assert!(matches!(first.event, task_event::Event::Progress(p) if p.message == "last"));
        assert!(rx.try_recv().is_err());
    }
}
