//! Host-side bindings for the `agent-backend` world (`wit/agent-backend.wit`).
//!
//! The one `bindgen!` call of the host. Imports and exports are async so a guest
//! waiting on outbound HTTP never blocks a tokio worker. It imports nothing of this
//! crate: the `outbound-stream` resource is an opaque handle here, and
//! [`crate::outbound`] keeps what it stands for in the store's resource table.

wasmtime::component::bindgen!({
    world: "agent-backend",
    path: "../../wit",
    imports: { default: async },
    exports: { default: async },
});

pub use federation::agent_backend::log::Level;
pub use federation::agent_backend::outbound_http::{HttpError, Method, Request, Response};
pub use federation::agent_backend::progress::{Event as ProgressEvent, EventKind};
pub use federation::agent_backend::types::UpstreamStatus;
