//! What the host's tests, the end-to-end suite, `agent-federation adapter check` and
//! the benchmark share instead of copies: one [`StubWrapper`] (a recording stand-in for
//! the agent wrapper, driven by each task's goal, speaking `federation-wire`'s
//! contract) and, with the `harness` feature, one process harness (`process`: the
//! host and other servers as child processes, with their logs; `registry`: a real OCI
//! registry on loopback).

pub mod stub;

#[cfg(feature = "harness")]
pub mod process;
#[cfg(feature = "harness")]
pub mod registry;

pub use stub::{HOLD_GOAL, Recorded, StubWrapper};
