//! The native baseline: `federation.v1.FederationService/RunAgentTask` in plain Rust,
//! no WebAssembly. Everything else is the host's: the same validation
//! (`agent_federation::task::validate`), the same server span continuing the caller's
//! `traceparent`, the same concurrency limit and deadline, the same outbound client
//! (`OutboundHttp::send`: allow-list check, client span, `traceparent` injection,
//! capped body read), and the same CrewAI/LangGraph mapping the adapters do
//! (`adapters/sdk`: wrapper body, status check, reply mapping). The difference between
//! the two servers is the WASM hop: a store and instance per task, the task and the
//! reply crossing the component boundary, and the guest's own JSON work.
//!
//! Run as `federation-bench native-serve` (a process of its own, like the host, so its
//! memory and CPU are measured apart from the load client's).

use std::{
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use agent_federation::error::TaskError;
use agent_federation::server::{server_span, stamp_arrival};
use agent_federation::service::arrival_and_budget;
use agent_federation::service::current_trace_id;
use agent_federation::task::validate;
use agent_federation::telemetry::Telemetry;
use anyhow::Context;
use clap::Args;
use federation_proto::federation_service_server::{FederationService, FederationServiceServer};
use federation_proto::json::json_to_struct;
use federation_proto::{
    AgentTaskStatus, CancelAgentTaskRequest, GetAgentTaskRequest, StartAgentTaskResponse,
    TaskRequest, TaskResponse, Timing, task_response,
};
use federation_runtime::RunError;
use federation_runtime::bindings::{
    AdapterError, HttpError, Method, Request, Task, TaskResponse as AdapterResponse,
};
use federation_runtime::outbound::{Origin, OutboundHttp, OutboundLimits, OutboundPolicy};
use federation_runtime::{PolicyDefaults, SandboxPolicy};
use federation_wire::{RunRequest, TaskInput, routes};
use serde_json::Value;
use tokio::sync::Semaphore;
use tonic::{Response, Status};
use tracing::{Instrument, field::Empty};
use url::Url;

/// `federation-bench native-serve`: the baseline server's settings (the host's defaults).
#[derive(Args, Debug, Clone)]
pub struct NativeArgs {
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    #[arg(long)]
    pub wrapper_url: Url,
    #[arg(long, default_value_t = 300_000)]
    pub task_timeout_ms: u64,
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_tasks: usize,
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pub max_response_bytes: u64,
    /// Accept connections as the host does today (`TcpListenerStream`: Nagle on),
    /// instead of with TCP_NODELAY.
    #[arg(long)]
    pub no_nodelay: bool,
}

/// The accepted connections, with TCP_NODELAY unless `nodelay` is false.
fn incoming(
    listener: tokio::net::TcpListener,
    nodelay: bool,
) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(nodelay))
}

/// Serves the baseline until killed; prints `native baseline listening on ADDR`.
pub async fn serve(args: NativeArgs) -> anyhow::Result<()> {
    let telemetry = Telemetry::init()?;
    let outbound = OutboundHttp::new(OutboundLimits {
        max_response_bytes: args.max_response_bytes,
        default_timeout: Duration::from_secs(300),
        connect_timeout: Duration::from_secs(5),
    })?;
    let origin = Origin::of(&args.wrapper_url).context("wrapper URL is not http(s)")?;
    let service = Native {
        outbound: Arc::new(outbound),
        // The host's default per-adapter policy (allow-list, per-task request budget,
        // outbound concurrency), from its default flags.
        policy: SandboxPolicy::defaults(&PolicyDefaults {
            wrapper: origin,
            outbound_timeout: Duration::from_secs(300),
            max_response_bytes: args.max_response_bytes,
            max_requests_per_task: 64,
            max_concurrent_requests: 256,
            max_memory_bytes: 64 << 20,
            cpu_budget: Duration::from_secs(30),
            max_concurrent_tasks: args.max_concurrent_tasks,
        })
        .outbound,
        wrapper_url: args.wrapper_url.as_str().trim_end_matches('/').to_string(),
        default_task_timeout: Duration::from_millis(args.task_timeout_ms),
        max_concurrent_tasks: args.max_concurrent_tasks,
        in_flight: Arc::new(Semaphore::new(args.max_concurrent_tasks)),
    };
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let nodelay = !args.no_nodelay;
    println!("native baseline listening on {}", listener.local_addr()?);
    let result = tonic::transport::Server::builder()
        .trace_fn(server_span)
        .layer(tower::util::MapRequestLayer::new(stamp_arrival))
        .add_service(FederationServiceServer::new(service))
        .serve_with_incoming(incoming(listener, nodelay))
        .await;
    telemetry.shutdown();
    result.context("gRPC server failed")
}

