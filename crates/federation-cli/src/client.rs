//! The client subcommands: `call` (one task), `agents` (ListAgents), `health` (probes)
//! and `adapters` (AdminService), so a user can drive a host without grpcurl.

use anyhow::Context;
use tonic::metadata::MetadataValue;

use crate::cli::{AdaptersAction, AdaptersArgs, AgentsArgs, CallArgs, HealthArgs};
use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::json::{json_to_struct, json_to_value, struct_to_json, value_to_json};
use federation_proto::{
    AgentInfo, ListAgentsRequest, TaskRequest, TaskResponse, task_event, task_progress,
    task_response,
};

/// Sends one task; prints the result (or the gRPC error) and returns the exit code.
/// With `--stream`, prints the task's progress events as they arrive first.
pub async fn call(args: CallArgs) -> anyhow::Result<i32> {
    let input = match serde_json::from_str(&args.input).context("--input is not JSON")? {
        serde_json::Value::Object(map) => json_to_struct(map),
        _ => anyhow::bail!("--input must be a JSON object"),
    };
    let resume = args.resume.as_deref().map(resume_value).transpose()?;
    let mut client = FederationServiceClient::connect(args.host.addr.clone())
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let mut request = tonic::Request::new(TaskRequest {
        goal: args.goal,
        context: args.context,
        input_data: Some(input),
        federation_session_id: args.session,
        backend: args.backend,
        request_id: args.request_id,
        metadata: args.metadata.into_iter().collect(),
        agent: args.agent,
        resume,
    });
    request.set_timeout(std::time::Duration::from_millis(args.timeout_ms));
    if let Some(traceparent) = &args.traceparent {
        let value: MetadataValue<_> = traceparent.parse().context("--traceparent")?;
        request.metadata_mut().insert("traceparent", value);
    }
    if args.stream {
        return watch(&mut client, request, args.json).await;
    }
    match client.run_agent_task(request).await {
        Ok(response) => {
            print_response(response.into_inner(), args.json)?;
            Ok(0)
        }
        Err(status) => {
            print_error(&status);
            Ok(1)
        }
    }
}

/// `--resume`: JSON, or `@FILE` holding it.
fn resume_value(arg: &str) -> anyhow::Result<prost_types::Value> {
    let text = match arg.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => arg.to_string(),
    };
    let value = serde_json::from_str(&text).context("--resume is not JSON")?;
    Ok(json_to_value(value))
}

/// Streams a task: each event on a line (JSON lines with `json`), then the result.
async fn watch(
    client: &mut FederationServiceClient<tonic::transport::Channel>,
    request: tonic::Request<TaskRequest>,
    json: bool,
) -> anyhow::Result<i32> {
    let mut events = match client.stream_agent_task(request).await {
        Ok(stream) => stream.into_inner(),
        Err(status) => {
            print_error(&status);
            return Ok(1);
        }
    };
    let mut code = 1;
    loop {
        let event = match events.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(status) => {
                print_error(&status);
                return Ok(1);
            }
        };
        let Some(kind) = event.event else { continue };
        if json {
            println!(
                "{}",
                serde_json::to_string(&event_json(event.seq, &event.trace_id, &kind))?
            );
            code = i32::from(!matches!(
                kind,
                task_event::Event::Completed(_) | task_event::Event::InputRequired(_)
            ));
            continue;
        }
        match kind {
            task_event::Event::Started(s) => println!(
                "#{:<3} started    {} {} (sha256 {:.12}), trace id {}",
                event.seq, s.backend, s.adapter_version, s.adapter_digest, event.trace_id
            ),
            task_event::Event::Progress(p) => println!(
                "#{:<3} {:<10} {}",
                event.seq,
                progress_kind(p.kind),
                p.message
            ),
            task_event::Event::Completed(response) => {
                println!("#{:<3} completed", event.seq);
                print_response(response, false)?;
                code = 0;
            }
            task_event::Event::InputRequired(response) => {
                println!("#{:<3} input required", event.seq);
                print_response(response, false)?;
                code = 0;
            }
            task_event::Event::Failed(f) => {
                println!("#{:<3} failed", event.seq);
                eprintln!("error: {:?}: {}", tonic::Code::from(f.code), f.message);
                eprintln!("trace id: {}", event.trace_id);
            }
        }
    }
    Ok(code)
}

fn progress_kind(kind: i32) -> &'static str {
    match task_progress::Kind::try_from(kind) {
        Ok(task_progress::Kind::Step) => "step",
        Ok(task_progress::Kind::LlmCall) => "llm_call",
        Ok(task_progress::Kind::ToolCall) => "tool_call",
        Ok(task_progress::Kind::CheckpointSaved) => "checkpoint",
        _ => "progress",
    }
}

