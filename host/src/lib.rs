//! agent-federation: a gRPC host that runs AI agent frameworks (CrewAI, LangGraph, ...)
//! behind one API, each through a sandboxed WebAssembly adapter, with one OpenTelemetry
//! trace from the caller to every LLM call.
//!
//! A request's path: [`server`] (tonic, server span) → [`service`] (validation in
//! [`task`], errors in [`error`]) → [`runtime`] (a fresh adapter instance per task) →
//! [`outbound_http`] (the adapter's only way out, trace headers injected) → the agent
//! wrapper.

pub mod admin;
pub mod agents;
pub mod async_tasks;
pub mod check;
pub mod client;
pub mod config;
pub mod error;
pub mod guest_log;
pub mod interaction;
pub mod lifecycle;
pub mod metrics;
pub mod outbound_http;
pub mod policy;
pub mod progress;
pub mod runtime;
pub mod scaffold;
pub mod server;
pub mod service;
pub mod task;
pub mod telemetry;
pub mod wrapper_runs;

pub use federation_proto as proto;
pub use federation_proto::json;
