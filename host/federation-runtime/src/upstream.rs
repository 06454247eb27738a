//! The wrapper's error as data: the host side of the world's `upstream` import
//! (adapter contract 0.1.3), and the one place an adapter's typed error enters the
//! host ([`AdapterFailure::of`]).
//!
//! An adapter that reports the wrapper's code and `Retry-After` through `upstream`
//! before returning `upstream-status` gets them attached as data. One built before
//! 0.1.3 had no field for them and its SDK wrote them in front of the message
//! (`[session_busy retry-after=2] ...`): that form is read here and nowhere else.

use wasmtime::component::{HasData, Linker};

use federation_wire::WrapperError;

use crate::bindings::AdapterError;
use crate::bindings::federation::agent_backend::upstream;

/// Per-task state of the `upstream` import: the last report.
#[derive(Debug, Default)]
pub struct UpstreamCtx {
    reported: Option<upstream::WrapperError>,
}

impl UpstreamCtx {
    /// What the adapter reported of the wrapper's error, if it did.
    pub fn take_report(&mut self) -> Option<upstream::WrapperError> {
        self.reported.take()
    }
}

/// A store's data that serves the `upstream` import.
pub trait UpstreamView: Send {
    fn upstream(&mut self) -> &mut UpstreamCtx;
}

struct HasUpstream;

impl HasData for HasUpstream {
    type Data<'a> = &'a mut UpstreamCtx;
}

/// Links the `upstream` import.
pub fn add_to_linker<T: UpstreamView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    upstream::add_to_linker::<T, HasUpstream>(linker, |t| t.upstream())
}

impl upstream::Host for UpstreamCtx {
    async fn report(&mut self, error: upstream::WrapperError) {
        self.reported = Some(error);
    }
}

/// A typed error an adapter answered with; its `upstream-status` as the wrapper's
/// error, with code and retry delay as data.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AdapterFailure {
    #[error("invalid input: {0}")]
    InvalidInput(String),
    #[error("the agent wrapper answered {0}")]
    Upstream(WrapperError),
    #[error("transport: {0}")]
    Transport(String),
    #[error("timeout: {0}")]
    Timeout(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl AdapterFailure {
    /// The failure of an adapter's `error`, with what it reported through `upstream`
    /// (`None`: an adapter before 0.1.3, or one that reported nothing: the message is
    /// read for a tagged code).
    pub fn of(error: AdapterError, reported: Option<upstream::WrapperError>) -> AdapterFailure {
        match error {
            AdapterError::InvalidInput(message) => AdapterFailure::InvalidInput(message),
            AdapterError::UpstreamStatus(status) => AdapterFailure::Upstream(match reported {
                Some(report) => WrapperError {
                    retry_after_secs: report.retry_after_secs,
                    ..WrapperError::new(status.status, Some(&report.code), &status.message)
                },
                None => WrapperError::from_tagged(status.status, &status.message),
            }),
            AdapterError::Transport(message) => AdapterFailure::Transport(message),
            AdapterError::Timeout(message) => AdapterFailure::Timeout(message),
            AdapterError::Internal(message) => AdapterFailure::Internal(message),
        }
    }
}

impl From<AdapterError> for AdapterFailure {
    /// An error with nothing reported (a native mapping, or an adapter before 0.1.3).
    fn from(error: AdapterError) -> AdapterFailure {
        AdapterFailure::of(error, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::UpstreamStatus;

    fn busy(message: &str) -> AdapterError {
        AdapterError::UpstreamStatus(UpstreamStatus {
            status: 409,
            message: message.into(),
        })
    }

    #[test]
    fn a_report_attaches_the_code_and_retry_after_as_data() {
        let report = upstream::WrapperError {
            code: "session_busy".into(),
            retry_after_secs: Some(3),
        };
        let failure = AdapterFailure::of(busy("[not_read] busy"), Some(report));
        let AdapterFailure::Upstream(error) = failure else {
            panic!("{failure:?}")
        };
        assert_eq!(error.code.as_deref(), Some("session_busy"));
        assert_eq!(error.retry_after_secs, Some(3));
        // With a report the message is the wrapper's, whatever it looks like.
        assert_eq!(error.message, "[not_read] busy");
        let empty = upstream::WrapperError {
            code: String::new(),
            retry_after_secs: None,
        };
        assert!(matches!(
            AdapterFailure::of(busy("m"), Some(empty)),
            AdapterFailure::Upstream(WrapperError { code: None, .. })
        ));
    }

    #[test]
    fn an_old_adapters_tag_is_read_when_nothing_is_reported() {
        let failure = AdapterFailure::from(busy("[session_busy retry-after=2] busy"));
        assert_eq!(
            failure,
            AdapterFailure::Upstream(WrapperError {
                status: 409,
                code: Some("session_busy".into()),
                retry_after_secs: Some(2),
                message: "busy".into(),
            })
        );
    }
}
