//! agent-federation: a gRPC host that runs AI agent frameworks (CrewAI, LangGraph, ...)
//! behind one API, each through a sandboxed WebAssembly adapter, with one OpenTelemetry
//! trace from the caller to every LLM call.
//!
//! A request's path: [`server`] (tonic, server span) → [`service`] (validation in
//! [`task`], errors in [`error`]) → `federation_runtime` (a fresh adapter instance per
//! task, its outbound HTTP the adapter's only way out) → the agent wrapper.

pub mod admin;
pub mod agents;
pub mod async_tasks;
pub mod check;
pub mod client;
pub mod config;
pub mod error;
pub mod lifecycle;
pub mod scaffold;
pub mod server;
pub mod service;
pub mod task;
pub mod telemetry;
pub mod wrapper_runs;

pub use federation_proto as proto;
pub use federation_proto::json;