struct Native {
    outbound: Arc<OutboundHttp>,
    policy: Arc<OutboundPolicy>,
    wrapper_url: String,
    default_task_timeout: Duration,
    max_concurrent_tasks: usize,
    in_flight: Arc<Semaphore>,
}

/// The wrapper route of a backend, as the adapters' `describe()` says.
fn route_of(backend: &str) -> Option<&'static str> {
    match backend {
        "crewai" => Some(routes::RUN_CREW),
        "langgraph" => Some(routes::RUN_GRAPH),
        _ => None,
    }
}

impl Native {
    async fn run_task(
        &self,
        request: TaskRequest,
        budget: Duration,
        received: Instant,
    ) -> Result<TaskResponse, TaskError> {
        let _permit = self
            .in_flight
            .clone()
            .try_acquire_owned()
            .map_err(|_| TaskError::Overloaded(self.max_concurrent_tasks))?;
        let deadline = received + budget;
        let valid = validate(request, &self.wrapper_url, budget)?;
        let route = route_of(&valid.backend).ok_or_else(|| TaskError::UnknownBackend {
            name: valid.backend.clone(),
            loaded: "crewai, langgraph".into(),
        })?;
        let backend = valid.backend;
        let request_id = valid.task.request_id.clone();
        let span = tracing::info_span!(
            "adapter.run_task",
            otel.name = %format!("native {backend}"),
            otel.kind = "internal",
            otel.status_code = Empty,
            error.type = Empty,
            adapter.name = %backend,
            federation.session_id = %valid.task.federation_session_id,
            federation.request_id = %request_id,
            federation.resumed = Empty,
        );
        let started = Instant::now();
        let run = self.run_mapping(&backend, route, valid.task, deadline);
        let response = match tokio::time::timeout_at(deadline.into(), run)
            .instrument(span.clone())
            .await
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                span.record("otel.status_code", "ERROR");
                return Err(TaskError::from_run(&backend, error, received.elapsed()));
            }
            Err(_) => return Err(TaskError::DeadlineExceeded(received.elapsed())),
        };
        let call_time = started.elapsed();
        span.record("federation.resumed", response.resumed);
        let result = match serde_json::from_str(&response.result_json) {
            Ok(Value::Object(map)) => map,
            _ => return Err(TaskError::Internal("result is not a JSON object".into())),
        };
        Ok(TaskResponse {
            output: response.output,
            result: Some(json_to_struct(result)),
            federation_session_id: response.federation_session_id,
            backend,
            adapter_version: "native".into(),
            adapter_digest: String::new(),
            trace_id: String::new(),
            resumed: response.resumed,
            request_id,
            timing: Some(Timing {
                total_us: micros(received.elapsed()),
                instantiate_us: 0,
                adapter_us: micros(call_time),
                outbound_us: 0,
            }),
            // The baseline runs plain tasks of the default agent, which always complete.
            state: task_response::State::Completed as i32,
            ..Default::default()
        })
    }

    /// What `adapters/sdk`'s `run_via_wrapper` does inside the guest, natively: the
    /// same body and reply mapping (`federation-wire`'s), the langgraph adapter's
    /// `thread_id`.
    async fn run_mapping(
        &self,
        backend: &str,
        route: &str,
        task: Task,
        deadline: Instant,
    ) -> Result<AdapterResponse, RunError> {
        let adapter = |error| RunError::Adapter(error);
        let mut body = RunRequest::from_task(TaskInput {
            goal: &task.goal,
            context: &task.context,
            input_data: &task.input_data,
            federation_session_id: &task.federation_session_id,
            request_id: &task.request_id,
            metadata: &task.metadata,
            agent: "",
            resume_json: None,
        })
        .map_err(|e| adapter(AdapterError::InvalidInput(e.0)))?
        .into_object();
        if backend == "langgraph" {
            body.insert(
                "thread_id".into(),
                Value::String(task.federation_session_id.clone()),
            );
        }
        let request = Request {
            method: Method::Post,
            url: routes::url(&task.wrapper_url, route),
            headers: vec![
                ("content-type".into(), routes::JSON.into()),
                ("accept".into(), routes::JSON.into()),
            ],
            body: serde_json::to_vec(&body).map_err(|e| {
                adapter(AdapterError::Internal(format!("encoding the payload: {e}")))
            })?,
            timeout_ms: task
                .deadline_ms
                .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX)),
        };
        let response = self
            .outbound
            .send(&self.policy, request, deadline)
            .await
            .map_err(|e| adapter(http_error(e)))?;
        if !(200..300).contains(&response.status) {
            return Err(adapter(AdapterError::UpstreamStatus(
                federation_runtime::bindings::UpstreamStatus {
                    status: response.status,
                    message: federation_wire::upstream_message(&response.body),
                },
            )));
        }
        let reply = match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(adapter(AdapterError::Internal(
                    "wrapper reply is not a JSON object".into(),
                )));
            }
        };
        let outcome = federation_wire::task_outcome(reply, &task.federation_session_id)
            .map_err(|e| adapter(AdapterError::Internal(e.to_string())))?;
        Ok(AdapterResponse {
            output: outcome.output,
            result_json: outcome.result_json,
            federation_session_id: outcome.federation_session_id,
            resumed: outcome.resumed,
        })
    }
}

