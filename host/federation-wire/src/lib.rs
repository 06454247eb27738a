//! The agent wrapper's HTTP contract, on the Rust side, in one place: plain serde types
//! for what the wrapper takes and answers (`agent-wrapper/src/agent_wrapper/models.py`
//! and the NDJSON events of `runs/events.py`), its routes and header names, its error
//! codes with the gRPC code and reason the host answers for each, the one data type a
//! wrapper error travels as ([`WrapperError`]), and the one mapping of a reply to what
//! an adapter returns.
//!
//! Used by every Rust party to that contract: the guest SDK that adapters are built on,
//! the host (run records, the agent registry), the test kit's stub wrapper and the
//! benchmark's native baseline. `tests/golden.rs` binds these types to the Python
//! models through fixtures generated from them (`tests/golden/generate.py`).
//!
//! Depends on serde and serde_json only, so it builds for `wasm32-wasip2`.

mod agents;
mod error;
mod event;
mod grpc;
pub mod headers;
mod record;
mod reply;
mod request;
pub mod routes;

pub use agents::{Agent, AgentList};
pub use error::{
    ERROR_CODES, ErrorBody, ErrorCode, ErrorDetail, MAX_ERROR_EXCERPT, WrapperError, excerpt,
    truncate, truncate_to, upstream_code, upstream_message,
};
pub use event::{End, Event, EventType, progress_message};
pub use grpc::GrpcCode;
pub use record::{RunFailure, RunProgress, RunRecord, RunStatus};
pub use reply::{
    GatewayUsage, HistoryItem, LlmInfo, MappingError, Message, ReplyStatus, RunReply, StateInfo,
    Step, TaskOutcome, interrupt_of, task_outcome,
};
pub use request::{InvalidInput, RunRequest, TaskInput};

/// A JSON object, as the wrapper's bodies and replies are.
pub type Object = serde_json::Map<String, serde_json::Value>;
