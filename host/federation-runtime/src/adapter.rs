//! Loading an adapter component and running one task on a fresh instance of it.
//!
//! Loading compiles the component once, links it against the host's imports into an
//! `InstancePre` (so per-task instantiation is cheap with the pooling allocator) and
//! asks it to `describe()` itself. Running gives every task its own `Store`: no state
//! leaks from one task to the next, and a trap only loses that task.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant, SystemTime},
};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

use crate::bindings::{AdapterInfo, AgentBackendPre, Task, TaskResponse};
use crate::cache::CompileCache;
use crate::ctx::{AdapterCtx, MemoryLimitReached};
use crate::engine::EPOCH_TICK;
use crate::interaction::TaskInteraction;
use crate::metrics::MetricAttributes;
use crate::outbound::{OutboundHttp, OutboundPolicy};
use crate::progress::ProgressSink;
use crate::sandbox::SandboxPolicy;
use crate::upstream::AdapterFailure;
use crate::usage::Usage;

/// Time an adapter gets to answer `describe()` at load time.
const DESCRIBE_BUDGET: Duration = Duration::from_secs(5);
/// The `progress` import's name, up to its version.
const PROGRESS_INTERFACE: &str = "federation:agent-backend/progress@";
/// The `interaction` import's name, up to its version.
const INTERACTION_INTERFACE: &str = "federation:agent-backend/interaction@";
/// Time an adapter gets for its self-test task at load time.
const SELF_TEST_BUDGET: Duration = Duration::from_secs(5);

/// A loaded, validated build of an adapter, ready to run tasks.
pub struct Adapter {
    pub info: AdapterInfo,
    /// sha256 of the component bytes, hex.
    pub digest: String,
    /// Where the bytes came from: a file path, or `upload`.
    pub source: String,
    pub loaded_at: SystemTime,
    /// Compile (or cache hit) + link + describe + self-test.
    pub load_time: Duration,
    /// Whether the compiled code came from the compile cache.
    pub from_cache: bool,
    /// Its sandbox (from its manifest or the host's defaults).
    pub policy: Arc<SandboxPolicy>,
    /// Admits at most `policy.max_concurrent_tasks` tasks at once.
    pub task_slots: Arc<tokio::sync::Semaphore>,
    /// Whether the component imports `progress` (contract 0.1.1 or later), i.e. can
    /// report progress events to a watcher.
    pub reports_progress: bool,
    /// Whether the component imports `interaction` (contract 0.1.2 or later), i.e. can
    /// run a named agent, resume an interrupt and ask for input.
    pub supports_interaction: bool,
    /// `adapter.name` and `adapter.version`, for its metrics.
    pub metric_attributes: MetricAttributes,
    tasks_started: AtomicU64,
    pre: AgentBackendPre<AdapterCtx>,
}

impl Adapter {
    /// Tasks started on this build so far.
    pub fn tasks_started(&self) -> u64 {
        self.tasks_started.load(Ordering::Relaxed)
    }

    /// The same compiled component under another policy (its manifest changed): no
    /// compile, no validation, counters start afresh.
    pub fn with_policy(&self, policy: Arc<SandboxPolicy>) -> Adapter {
        Adapter {
            info: self.info.clone(),
            digest: self.digest.clone(),
            source: self.source.clone(),
            loaded_at: SystemTime::now(),
            load_time: Duration::ZERO,
            from_cache: true,
            task_slots: Arc::new(tokio::sync::Semaphore::new(policy.max_concurrent_tasks)),
            policy,
            reports_progress: self.reports_progress,
            supports_interaction: self.supports_interaction,
            metric_attributes: self.metric_attributes.clone(),
            tasks_started: AtomicU64::new(0),
            pre: self.pre.clone(),
        }
    }

    /// Whether this is the given build: same component bytes and same policy.
    pub fn is_build(&self, digest: &str, policy: &SandboxPolicy) -> bool {
        self.digest == digest && self.policy.digest == policy.digest
    }

