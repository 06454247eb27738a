//! [`AdminError`]: why an `AdminService` call failed, and its one [`Mapping`].

use tonic::{Code, Status};

use federation_runtime::RollbackError;

use super::{Mapping, plain_status};
use crate::lifecycle::LifecycleError;

/// Why an `AdminService` call failed.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("admin calls need `authorization: Bearer <admin token>`")]
    Unauthenticated,
    #[error("component is empty")]
    EmptyComponent,
    #[error("component is {size} bytes; this host accepts at most {limit} (--max-upload-mib)")]
    ComponentTooLarge { size: usize, limit: usize },
    #[error("no adapter named {0:?} is loaded")]
    NotLoaded(String),
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),
}

impl AdminError {
    /// How this error is answered.
    pub fn mapping(&self) -> Mapping {
        let (code, reason) = match self {
            AdminError::Unauthenticated => (Code::Unauthenticated, "UNAUTHENTICATED"),
            AdminError::EmptyComponent => (Code::InvalidArgument, "INVALID_INPUT"),
            AdminError::ComponentTooLarge { .. } => (Code::ResourceExhausted, "RESOURCE_LIMIT"),
            AdminError::NotLoaded(_) => (Code::NotFound, "BACKEND_NOT_FOUND"),
            AdminError::Lifecycle(error) => match error {
                LifecycleError::Rollback(RollbackError::NotFound(_)) => {
                    (Code::NotFound, "BACKEND_NOT_FOUND")
                }
                LifecycleError::Rollback(RollbackError::NoPrevious(_)) => {
                    (Code::FailedPrecondition, "NO_PREVIOUS_VERSION")
                }
                LifecycleError::Rejected(_) => (Code::InvalidArgument, "ADAPTER_REJECTED"),
                LifecycleError::Directory { .. } => (Code::Internal, "INTERNAL"),
            },
        };
        Mapping::new(code, reason)
    }

    pub fn code(&self) -> Code {
        self.mapping().code
    }

    /// The stable `ErrorInfo.reason` of this error.
    pub fn reason(&self) -> &'static str {
        self.mapping().reason
    }
}

impl From<AdminError> for Status {
    fn from(error: AdminError) -> Self {
        plain_status(&error.to_string(), error.mapping())
    }
}
