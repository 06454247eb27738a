//! A run's record (`RunRecordView` in `models.py`): what `GET` of a run, and a cancel,
//! answer, on any wrapper replica (the record lives in the shared store).

use serde::{Deserialize, Serialize};

use crate::{Object, WrapperError};

/// A run as its record shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub federation_session_id: String,
    pub request_id: String,
    /// `/v1/run_crew` or `/v1/run_graph`.
    pub route: String,
    pub framework: String,
    /// The agent that runs (records of wrappers before agent registries have none).
    #[serde(default)]
    pub agent: Option<String>,
    pub status: RunStatus,
    pub attempt: u32,
    pub cancel_requested: bool,
    pub trace_id: String,
    pub body_sha256: String,
    pub progress: RunProgress,
    pub created_at: String,
    pub updated_at: String,
    /// The reply (a [`RunReply`](crate::RunReply) object, kept whole), once completed
    /// or input_required.
    #[serde(default)]
    pub result: Option<Object>,
    /// Once failed or canceled.
    #[serde(default)]
    pub error: Option<RunFailure>,
}

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Submitted,
    Working,
    Completed,
    InputRequired,
    Failed,
    Canceled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 6] = [
        RunStatus::Submitted,
        RunStatus::Working,
        RunStatus::Completed,
        RunStatus::InputRequired,
        RunStatus::Failed,
        RunStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Submitted => "submitted",
            RunStatus::Working => "working",
            RunStatus::Completed => "completed",
            RunStatus::InputRequired => "input_required",
            RunStatus::Failed => "failed",
            RunStatus::Canceled => "canceled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a run failed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunFailure {
    /// The HTTP status it failed with (499: canceled).
    pub status: u16,
    pub code: String,
    pub message: String,
}

impl From<RunFailure> for WrapperError {
    fn from(failure: RunFailure) -> WrapperError {
        WrapperError::new(failure.status, Some(&failure.code), &failure.message)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    pub current_step: Option<String>,
    /// Steps finished so far (resumed ones included).
    pub steps: Vec<String>,
    pub llm_calls: u32,
}