    /// The linked component, ready to instantiate into a store of
    /// [`AdapterRuntime::store`] (for benchmarks that time the parts of a run).
    pub fn instance_pre(&self) -> &AgentBackendPre<AdapterCtx> {
        &self.pre
    }
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
    /// The self-test task (run with all network denied) crashed or hung; a typed
    /// adapter error is a pass.
    #[error("self-test task failed: {0}")]
    SelfTest(RunError),
}

/// Why a task did not produce a response.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The adapter answered with a typed error.
    #[error("adapter error: {0}")]
    Adapter(AdapterFailure),
    /// The task ran out of time (guest CPU or outbound waits).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The guest used up its policy's CPU budget for one task.
    #[error("the adapter used its CPU budget of {0:?} for one task")]
    CpuBudget(Duration),
    /// The guest asked for more linear memory than its policy allows.
    #[error("{0}")]
    MemoryLimit(String),
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
    /// What the run asks (JSON as the adapter reported it through
    /// `interaction.input-required`), when it stopped to ask for input.
    pub interrupt: Option<String>,
    pub instantiate_time: Duration,
    pub call_time: Duration,
    pub usage: Usage,
}

/// Marker error raised from the epoch callback when a task's deadline passes.
#[derive(Debug, thiserror::Error)]
#[error("the task's deadline passed while the adapter was running")]
struct DeadlineReached;

/// Marker error raised from the epoch callback when the CPU budget is used up.
#[derive(Debug, thiserror::Error)]
#[error("the adapter used its CPU budget")]
struct CpuBudgetUsed;

/// Compiles components and runs tasks; one per host.
pub struct AdapterRuntime {
    engine: Engine,
    linker: Linker<AdapterCtx>,
    outbound: Arc<OutboundHttp>,
    cache: Option<Arc<CompileCache>>,
    self_test: bool,
}

