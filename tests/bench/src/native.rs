//! The native baseline: the host's own service (`federation_host::serve_with`) with the
//! WebAssembly executor swapped for [`Native`], which does natively what the shipped
//! adapters do inside their sandbox: the `adapters/sdk` mapping (`federation-wire`'s
//! body and reply mapping) plus the langgraph adapter's `thread_id`, sent through the
//! host's own outbound client under the adapter's own policy. Everything else is the
//! host's: the server span continuing the caller's `traceparent`, admission,
//! validation, the deadline, the adapters loaded and named by the runtime, the
//! adapter span and metrics, the answer. The difference between the two servers is the
//! WASM hop: a store and instance per task, the task and the reply crossing the
//! component boundary, and the guest's own JSON work.
//!
//! Run as `federation-bench native-serve` with the host's `serve` flags (a process of
//! its own, like the host, so its memory and CPU are measured apart from the load
//! client's); it prints `agent-federation listening on ADDR` as the host does.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use clap::Args;
use federation_host::{Executor, ServeArgs, Telemetry};
use federation_runtime::bindings::{
    AdapterError, HttpError, Method, Request, Task, TaskResponse, UpstreamStatus,
};
use federation_runtime::outbound::OutboundHttp;
use federation_runtime::{Adapter, ProgressSink, RunError, RunOutcome, TaskInteraction, Usage};
use federation_wire::{RunRequest, TaskInput, routes};
use serde_json::Value;

/// `federation-bench native-serve`: the host's flags, plus the accept option.
#[derive(Args, Debug, Clone)]
pub struct NativeArgs {
    #[command(flatten)]
    pub serve: ServeArgs,
    /// Accept connections as a host that serves a plain `TcpListenerStream` does
    /// (Nagle on), instead of with TCP_NODELAY.
    #[arg(long)]
    pub no_nodelay: bool,
}

/// Serves the baseline until killed.
pub async fn serve(args: NativeArgs) -> anyhow::Result<()> {
    let telemetry = Telemetry::init()?;
    let listener = tokio::net::TcpListener::bind(args.serve.listen)
        .await
        .with_context(|| format!("binding {}", args.serve.listen))?;
    let result = federation_host::serve_with(
        args.serve,
        listener,
        federation_host::shutdown_signal(),
        |runtime| Arc::new(Native::new(runtime.outbound().clone())),
        !args.no_nodelay,
    )
    .await;
    telemetry.shutdown();
    result
}

/// Runs an adapter's wrapper call natively: what `adapters/sdk`'s `run_via_wrapper`
/// does inside the guest.
pub struct Native {
    outbound: Arc<OutboundHttp>,
}

impl Native {
    pub fn new(outbound: Arc<OutboundHttp>) -> Native {
        Native { outbound }
    }

    async fn run_mapping(
        &self,
        adapter: &Adapter,
        task: Task,
        asked: &TaskInteraction,
        deadline: Instant,
        usage: &mut Usage,
    ) -> Result<(TaskResponse, Option<String>), AdapterError> {
        let mut body = RunRequest::from_task(TaskInput {
            goal: &task.goal,
            context: &task.context,
            input_data: &task.input_data,
            federation_session_id: &task.federation_session_id,
            request_id: &task.request_id,
            metadata: &task.metadata,
            agent: &asked.agent,
            resume_json: asked.resume_json.as_deref(),
        })
        .map_err(|e| AdapterError::InvalidInput(e.0))?
        .into_object();
        if adapter.info.framework == "langgraph" {
            // As adapters/langgraph: one federation session, one thread.
            body.insert(
                "thread_id".into(),
                Value::String(task.federation_session_id.clone()),
            );
        }
        let request = Request {
            method: Method::Post,
            url: routes::url(&task.wrapper_url, &adapter.info.route),
            headers: vec![
                ("content-type".into(), routes::JSON.into()),
                ("accept".into(), routes::JSON.into()),
            ],
            body: serde_json::to_vec(&body)
                .map_err(|e| AdapterError::Internal(format!("encoding the payload: {e}")))?,
            timeout_ms: task
                .deadline_ms
                .map(|ms| u32::try_from(ms).unwrap_or(u32::MAX)),
        };
        let sent = Instant::now();
        usage.outbound_requests += 1;
        let response = self
            .outbound
            .send(&adapter.policy.outbound, request, deadline, None)
            .await;
        usage.outbound_time += sent.elapsed();
        let response = response.map_err(http_error)?;
        if !(200..300).contains(&response.status) {
            return Err(AdapterError::UpstreamStatus(UpstreamStatus {
                status: response.status,
                message: federation_wire::upstream_message(&response.body),
            }));
        }
        let reply = match serde_json::from_slice::<Value>(&response.body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(AdapterError::Internal(
                    "wrapper reply is not a JSON object".into(),
                ));
            }
        };
        let outcome = federation_wire::task_outcome(reply, &task.federation_session_id)
            .map_err(|e| AdapterError::Internal(e.to_string()))?;
        let response = TaskResponse {
            output: outcome.output,
            result_json: outcome.result_json,
            federation_session_id: outcome.federation_session_id,
            resumed: outcome.resumed,
        };
        Ok((response, outcome.interrupt))
    }
}

impl Executor for Native {
    async fn run(
        &self,
        adapter: &Adapter,
        task: Task,
        interaction: TaskInteraction,
        deadline: Instant,
        // A native adapter relays no progress: watchers see `started` and the result,
        // as for an adapter built before contract 0.1.1.
        _progress: Option<ProgressSink>,
    ) -> (Result<RunOutcome, RunError>, Usage) {
        let started = Instant::now();
        let mut usage = Usage::default();
        let result = self
            .run_mapping(adapter, task, &interaction, deadline, &mut usage)
            .await;
        let result = match result {
            Ok((response, interrupt)) => Ok(RunOutcome {
                response,
                interrupt,
                instantiate_time: Duration::ZERO,
                call_time: started.elapsed(),
                usage,
            }),
            Err(error) => Err(RunError::Adapter(error.into())),
        };
        (result, usage)
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