/// One streamed event as a JSON object (`--stream --json`).
fn event_json(seq: u64, trace_id: &str, event: &task_event::Event) -> serde_json::Value {
    use serde_json::json;
    let (kind, data) = match event {
        task_event::Event::Started(s) => (
            "started",
            json!({"backend": s.backend, "adapter_version": s.adapter_version,
                   "adapter_digest": s.adapter_digest, "progress_events": s.progress_events,
                   "federation_session_id": s.federation_session_id, "request_id": s.request_id}),
        ),
        task_event::Event::Progress(p) => (
            progress_kind(p.kind),
            json!({"message": p.message, "data": struct_json(p.data.as_ref())}),
        ),
        task_event::Event::Completed(r) => ("completed", response_json(r)),
        task_event::Event::InputRequired(r) => ("input_required", response_json(r)),
        task_event::Event::Failed(f) => (
            "failed",
            json!({"code": format!("{:?}", tonic::Code::from(f.code)), "message": f.message}),
        ),
    };
    json!({"seq": seq, "trace_id": trace_id, "type": kind, "data": data})
}

fn struct_json(value: Option<&prost_types::Struct>) -> serde_json::Value {
    let map = value.map(struct_to_json).transpose().ok().flatten();
    serde_json::Value::Object(map.unwrap_or_default())
}

fn value_json(value: Option<&prost_types::Value>) -> serde_json::Value {
    value
        .and_then(|v| value_to_json(v).ok())
        .unwrap_or_default()
}

fn state_name(r: &TaskResponse) -> &'static str {
    match r.state() {
        task_response::State::InputRequired => "INPUT_REQUIRED",
        _ => "COMPLETED",
    }
}

fn response_json(r: &TaskResponse) -> serde_json::Value {
    let timing = r.timing.unwrap_or_default();
    serde_json::json!({
        "state": state_name(r),
        "interrupt": value_json(r.interrupt.as_ref()),
        "agent": r.agent,
        "output": r.output,
        "trace_id": r.trace_id,
        "federation_session_id": r.federation_session_id,
        "request_id": r.request_id,
        "backend": r.backend,
        "adapter_version": r.adapter_version,
        "adapter_digest": r.adapter_digest,
        "resumed": r.resumed,
        "timing_us": {
            "total": timing.total_us,
            "instantiate": timing.instantiate_us,
            "adapter": timing.adapter_us,
            "outbound": timing.outbound_us,
        },
        "result": struct_json(r.result.as_ref()),
    })
}

fn print_response(r: TaskResponse, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(&response_json(&r))?);
        return Ok(());
    }
    println!(
        "backend:    {} {} (sha256 {:.12})",
        r.backend, r.adapter_version, r.adapter_digest
    );
    if !r.agent.is_empty() {
        println!("agent:      {}", r.agent);
    }
    println!(
        "session:    {}  resumed: {}",
        r.federation_session_id, r.resumed
    );
    println!("trace id:   {}", r.trace_id);
    if let Some(t) = r.timing {
        println!(
            "timing:     total {} µs, instantiate {} µs, adapter {} µs, outbound {} µs",
            t.total_us, t.instantiate_us, t.adapter_us, t.outbound_us
        );
    }
    println!("state:      {}", state_name(&r));
    if r.state() == task_response::State::InputRequired {
        let question = value_json(r.interrupt.as_ref());
        println!("interrupt:\n{}", serde_json::to_string_pretty(&question)?);
        println!(
            "answer with: --session {} --resume JSON (or @FILE)",
            r.federation_session_id
        );
    }
    println!("output:\n{}", r.output);
    Ok(())
}

fn print_error(status: &tonic::Status) {
    eprintln!("error: {:?}: {}", status.code(), status.message());
    if let Some(trace) = status.metadata().get("x-trace-id") {
        eprintln!("trace id: {}", trace.to_str().unwrap_or_default());
    }
}

/// Lists the agents the host's wrapper can run; returns the exit code.
pub async fn agents(args: AgentsArgs) -> anyhow::Result<i32> {
    let mut client = FederationServiceClient::connect(args.host.addr.clone())
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let request = ListAgentsRequest {
        backend: args.backend,
    };
    let agents = match client.list_agents(request).await {
        Ok(reply) => reply.into_inner().agents,
        Err(status) => {
            print_error(&status);
            return Ok(1);
        }
    };
    if args.json {
        let agents: Vec<_> = agents.iter().map(agent_json).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "agents": agents }))?
        );
        return Ok(0);
    }
    for agent in &agents {
        let mut traits = vec![agent.framework.clone()];
        if agent.default {
            traits.push("default".into());
        }
        if agent.can_request_input {
            traits.push("asks for input".into());
        }
        println!("{} ({})", agent.name, traits.join(", "));
        if !agent.description.is_empty() {
            println!("  {}", agent.description);
        }
        let backends = match agent.backends.as_slice() {
            [] => "none loaded".to_string(),
            names => names.join(", "),
        };
        println!("  backends: {backends}");
        if !agent.tools.is_empty() {
            println!("  tools:    {}", agent.tools.join(", "));
        }
        if let Some(schema) = &agent.input_schema {
            println!("  input:    {}", struct_json(Some(schema)));
        }
    }
    if agents.is_empty() {
        println!("no agents");
    }
    Ok(0)
}

