//! The answer of a failed call to the wrapper's run API
//! ([`RunApiError`]: `GetAgentTask`, `CancelAgentTask`, `WatchAgentTask` on a task
//! this replica did not run).

use tonic::{Code, Status};

use super::{DEFAULT_RETRY_DELAY, Mapping, plain_status, task::wrapper_mapping};
use crate::wrapper_runs::RunApiError;

impl RunApiError {
    /// How this error is answered. A refusal (e.g. 403 `session_not_owned`) is
    /// answered as a task's wrapper refusal.
    pub fn mapping(&self) -> Mapping {
        match self {
            RunApiError::NotFound {
                session,
                request_id,
            } => Mapping::new(Code::NotFound, "RUN_NOT_FOUND")
                .with("federation_session_id", session)
                .with("request_id", request_id),
            RunApiError::Failed(_) => {
                Mapping::new(Code::Unavailable, "WRAPPER_UNAVAILABLE").retry(DEFAULT_RETRY_DELAY)
            }
            RunApiError::Rejected(error) => wrapper_mapping(error),
        }
    }
}

impl From<RunApiError> for Status {
    fn from(error: RunApiError) -> Self {
        let message = match &error {
            // As a task's wrapper refusal reads.
            RunApiError::Rejected(wrapper) => format!("agent wrapper answered {wrapper}"),
            _ => error.to_string(),
        };
        plain_status(&message, error.mapping())
    }
}
