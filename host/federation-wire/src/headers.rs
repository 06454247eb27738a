//! The header names of the wrapper's HTTP contract (lowercase, as the wrapper's
//! `contract.py` spells them).

/// The host's credential, when the wrapper is configured with one (request).
pub const HOST_CREDENTIAL: &str = "x-federation-host-credential";
/// The principal the host authenticated and vouches for (request).
pub const PRINCIPAL: &str = "x-federation-principal";
/// Milliseconds left for the whole task (request).
pub const DEADLINE_MS: &str = "x-federation-deadline-ms";
/// The run's request id (reply of a run route).
pub const REQUEST_ID: &str = "x-agent-wrapper-request-id";
/// LLM calls the run made (reply of a run route).
pub const LLM_CALLS: &str = "x-agent-wrapper-llm-calls";
/// Whether the reply is a stored run's, replayed (reply of a run route).
pub const REPLAYED: &str = "x-agent-wrapper-replayed";
/// Whole seconds to wait before retrying (error reply).
pub const RETRY_AFTER: &str = "retry-after";
/// `Prefer: respond-async` asks a run route for a 202 with the run record at once.
pub const PREFER: &str = "prefer";
/// Echoes the preference the wrapper applied.
pub const PREFERENCE_APPLIED: &str = "preference-applied";
/// The value of [`PREFER`] that asks for an asynchronous run.
pub const RESPOND_ASYNC: &str = "respond-async";
