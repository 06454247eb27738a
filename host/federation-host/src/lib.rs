//! The agent-federation service as a library: a gRPC host that runs AI agent
//! frameworks (CrewAI, LangGraph, ...) behind one API, each through a sandboxed
//! WebAssembly adapter (`federation_runtime`), with one OpenTelemetry trace from the
//! caller to every LLM call. The `agent-federation` binary (`federation-cli`) serves it.
//!
//! A request's path: `server` (tonic, server span, arrival time) → `service`
//! (deadline in `deadline`, validation in `validate`, admission, execution on an
//! [`Executor`]) → `federation_runtime` (a fresh adapter instance per task; its
//! outbound HTTP is the adapter's only way out) → the agent wrapper. Every failure
//! becomes its gRPC status in `error`, the one place a status is built. Beside it: `admin` (`AdminService`),
//! `lifecycle` (the adapters directory and registry sources, swaps and rollbacks),
//! `oci_registry` (the OCI registry client: adapters as artifacts, push and pull),
//! `fleet` (per-replica gauges), `wrapper_runs` (the wrapper's run API), `auth` (who
//! calls: tokens, client certificates, principals and their limits), `telemetry` and
//! the serve `config`.

mod admin;
mod auth;
mod config;
mod deadline;
mod doors;
mod error;
mod fleet;
mod lifecycle;
pub mod oci_registry;
mod server;
mod service;
mod telemetry;
mod validate;
mod wrapper_runs;

pub use admin::AdminToken;
pub use auth::{Caller, LOCAL_PRINCIPAL, identities_of, principal_name_is_valid};
pub use config::{ServeArgs, parse_admin_token};
pub use error::{AdminError, TaskError, code_name};
pub use server::{serve, serve_with, shutdown_signal};
pub use service::{Executor, Federation, ServiceConfig};
pub use telemetry::Telemetry;