/// sha256 of a component's bytes, hex: the identity of an adapter build.
pub fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl AdapterRuntime {
    /// `self_test`: run one task with all network denied before accepting an adapter.
    pub fn new(
        engine: Engine,
        outbound: Arc<OutboundHttp>,
        cache: Option<CompileCache>,
        self_test: bool,
    ) -> anyhow::Result<Self> {
        let mut linker = Linker::new(&engine);
        AdapterCtx::add_to_linker(&mut linker)?;
        Ok(AdapterRuntime {
            engine,
            linker,
            outbound,
            cache: cache.map(Arc::new),
            self_test,
        })
    }

    /// Loads the component at `path` under `policy`.
    pub async fn load_file(
        &self,
        path: &std::path::Path,
        policy: Arc<SandboxPolicy>,
    ) -> Result<Adapter, LoadError> {
        let bytes = tokio::fs::read(path)
            .await
            .map_err(|source| LoadError::Read {
                path: path.display().to_string(),
                source,
            })?;
        self.load_bytes(bytes, path.display().to_string(), policy)
            .await
    }

    /// Compiles (or takes from the cache), links, describes and self-tests a component
    /// given as bytes; `source` names where the bytes came from.
    pub async fn load_bytes(
        &self,
        bytes: Vec<u8>,
        source: String,
        policy: Arc<SandboxPolicy>,
    ) -> Result<Adapter, LoadError> {
        let started = Instant::now();
        let digest = digest_of(&bytes);
        let (component, from_cache) = self.compile(bytes, &digest).await?;
        self.load_compiled(component, digest, source, policy, started, from_cache)
            .await
    }

    /// Compiles a component (or takes it from the cache), off the async workers:
    /// compiling takes milliseconds to seconds. Also whether it was a cache hit.
    pub async fn compile(
        &self,
        bytes: Vec<u8>,
        digest: &str,
    ) -> Result<(Component, bool), LoadError> {
        let engine = self.engine.clone();
        let cache = self.cache.clone();
        let key = digest.to_string();
        tokio::task::spawn_blocking(move || match cache {
            Some(cache) => cache.load_or_compile(&engine, &key, &bytes),
            None => Component::new(&engine, &bytes).map(|c| (c, false)),
        })
        .await
        .map_err(|e| LoadError::Compile(wasmtime::Error::msg(e.to_string())))?
        .map_err(LoadError::Compile)
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The outbound client every task of this runtime sends through.
    pub fn outbound(&self) -> &Arc<OutboundHttp> {
        &self.outbound
    }

    /// Links, describes and self-tests a compiled component (`started`: when loading
    /// began, for the load time).
    pub async fn load_compiled(
        &self,
        component: Component,
        digest: String,
        source: String,
        policy: Arc<SandboxPolicy>,
        started: Instant,
        from_cache: bool,
    ) -> Result<Adapter, LoadError> {
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(AgentBackendPre::new)
            .map_err(LoadError::Link)?;
        let mut store = self.new_store(
            "(loading)".into(),
            policy.clone(),
            Instant::now() + DESCRIBE_BUDGET,
            None,
            TaskInteraction::default(),
        );
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::Describe(RunError::Instantiate(format!("{e:#}"))))?;
        let info = instance
            .call_describe(&mut store)
            .await
            .map_err(|e| LoadError::Describe(classify_trap(e, &store)))?;
        validate_info(&info)?;
        drop(store);
        let imports = |interface: &str| {
            component
                .component_type()
                .imports(&self.engine)
                .any(|(name, _)| name.starts_with(interface))
        };
        let reports_progress = imports(PROGRESS_INTERFACE);
        let supports_interaction = imports(INTERACTION_INTERFACE);
        let metric_attributes = MetricAttributes::of(&info);
        if self.self_test {
            self.self_test(&pre, &info, &policy).await?;
        }
        Ok(Adapter {
            info,
            digest,
            source,
            loaded_at: SystemTime::now(),
            load_time: started.elapsed(),
            from_cache,
            task_slots: Arc::new(tokio::sync::Semaphore::new(policy.max_concurrent_tasks)),
            policy,
            reports_progress,
            supports_interaction,
            metric_attributes,
            tasks_started: AtomicU64::new(0),
            pre,
        })
    }

    /// Runs one synthetic task with every outbound request denied (nothing leaves the
    /// host). An answer or a typed error passes; a trap or a hang rejects the adapter.
    async fn self_test(
        &self,
        pre: &AgentBackendPre<AdapterCtx>,
        info: &AdapterInfo,
        policy: &SandboxPolicy,
    ) -> Result<(), LoadError> {
        let offline = SandboxPolicy {
            outbound: Arc::new(OutboundPolicy::allow_only([])),
            env: policy.env.clone(),
            source: policy.source.clone(),
            digest: policy.digest.clone(),
            ..*policy
        };
        let mut store = self.new_store(
            info.name.as_str().into(),
            Arc::new(offline),
            Instant::now() + SELF_TEST_BUDGET,
            None,
            TaskInteraction::default(),
        );
        let task = Task {
            goal: "agent-federation self-test".into(),
            context: String::new(),
            input_data: "{}".into(),
            federation_session_id: "agent-federation-self-test".into(),
            request_id: "agent-federation-self-test".into(),
            metadata: vec![],
            wrapper_url: "http://self-test.invalid".into(),
            deadline_ms: Some(SELF_TEST_BUDGET.as_millis() as u64),
        };
        let instance = pre
            .instantiate_async(&mut store)
            .await
            .map_err(|e| LoadError::SelfTest(RunError::Instantiate(format!("{e:#}"))))?;
        match instance.call_run_task(&mut store, &task).await {
            Ok(_) => Ok(()),
            Err(trap) => Err(LoadError::SelfTest(classify_trap(trap, &store))),
        }
    }

    /// Runs `task` on a fresh instance of `adapter`; the task must end by `deadline`.
    /// Returns what the task used whether it succeeded or not.
    pub async fn run(
        &self,
        adapter: &Adapter,
        task: Task,
        deadline: Instant,
    ) -> (Result<RunOutcome, RunError>, Usage) {
        self.run_watched(adapter, task, TaskInteraction::default(), deadline, None)
            .await
    }

    /// [`run`](Self::run), with the caller's agent and resume answer for the
    /// `interaction` import, and the adapter's progress events sent to `progress` when
    /// someone watches the task.
    pub async fn run_watched(
        &self,
        adapter: &Adapter,
        task: Task,
        interaction: TaskInteraction,
        deadline: Instant,
        progress: Option<ProgressSink>,
    ) -> (Result<RunOutcome, RunError>, Usage) {
        let started = Instant::now();
        adapter.tasks_started.fetch_add(1, Ordering::Relaxed);
        let mut store = self.new_store(
            adapter.info.name.as_str().into(),
            adapter.policy.clone(),
            deadline,
            progress,
            interaction,
        );
        let instance = match adapter.pre.instantiate_async(&mut store).await {
            Ok(instance) => instance,
            Err(e) => {
                let error = RunError::Instantiate(format!("{e:#}"));
                return (Err(error), store.data().usage());
            }
        };
        let instantiated = Instant::now();
        let result = instance.call_run_task(&mut store, &task).await;
        let call_time = instantiated.elapsed();
        store.data().flush_stdio();
        let usage = store.data().usage();
        let result = match result {
            Ok(Ok(response)) => Ok(RunOutcome {
                response,
                interrupt: store.data().interrupt(),
                instantiate_time: instantiated - started,
                call_time,
                usage,
            }),
            Ok(Err(error)) => {
                let reported = store.data_mut().take_upstream_report();
                Err(RunError::Adapter(AdapterFailure::of(error, reported)))
            }
            Err(trap) => Err(classify_trap(trap, &store)),
        };
        (result, usage)
    }

    /// A store for one task of `adapter`, set up as [`run`](Self::run) sets one up
    /// (for benchmarks that time the parts of a run).
    pub fn store(&self, adapter: &Adapter, deadline: Instant) -> Store<AdapterCtx> {
        self.new_store(
            adapter.info.name.as_str().into(),
            adapter.policy.clone(),
            deadline,
            None,
            TaskInteraction::default(),
        )
    }

    fn new_store(
        &self,
        adapter: Arc<str>,
        policy: Arc<SandboxPolicy>,
        deadline: Instant,
        progress: Option<ProgressSink>,
        interaction: TaskInteraction,
    ) -> Store<AdapterCtx> {
        let ctx = AdapterCtx::new(
            adapter,
            self.outbound.clone(),
            policy,
            deadline,
            progress,
            interaction,
        );
        let mut store = Store::new(&self.engine, ctx);
        store.limiter(|ctx| ctx.limiter());
        // Each epoch tick while the guest runs: count it against the CPU budget, check
        // the deadline, and yield to the scheduler so a spinning guest never starves
        // other tasks on the same worker thread. Ticks pass only while guest code runs,
        // so waiting on outbound calls costs no CPU budget.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|mut ctx| {
            let ctx = ctx.data_mut();
            ctx.cpu_time += EPOCH_TICK;
            if Instant::now() >= ctx.deadline {
                Err(wasmtime::Error::new(DeadlineReached))
            } else if ctx.cpu_time > ctx.policy().cpu_budget {
                Err(wasmtime::Error::new(CpuBudgetUsed))
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
    if error.downcast_ref::<CpuBudgetUsed>().is_some() {
        return RunError::CpuBudget(store.data().policy().cpu_budget);
    }
    if let Some(limit) = error.downcast_ref::<MemoryLimitReached>() {
        return RunError::MemoryLimit(limit.to_string());
    }
    // The wasm backtrace goes to the log; the caller gets the trap and the guest's
    // own words (a Rust panic message lands on stderr).
    tracing::warn!(error = format!("{error:?}"), "adapter trapped");
    let reason = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    let stderr = store.data().stderr();
    let message = match stderr.lines().find(|line| !line.trim().is_empty()) {
        Some(_) => format!(
            "{reason}; guest stderr: {}",
            crate::log::truncate(&stderr, 1024)
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
