//! The WebAssembly side of the host: engine, bindings, per-task context, adapters and
//! the registry that names them.

pub mod adapter;
pub mod bindings;
pub mod cache;
pub mod ctx;
pub mod engine;
pub mod guest_stdio;
pub mod registry;
