//! A run's progress stream (`runs/events.py`): NDJSON, one event per line, `seq` from
//! 1 without gaps, ending with exactly one `completed`, `failed` or `canceled`.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::{Object, WrapperError};

/// One line of the stream.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    #[serde(default)]
    pub seq: u64,
    #[serde(rename = "type", default)]
    pub kind: EventType,
    #[serde(default)]
    pub trace_id: String,
    /// Unix milliseconds.
    #[serde(default)]
    pub ts: u64,
    /// By type: `started` (`framework`, `federation_session_id`, `request_id`,
    /// `attempt`), `step` (`name`, `agent`, `phase`, `output`), `llm_call` (`model`,
    /// `agent`, `step`, token or char counts), `tool_call` (`tool`, `agent`, `step`),
    /// `checkpoint_saved` (`step`, `checkpoint`), `completed` (`reply`, `llm_calls`,
    /// `replayed`), `failed` / `canceled` (`status`, `code`, `message`). Anything but
    /// an object reads as empty.
    #[serde(default, deserialize_with = "object_or_empty")]
    pub data: Object,
}

fn object_or_empty<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Object, D::Error> {
    Ok(match Value::deserialize(deserializer)? {
        Value::Object(map) => map,
        _ => Object::new(),
    })
}

/// The kinds of event; a type this crate does not know reads as `Unknown`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    Started,
    Step,
    LlmCall,
    ToolCall,
    CheckpointSaved,
    Completed,
    Failed,
    Canceled,
    #[default]
    #[serde(other)]
    Unknown,
}

impl EventType {
    /// Every type the wrapper sends, in its order (`EVENT_TYPES`).
    pub const ALL: [EventType; 8] = [
        EventType::Started,
        EventType::Step,
        EventType::LlmCall,
        EventType::ToolCall,
        EventType::CheckpointSaved,
        EventType::Completed,
        EventType::Failed,
        EventType::Canceled,
    ];

    /// Whether an event of this type ends the stream.
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            EventType::Completed | EventType::Failed | EventType::Canceled
        )
    }

    /// The type named `name` (`Unknown` for names it does not know).
    pub fn parse(name: &str) -> EventType {
        serde_json::from_value(Value::String(name.to_string())).unwrap_or_default()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Started => "started",
            EventType::Step => "step",
            EventType::LlmCall => "llm_call",
            EventType::ToolCall => "tool_call",
            EventType::CheckpointSaved => "checkpoint_saved",
            EventType::Completed => "completed",
            EventType::Failed => "failed",
            EventType::Canceled => "canceled",
            EventType::Unknown => "unknown",
        }
    }
}

/// How a stream ends, when this event ends it.
#[derive(Clone, Debug, PartialEq)]
pub enum End {
    /// `completed`: the reply object (`None` when the event carries none).
    Completed(Option<Object>),
    /// `failed` or `canceled`: the wrapper's error (its HTTP-like status is a 4xx or
    /// 5xx: 500 when missing or out of range, 499 for a cancelled run).
    Failed(WrapperError),
}

impl Event {
    pub fn new(seq: u64, kind: EventType, trace_id: &str, data: Object) -> Event {
        Event {
            seq,
            kind,
            trace_id: trace_id.to_string(),
            ts: 0,
            data,
        }
    }

    /// The end of the run this event reports, if it is a terminal one (consumes the
    /// event: a `completed` event's reply moves out; ask [`EventType::is_terminal`]
    /// to only look).
    pub fn end(mut self) -> Option<End> {
        match self.kind {
            EventType::Completed => Some(End::Completed(match self.data.remove("reply") {
                Some(Value::Object(reply)) => Some(reply),
                _ => None,
            })),
            EventType::Failed | EventType::Canceled => {
                let status = self
                    .data
                    .get("status")
                    .and_then(Value::as_u64)
                    .and_then(|s| u16::try_from(s).ok())
                    .filter(|s| (400..600).contains(s))
                    .unwrap_or(500);
                let message = self
                    .data
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("the wrapper's run failed");
                let code = self.data.get("code").and_then(Value::as_str);
                Some(End::Failed(WrapperError::new(status, code, message)))
            }
            _ => None,
        }
    }
}

/// The line an adapter reports to a watching caller for a progress event: `None` for
/// the events the host reports itself (`started`), the terminal ones and unknown ones.
pub fn progress_message(kind: EventType, data: &Object) -> Option<String> {
    let text = |key: &str| data.get(key).and_then(Value::as_str).unwrap_or("?");
    Some(match kind {
        EventType::Step => format!("step {} {}", text("name"), text("phase")),
        EventType::LlmCall => format!("LLM call by {} ({})", text("agent"), text("model")),
        EventType::ToolCall => format!("tool {} called by {}", text("tool"), text("agent")),
        EventType::CheckpointSaved => format!("checkpoint saved after step {}", text("step")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_parse_leniently() {
        let event: Event = serde_json::from_str(r#"{"type":"step","data":[1]}"#).unwrap();
        assert_eq!(event.kind, EventType::Step);
        assert!(event.data.is_empty());
        let event: Event = serde_json::from_str(r#"{"type":"new_kind","seq":3}"#).unwrap();
        assert_eq!(event.kind, EventType::Unknown);
        assert_eq!(EventType::parse("llm_call"), EventType::LlmCall);
        assert_eq!(EventType::parse("x"), EventType::Unknown);
    }

    #[test]
    fn terminal_events_end_the_run() {
        let data = |v: Value| match v {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let completed = Event::new(
            9,
            EventType::Completed,
            "",
            data(json!({"reply": {"output": "x"}})),
        );
        assert!(matches!(completed.end(), Some(End::Completed(Some(r))) if r["output"] == "x"));
        let failed = Event::new(
            9,
            EventType::Canceled,
            "",
            data(json!({"status": 499, "code": "canceled", "message": "stop"})),
        );
        assert!(failed.kind.is_terminal());
        assert_eq!(
            failed.end(),
            Some(End::Failed(WrapperError::new(
                499,
                Some("canceled"),
                "stop"
            )))
        );
        let odd = Event::new(9, EventType::Failed, "", data(json!({"status": 200})));
        assert!(matches!(
            odd.end(),
            Some(End::Failed(WrapperError {
                status: 500,
                code: None,
                ..
            }))
        ));
        let step = Event::new(2, EventType::Step, "", Object::new());
        assert!(!step.kind.is_terminal());
        assert_eq!(step.end(), None);
        assert_eq!(
            progress_message(
                EventType::Step,
                &data(json!({"name": "research", "phase": "started"}))
            )
            .as_deref(),
            Some("step research started")
        );
    }
}
