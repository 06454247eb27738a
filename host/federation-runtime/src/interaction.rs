//! Which agent a task runs and the answers to the questions a run asks: the host side
//! of the world's `interaction` import (adapter contract 0.1.2).
//!
//! The caller's `TaskRequest.agent` and `resume` reach the adapter through it (the
//! `task` record of 0.1.0 cannot grow), and an adapter whose run stopped to ask for
//! input says so with `input-required`; the service then answers INPUT_REQUIRED with
//! that value. The value comes from an untrusted guest, so it is parsed and
//! size-checked before it reaches the caller.

use wasmtime::component::{HasData, Linker};

use crate::bindings::federation::agent_backend::interaction;

/// Largest interrupt value an adapter may report, bytes of JSON (the same bound as a
/// caller's `resume`).
pub const MAX_INTERRUPT_BYTES: usize = 256 * 1024;

/// What the caller asked of one task's `interaction`: the agent to run and the answer
/// to resume with. The default is a plain task (the backend's default agent).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskInteraction {
    /// `TaskRequest.agent`; empty for the backend's default agent.
    pub agent: String,
    /// `TaskRequest.resume` as JSON, when the task answers an interrupt.
    pub resume_json: Option<String>,
    /// The principal the host authenticated for the task: the outbound client sends
    /// it to the wrapper (never to other origins; the adapter cannot read or set it).
    pub principal: Option<String>,
}

impl TaskInteraction {
    /// Whether the task needs an adapter that imports `interaction`: an adapter without
    /// it would silently run the default agent, or start over instead of resuming.
    pub fn needs_adapter_support(&self) -> bool {
        !self.agent.is_empty() || self.resume_json.is_some()
    }
}

/// Per-task state of the `interaction` import.
#[derive(Debug, Default)]
pub struct InteractionCtx {
    asked: TaskInteraction,
    input_required: Option<String>,
}

impl InteractionCtx {
    pub fn new(asked: TaskInteraction) -> Self {
        InteractionCtx {
            asked,
            input_required: None,
        }
    }

    /// What the run asked (raw JSON, checked when the task ends), if it stopped to ask
    /// for input; the last `input-required` call wins.
    pub fn interrupt(&self) -> Option<&str> {
        self.input_required.as_deref()
    }
}

/// A store's data that serves the `interaction` import.
pub trait InteractionView: Send {
    fn interaction(&mut self) -> &mut InteractionCtx;
}

struct HasInteraction;

impl HasData for HasInteraction {
    type Data<'a> = &'a mut InteractionCtx;
}

/// Links the `interaction` import.
pub fn add_to_linker<T: InteractionView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    interaction::add_to_linker::<T, HasInteraction>(linker, |t| t.interaction())
}

impl interaction::Host for InteractionCtx {
    async fn agent(&mut self) -> String {
        self.asked.agent.clone()
    }

    async fn resume_json(&mut self) -> Option<String> {
        self.asked.resume_json.clone()
    }

    async fn input_required(&mut self, value_json: String) {
        self.input_required = Some(value_json);
    }
}

/// Why an adapter's interrupt value cannot be passed on.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InterruptError {
    #[error("its interrupt value is not JSON: {0}")]
    NotJson(String),
    #[error("its interrupt value is {0} bytes of JSON; the limit is {MAX_INTERRUPT_BYTES}")]
    TooLarge(usize),
}

/// The interrupt an adapter reported, parsed.
pub fn parse_interrupt(json: &str) -> Result<serde_json::Value, InterruptError> {
    if json.len() > MAX_INTERRUPT_BYTES {
        return Err(InterruptError::TooLarge(json.len()));
    }
    serde_json::from_str(json).map_err(|e| InterruptError::NotJson(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_agent_or_a_resume_needs_the_import() {
        assert!(!TaskInteraction::default().needs_adapter_support());
        let agent = TaskInteraction {
            agent: "trip_planner".into(),
            ..Default::default()
        };
        assert!(agent.needs_adapter_support());
        // JSON null is an answer too.
        let resume = TaskInteraction {
            resume_json: Some("null".into()),
            ..Default::default()
        };
        assert!(resume.needs_adapter_support());
    }

    #[test]
    fn interrupts_must_be_json_within_the_limit() {
        assert_eq!(
            parse_interrupt(r#"{"question":"which city?"}"#).unwrap()["question"],
            "which city?"
        );
        assert_eq!(parse_interrupt("null").unwrap(), serde_json::Value::Null);
        assert!(matches!(
            parse_interrupt("{nope"),
            Err(InterruptError::NotJson(_))
        ));
        let big = format!("\"{}\"", "a".repeat(MAX_INTERRUPT_BYTES));
        assert_eq!(
            parse_interrupt(&big),
            Err(InterruptError::TooLarge(MAX_INTERRUPT_BYTES + 2))
        );
    }
}
