//! `FederationService`, one module per way to run a task: `run` (`RunAgentTask`, and
//! the admission and execution every way shares), `stream` (`StreamAgentTask`: the
//! task beside a stream of its progress), `background` (`StartAgentTask`,
//! `GetAgentTask`, `CancelAgentTask`, with this replica's `started` tasks), `watch`
//! (`WatchAgentTask`: rejoin a task's events on any replica) and `agents`
//! (`ListAgents`).
//!
//! A task is admitted (concurrency limits, validation, the adapter), then run by an
//! [`Executor`] within the caller's deadline: the WebAssembly runtime in the host. A
//! task whose caller goes away (or whose deadline passes) gets its wrapper run
//! cancelled; a run may stop to ask for input, and its task ends INPUT_REQUIRED.

mod agents;
mod background;
mod run;
mod started;
mod stream;
mod watch;

use std::{future::Future, sync::Arc, time::Duration, time::Instant};

use tokio::sync::Semaphore;
use tonic::codegen::BoxStream;
use tonic::{Request, Response, Status};

use federation_proto::federation_service_server::FederationService;
use federation_proto::{
    AgentTaskStatus, CancelAgentTaskRequest, GetAgentTaskRequest, ListAgentsRequest,
    ListAgentsResponse, StartAgentTaskResponse, TaskEvent, TaskRequest, TaskResponse,
    WatchAgentTaskRequest,
};
use federation_runtime::bindings::Task;
use federation_runtime::{
    Adapter, AdapterRegistry, AdapterRuntime, ProgressSink, RunError, RunOutcome, TaskInteraction,
    Usage,
};

use federation_runtime::outbound::{HostCredential, NetSettings};

use crate::wrapper_runs::WrapperRuns;
use started::StartedTasks;

/// What runs an admitted task on its adapter; it must end by `deadline`, send the
/// adapter's progress to `progress` when someone watches, and report what the task
/// used whether it succeeded or not. The host's executor is the WebAssembly runtime;
/// the benchmark's native baseline runs the adapter's mapping in Rust, so that the
/// two servers differ in exactly that.
pub trait Executor: Send + Sync + 'static {
    fn run(
        &self,
        adapter: &Adapter,
        task: Task,
        interaction: TaskInteraction,
        deadline: Instant,
        progress: Option<ProgressSink>,
    ) -> impl Future<Output = (Result<RunOutcome, RunError>, Usage)> + Send;
}

impl Executor for AdapterRuntime {
    fn run(
        &self,
        adapter: &Adapter,
        task: Task,
        interaction: TaskInteraction,
        deadline: Instant,
        progress: Option<ProgressSink>,
    ) -> impl Future<Output = (Result<RunOutcome, RunError>, Usage)> + Send {
        self.run_watched(adapter, task, interaction, deadline, progress)
    }
}

/// Settings the service needs per task.
#[derive(Clone, Debug)]
pub struct ServiceConfig {
    pub wrapper_url: String,
    /// Budget of a task whose caller set no deadline.
    pub default_task_timeout: Duration,
    /// Tasks allowed in flight at once; more are refused with RESOURCE_EXHAUSTED.
    pub max_concurrent_tasks: usize,
    /// Largest output + result an adapter may return, bytes.
    pub max_output_bytes: usize,
    /// Bytes the results of finished background tasks may hold together.
    pub background_results_bytes: usize,
    /// TLS roots and proxy of the host's own calls to the wrapper.
    pub net: NetSettings,
    /// Added to the host's own calls to the wrapper.
    pub wrapper_credential: Option<HostCredential>,
}

/// The service: the adapters it serves, what runs their tasks, and the tasks in flight.
pub struct Federation<E = AdapterRuntime> {
    executor: Arc<E>,
    registry: Arc<AdapterRegistry>,
    config: Arc<ServiceConfig>,
    in_flight: Arc<Semaphore>,
    runs: Arc<WrapperRuns>,
    started: Arc<StartedTasks>,
}

impl<E> Clone for Federation<E> {
    fn clone(&self) -> Self {
        Federation {
            executor: self.executor.clone(),
            registry: self.registry.clone(),
            config: self.config.clone(),
            in_flight: self.in_flight.clone(),
            runs: self.runs.clone(),
            started: self.started.clone(),
        }
    }
}

impl<E: Executor> Federation<E> {
    pub fn new(
        executor: Arc<E>,
        registry: Arc<AdapterRegistry>,
        config: ServiceConfig,
    ) -> anyhow::Result<Self> {
        let in_flight = Arc::new(Semaphore::new(config.max_concurrent_tasks));
        Ok(Federation {
            executor,
            registry,
            runs: Arc::new(WrapperRuns::new(
                &config.wrapper_url,
                &config.net,
                config.wrapper_credential.clone(),
            )?),
            started: Arc::new(StartedTasks::new(config.background_results_bytes)),
            config: Arc::new(config),
            in_flight,
        })
    }
}

/// `"<session>/<request_id>"`: both ids exclude `/`, so any replica can split it.
fn task_id(session: &str, request_id: &str) -> String {
    format!("{session}/{request_id}")
}

#[tonic::async_trait]
impl<E: Executor> FederationService for Federation<E> {
    async fn run_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<TaskResponse>, Status> {
        Federation::run_agent_task(self, request).await
    }

    async fn stream_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<BoxStream<TaskEvent>>, Status> {
        Federation::stream_agent_task(self, request).await
    }

    async fn watch_agent_task(
        &self,
        request: Request<WatchAgentTaskRequest>,
    ) -> Result<Response<BoxStream<TaskEvent>>, Status> {
        Federation::watch_agent_task(self, request).await
    }

    async fn start_agent_task(
        &self,
        request: Request<TaskRequest>,
    ) -> Result<Response<StartAgentTaskResponse>, Status> {
        Federation::start_agent_task(self, request).await
    }

    async fn get_agent_task(
        &self,
        request: Request<GetAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        Federation::get_agent_task(self, request).await
    }

    async fn cancel_agent_task(
        &self,
        request: Request<CancelAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        Federation::cancel_agent_task(self, request).await
    }

    async fn list_agents(
        &self,
        request: Request<ListAgentsRequest>,
    ) -> Result<Response<ListAgentsResponse>, Status> {
        Federation::list_agents(self, request).await
    }
}