fn agent_json(agent: &AgentInfo) -> serde_json::Value {
    serde_json::json!({
        "name": agent.name,
        "framework": agent.framework,
        "description": agent.description,
        "default": agent.default,
        "can_request_input": agent.can_request_input,
        "tools": agent.tools,
        "backends": agent.backends,
        "input_schema": struct_json(agent.input_schema.as_ref()),
    })
}

/// Checks a host's health; prints the status and returns the exit code (0 = SERVING).
pub async fn health(args: HealthArgs) -> anyhow::Result<i32> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = tonic::transport::Endpoint::from_shared(args.host.addr.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    match client.check(request).await {
        Ok(reply) => {
            let status = ServingStatus::try_from(reply.into_inner().status)
                .unwrap_or(ServingStatus::Unknown);
            println!("{:?}: {}", args.service, status.as_str_name());
            Ok(if status == ServingStatus::Serving {
                0
            } else {
                1
            })
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            Ok(1)
        }
    }
}

/// Runs one AdminService action; prints the outcome and returns the exit code.
pub async fn adapters(args: AdaptersArgs) -> anyhow::Result<i32> {
    use federation_proto::admin_service_client::AdminServiceClient;
    use federation_proto::{
        ListAdaptersRequest, LoadAdapterRequest, ReloadAdaptersRequest, RollbackAdapterRequest,
    };

    let channel = tonic::transport::Endpoint::from_shared(args.host.addr.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let bearer: MetadataValue<_> = args.admin_token.bearer().parse().context("admin token")?;
    let mut client =
        AdminServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        })
        .max_encoding_message_size(usize::MAX);
    let outcome = match args.action {
        AdaptersAction::List => client.list_adapters(ListAdaptersRequest {}).await.map(|r| {
            let r = r.into_inner();
            for adapter in &r.adapters {
                print_status(adapter);
            }
            println!("rejected since start: {}", r.rejected_total);
            for rejection in &r.rejections {
                print_rejection(rejection);
            }
        }),
        AdaptersAction::Reload => client
            .reload_adapters(ReloadAdaptersRequest {})
            .await
            .map(|r| {
                let r = r.into_inner();
                for loaded in &r.loaded {
                    println!("loaded   {}", describe_version(loaded));
                }
                for name in &r.unloaded {
                    println!("unloaded {name}");
                }
                for rejection in &r.rejected {
                    print_rejection(rejection);
                }
                if r.loaded.is_empty() && r.unloaded.is_empty() && r.rejected.is_empty() {
                    println!("no changes");
                }
            }),
        AdaptersAction::Rollback { name } => client
            .rollback_adapter(RollbackAdapterRequest { name })
            .await
            .map(|r| print_status(&r.into_inner())),
        AdaptersAction::Load { file, policy } => {
            let component =
                std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
            let policy = match policy {
                Some(path) => std::fs::read_to_string(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                None => String::new(),
            };
            client
                .load_adapter(LoadAdapterRequest { component, policy })
                .await
                .map(|r| print_status(&r.into_inner()))
        }
    };
    match outcome {
        Ok(()) => Ok(0),
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            Ok(1)
        }
    }
}

fn describe_version(v: &federation_proto::AdapterVersion) -> String {
    format!(
        "{} {} sha256:{:.12} from {} ({} tasks, loaded in {} µs{})",
        v.name,
        v.version,
        v.digest,
        v.source,
        v.tasks_served,
        v.load_us,
        if v.from_cache { ", cached" } else { "" }
    )
}

fn print_status(status: &federation_proto::AdapterStatus) {
    let state = federation_proto::adapter_status::State::try_from(status.state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    println!("{} [{state}]", status.name);
    if let Some(current) = &status.current {
        println!("  current  {}", describe_version(current));
    }
    if let Some(previous) = &status.previous {
        println!("  previous {}", describe_version(previous));
    }
    if !status.last_error.is_empty() {
        println!("  last update rejected: {}", status.last_error);
    }
}

fn print_rejection(rejection: &federation_proto::Rejection) {
    println!(
        "rejected {} sha256:{:.12}: {}",
        rejection.source, rejection.digest, rejection.reason
    );
}
