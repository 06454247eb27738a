//! The WebAssembly side of agent-federation: loading an adapter component, checking it,
//! and running each task on a fresh instance in its sandbox.
//!
//! One module per host capability, each with its own per-task state (`*Ctx`), the
//! view a store's data gives of it (`*View`) and its `add_to_linker`, as wasmtime's
//! `wasi-http` does: [`outbound`] (HTTP out: client, policy, line streams; the
//! transport behind a trait, so tests and benchmarks swap it, not the context),
//! [`progress`], [`interaction`], [`upstream`] (the wrapper's error as data, and the
//! one place an adapter's typed error enters the host), [`log`] and [`stdio`] (WASI,
//! captured). [`AdapterCtx`]
//! composes them into one store's data.
//!
//! Around them: the [`engine`], the compile cache, each adapter's [`SandboxPolicy`],
//! [`Adapter`]s and the [`AdapterRuntime`] that loads and runs them, the
//! [`AdapterRegistry`] that names them, and their [`AdapterMetrics`]. [`bindings`] is
//! the one `bindgen!` of the `agent-backend` world and imports nothing of this crate.

pub mod bindings;
pub mod interaction;
pub mod log;
pub mod outbound;
pub mod progress;
pub mod stdio;
pub mod upstream;

mod adapter;
mod cache;
mod ctx;
pub mod engine;
mod metrics;
mod registry;
mod sandbox;
mod usage;

pub use adapter::{Adapter, AdapterRuntime, LoadError, RunError, RunOutcome, digest_of};
pub use cache::{CacheError, CompileCache};
pub use ctx::{AdapterCtx, MemoryLimitReached};
pub use engine::{EngineLimits, build_engine};
pub use interaction::{InterruptError, TaskInteraction, parse_interrupt};
pub use metrics::{AdapterMetrics, MetricAttributes};
pub use progress::{Progress, ProgressSink, Stamped};
pub use registry::{AdapterRegistry, Installed, RollbackError, Slot};
pub use sandbox::{
    DEFAULT_SECRET_ENV_PREFIX, PolicyDefaults, PolicyError, SandboxPolicy, SecretSources,
    manifest_path,
};
pub use upstream::AdapterFailure;
pub use usage::Usage;
