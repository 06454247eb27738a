//! Loading an adapter component and running one task on a fresh instance of it.
//!
//! Loading compiles the component once, links it against the host's imports into an
//! `InstancePre` (so per-task instantiation is cheap with the pooling allocator) and
//! asks it to `describe()` itself. Running gives every task its own `Store`: no state
//! leaks from one task to the next, and a trap only loses that task.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::runtime::bindings::{
    AdapterError, AdapterInfo, AgentBackend, AgentBackendPre, Task, TaskResponse,
};
use crate::runtime::cache::CompileCache;
use crate::runtime::ctx::{AdapterCtx, Capabilities};

/// Time an adapter gets to answer `describe()` at load time.
const DESCRIBE_BUDGET: Duration = Duration::from_secs(5);

/// A loaded, validated adapter, ready to run tasks.
pub struct Adapter {
    pub info: AdapterInfo,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    pre: AgentBackendPre<AdapterCtx>,
}

/// Why an adapter could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("not a valid adapter component: {0:#}")]
    Compile(wasmtime::Error),
    #[error("the component does not fit the agent-backend world: {0:#}")]
    Link(wasmtime::Error),
    #[error("describe() failed: {0}")]
    Describe(RunError),
    #[error("describe() returned an invalid {field}: {value:?} ({rule})")]
    InvalidInfo {
        field: &'static str,
        value: String,
        rule: &'static str,
    },
}

/// Why a task did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The adapter answered with a typed error.
    #[error("adapter error: {0:?}")]
    Adapter(AdapterError),
    /// The task ran out of time (guest CPU or outbound waits).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The adapter crashed (panic, invalid memory access, resource limit).
    #[error("adapter trapped: {message}")]
    Trap { message: String },
    /// No instance could be created (e.g. every pooling slot is in use).
    #[error("could not instantiate the adapter: {0}")]
    Instantiate(String),
}

/// What a finished task reports beyond its response.
pub struct RunOutcome {
    pub response: TaskResponse,
    pub instantiate_time: Duration,
    pub call_time: Duration,
    pub outbound_time: Duration,
}

/// Marker error raised from the epoch callback when a task's deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the task's deadline passed while the adapter was running")]
struct DeadlineReached;

/// Compiles components and runs tasks; one per host.
pub struct AdapterRuntime {
    engine: Engine,
    linker: Linker<AdapterCtx>,
    capabilities: Capabilities,
    cache: Option<Arc<CompileCache>>,
}

impl AdapterRuntime {
    pub fn new(
        engine: Engine,
        capabilities: Capabilities,
        cache: Option<CompileCache>,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
        AgentBackend::add_to_linker::<_, HasSelf<_>>(&mut linker, |ctx| ctx)?;
        Ok(AdapterRuntime {
            engine,
            linker,
            capabilities,
            cache: cache.map(Arc::new),
        })
    }

    /// Loads the component at `path`.
    pub async fn load_file(&self, path: &Path) -> Result<Adapter, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.load_bytes(bytes).await
    }

    /// Compiles, links and describes a component given as bytes.
    pub async fn load_bytes(&self, bytes: Vec<u8>) -> Result<Adapter, LoadError> {
        let digest = hex::encode(Sha256::digest(&bytes));
        let engine = self.engine.clone();
        // Compiling takes milliseconds to seconds: keep it off the async workers.
        let cache = self.cache.clone();
        let key = digest.clone();
        let component = tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.load_or_compile(&engine, &key, &bytes),
            None => Component::new(&engine, &bytes),
        })
        .await
        .map_err(|e| LoadError::Compile(wasmtime::Error::msg(e.to_string())))?
        .map_err(LoadError::Compile)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(AgentBackendPre::new)
            .map_err(LoadError::Link)?;
        let mut store = self.new_store("(loading)".into(), Instant::now() + DESCRIBE_BUDGET);
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Describe(RunError::Instantiate(format!("{e:#}"))))?;
        let info = instance
            .call_describe(&mut store)
            .await
            .map_err(|e| LoadError::Describe(classify_trap(e, &store)))?;
        validate_info(&info)?;
        Ok(Adapter { info, digest, pre })
    }

    /// Runs `task` on a fresh instance of `adapter`; the task must end by `deadline`.
    pub async fn run(
        &self,
        adapter: &Adapter,
        task: Task,
        deadline: Instant,
    ) -> Result<RunOutcome, RunError> {
        let started = Instant::now();
        let mut store = self.new_store(adapter.info.name.as_str().into(), deadline);
        let instance = adapter
            .pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| RunError::Instantiate(format!("{e:#}")))?;
        let instantiated = Instant::now();
        let result = instance.call_run_task(&mut store, &task).await;
        let call_time = instantiated.elapsed();
        let outbound_time = store.data().outbound_time;
        match result {
            Ok(Ok(response)) => Ok(RunOutcome {
                response,
                instantiate_time: instantiated - started,
                call_time,
                outbound_time,
            }),
            Ok(Err(error)) => Err(RunError::Adapter(error)),
            Err(trap) => Err(classify_trap(trap, &store)),
        }
    }

    fn new_store(&self, adapter: Arc<str>, deadline: Instant) -> Store<AdapterCtx> {
        let ctx = AdapterCtx::new(adapter, self.capabilities.clone(), deadline);
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| ctx.limiter());
        // Check the deadline every epoch tick, and yield to the scheduler meanwhile so a
        // spinning guest never starves other tasks on the same worker thread.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            if Instant::now() >= ctx.data().deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else {
                Ok(UpdateDeadline::Yield(1))
            }
        });
        store
    }
}

/// Sorts a wasmtime error into deadline vs. trap, with the guest's stderr (where a
/// Rust panic prints its message) attached.
fn classify_trap(error: wasmtime::Error, store: &Store<AdapterCtx>) -> RunError {
    if error.downcast_ref::<DeadlineReached>().is_some() {
        return RunError::DeadlineExceeded;
    }
    // The wasm backtrace goes to the log; the caller gets the trap and the guest's
    // own words (a Rust panic message lands on stderr).
    tracing::warn!(error = format!("{error:?}"), "adapter trapped");
    let reason = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => format!("wasm trap: {trap}"),
        None => error.root_cause().to_string(),
    };
    let stderr = store.data().stderr();
    let message = match stderr.lines().find(|line| !line.trim().is_empty()) {
        Some(_) => format!(
            "{reason}; guest stderr: {}",
            crate::guest_log::truncate(&stderr, 1024)
        ),
        None => reason,
    };
    RunError::Trap { message }
}

fn validate_info(info: &AdapterInfo) -> Result<(), LoadError> {
    let name_ok = !info.name.is_empty()
        && info.name.len() <= 64
        && info
            .name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !name_ok {
        return Err(LoadError::InvalidInfo {
            field: "name",
            value: info.name.clone(),
            rule: "1..64 chars of [a-z0-9-]",
        });
    }
    let version_ok = {
        let core = info.version.split(['-', '+']).next().unwrap_or_default();
        let parts: Vec<_> = core.split('.').collect();
        parts.len() == 3
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    };
    if !version_ok {
        return Err(LoadError::InvalidInfo {
            field: "version",
            value: info.version.clone(),
            rule: "semver MAJOR.MINOR.PATCH",
        });
    }
    if !info.route.starts_with('/') {
        return Err(LoadError::InvalidInfo {
            field: "route",
            value: info.route.clone(),
            rule: "a path starting with '/'",
        });
    }
    Ok(())
}