/// As the SDK's `http_error_to_adapter_error` (the host's and the guest's bindings are
/// different types of the same WIT world, so the mapping is restated here).
fn http_error(error: HttpError) -> AdapterError {
    match error {
        HttpError::Denied(why) => AdapterError::Internal(format!("outbound call denied: {why}")),
        HttpError::InvalidRequest(why) => {
            AdapterError::Internal(format!("invalid outbound request: {why}"))
        }
        HttpError::Transport(why) => AdapterError::Transport(why),
        HttpError::Timeout(why) => AdapterError::Timeout(why),
        HttpError::TooLarge(limit) => {
            AdapterError::Internal(format!("wrapper reply exceeds the {limit}-byte cap"))
        }
    }
}

fn micros(duration: Duration) -> u64 {
    u64::try_from(duration.as_micros()).unwrap_or(u64::MAX)
}

#[tonic::async_trait]
impl FederationService for Native {
    async fn run_agent_task(
        &self,
        request: tonic::Request<TaskRequest>,
    ) -> Result<Response<TaskResponse>, Status> {
        // The host's own rules, so both targets give tasks the same budget.
        let (received, budget) = arrival_and_budget(&request, self.default_task_timeout);
        let trace_id = current_trace_id();
        let span = tracing::Span::current();
        match self.run_task(request.into_inner(), budget, received).await {
            Ok(mut response) => {
                response.trace_id = trace_id;
                span.record("rpc.grpc.status_code", 0);
                Ok(Response::new(response))
            }
            Err(error) => {
                let mut status = Status::from(error);
                tracing::warn!(code = ?status.code(), message = status.message(), "task failed");
                span.record("rpc.grpc.status_code", status.code() as i32);
                if let Ok(value) = trace_id.parse() {
                    status.metadata_mut().insert("x-trace-id", value);
                }
                Err(status)
            }
        }
    }

    // The asynchronous task API is not part of the comparison.
    async fn start_agent_task(
        &self,
        _request: tonic::Request<TaskRequest>,
    ) -> Result<Response<StartAgentTaskResponse>, Status> {
        Err(Status::unimplemented(
            "the native baseline serves RunAgentTask only",
        ))
    }

    async fn get_agent_task(
        &self,
        _request: tonic::Request<GetAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        Err(Status::unimplemented(
            "the native baseline serves RunAgentTask only",
        ))
    }

    async fn cancel_agent_task(
        &self,
        _request: tonic::Request<CancelAgentTaskRequest>,
    ) -> Result<Response<AgentTaskStatus>, Status> {
        Err(Status::unimplemented(
            "the native baseline serves RunAgentTask only",
        ))
    }
}
