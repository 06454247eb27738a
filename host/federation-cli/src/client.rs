//! The client subcommands: `call` (one task), `start`/`get`/`cancel` (background
//! tasks), `watch` (rejoin a task's events), `agents` (ListAgents), `health` (probes)
//! and `adapters` (AdminService), so a user can drive a host without grpcurl.

use anyhow::Context;
use tonic::metadata::MetadataValue;

use crate::cli::{
    AdaptersAction, AdaptersArgs, AgentsArgs, CallArgs, HealthArgs, HostAddress, StartArgs,
    TaskArgs, TaskIdArgs, WatchArgs,
};
use crate::connect::Authed;
use federation_host::code_name;
use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::json::{json_to_struct, json_to_value, struct_to_json, value_to_json};
use federation_proto::{
    AgentInfo, CancelAgentTaskRequest, GetAgentTaskRequest, ListAgentsRequest, TaskEvent,
    TaskRequest, TaskResponse, WatchAgentTaskRequest, agent_task_status, task_event, task_progress,
    task_request, task_response,
};
use tonic_types::{ErrorDetails, RpcStatusExt, StatusExt};

/// Exit codes of the client subcommands, by gRPC code class (README: "Exit codes").
pub mod exit {
    use tonic::Code;

    pub const OK: i32 = 0;
    /// Anything that is not a gRPC status: a file that cannot be read, a host that
    /// answers nonsense, a background task that failed without a code.
    pub const FAILURE: i32 = 1;
    /// A command line clap or the client refused (bad flag, --input not JSON).
    pub const USAGE: i32 = 2;
    pub const INVALID: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const CONFLICT: i32 = 5;
    pub const RETRY_LATER: i32 = 6;
    pub const DEADLINE: i32 = 7;
    pub const CANCELLED: i32 = 8;
    pub const DENIED: i32 = 9;
    pub const SERVER_FAULT: i32 = 10;

    /// The exit code of a call that ended with `code`.
    pub fn of(code: Code) -> i32 {
        match code {
            Code::Ok => OK,
            Code::InvalidArgument | Code::OutOfRange => INVALID,
            Code::NotFound => NOT_FOUND,
            Code::FailedPrecondition | Code::Aborted | Code::AlreadyExists => CONFLICT,
            Code::Unavailable | Code::ResourceExhausted => RETRY_LATER,
            Code::DeadlineExceeded => DEADLINE,
            Code::Cancelled => CANCELLED,
            Code::Unauthenticated | Code::PermissionDenied => DENIED,
            Code::Internal | Code::Unknown | Code::DataLoss | Code::Unimplemented => SERVER_FAULT,
        }
    }
}

/// A connected FederationService client, with the caller's token; a host that cannot
/// be reached is reported like an `UNAVAILABLE` answer (exit [`exit::RETRY_LATER`]).
async fn connect(host: &HostAddress) -> Result<FederationServiceClient<Authed>, i32> {
    match host.connect().await {
        Ok(channel) => Ok(FederationServiceClient::new(channel)),
        Err(e) => {
            eprintln!(
                "error: UNAVAILABLE: connecting to {}: {}",
                host.addr,
                error_chain(&e)
            );
            Err(exit::RETRY_LATER)
        }
    }
}

/// An error with its causes (tonic's transport errors hide the TLS reason in them).
fn error_chain(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}

/// Builds the task of `call`/`start`; `Err` is a usage error already printed.
fn task_request(args: TaskArgs) -> Result<tonic::Request<TaskRequest>, i32> {
    let usage = |e: anyhow::Error| {
        eprintln!("error: {e:#}");
        exit::USAGE
    };
    let stdin_flags = [Some(&args.input), Some(&args.context), args.resume.as_ref()]
        .into_iter()
        .flatten()
        .filter(|v| v.as_str() == "-")
        .count();
    if stdin_flags > 1 {
        return Err(usage(anyhow::anyhow!(
            "only one of --input, --context and --resume can read standard input (-)"
        )));
    }
    let input = read_arg("--input", &args.input).map_err(usage)?;
    let input = match serde_json::from_str(&input)
        .context("--input is not JSON")
        .map_err(usage)?
    {
        serde_json::Value::Object(map) => json_to_struct(map),
        _ => return Err(usage(anyhow::anyhow!("--input must be a JSON object"))),
    };
    let context = read_arg("--context", &args.context).map_err(usage)?;
    let resume = args
        .resume
        .as_deref()
        .map(resume_value)
        .transpose()
        .map_err(usage)?;
    let mut request = tonic::Request::new(TaskRequest {
        goal: args.goal,
        context,
        input_data: Some(input),
        federation_session_id: args.session,
        backend: args.backend,
        request_id: args.request_id,
        metadata: args.metadata.into_iter().collect(),
        agent: args.agent,
        resume,
        on_disconnect: task_request::OnDisconnect::Cancel as i32,
    });
    request.set_timeout(std::time::Duration::from_millis(args.timeout_ms));
    if let Some(traceparent) = &args.traceparent {
        let value: MetadataValue<_> = traceparent
            .parse()
            .context("--traceparent")
            .map_err(usage)?;
        request.metadata_mut().insert("traceparent", value);
    }
    Ok(request)
}

/// A flag's value as given, from `@FILE`, or from standard input for `-`.
fn read_arg(flag: &str, value: &str) -> anyhow::Result<String> {
    if value == "-" {
        let mut text = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
            .with_context(|| format!("{flag}: reading standard input"))?;
        return Ok(text);
    }
    match value.strip_prefix('@') {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("{flag}: reading {path}"))
        }
        None => Ok(value.to_string()),
    }
}

/// Sends one task; prints the result (or the gRPC error) and returns the exit code.
/// With `--stream`, prints the task's progress events as they arrive first.
pub async fn call(args: CallArgs) -> anyhow::Result<i32> {
    let host = args.task.host.clone();
    let request = match task_request(args.task) {
        Ok(request) => request,
        Err(code) => return Ok(code),
    };
    let mut client = match connect(&host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    if args.stream {
        let mut request = request;
        if args.keep_running {
            request
                .get_mut()
                .set_on_disconnect(task_request::OnDisconnect::Continue);
        }
        let events = match client.stream_agent_task(request).await {
            Ok(stream) => stream.into_inner(),
            Err(status) => return Ok(print_error(&status, args.json)),
        };
        return print_events(events, args.json).await;
    }
    match client.run_agent_task(request).await {
        Ok(response) => {
            print_response(response.into_inner(), args.json)?;
            Ok(exit::OK)
        }
        Err(status) => Ok(print_error(&status, args.json)),
    }
}

/// Starts a background task; prints its task id and returns the exit code.
pub async fn start(args: StartArgs) -> anyhow::Result<i32> {
    let host = args.task.host.clone();
    let request = match task_request(args.task) {
        Ok(request) => request,
        Err(code) => return Ok(code),
    };
    let mut client = match connect(&host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    match client.start_agent_task(request).await {
        Ok(reply) => {
            let r = reply.into_inner();
            if args.json {
                let json = serde_json::json!({
                    "task_id": r.task_id,
                    "federation_session_id": r.federation_session_id,
                    "request_id": r.request_id,
                    "trace_id": r.trace_id,
                });
                println!("{}", serde_json::to_string_pretty(&json)?);
            } else {
                println!("task id:    {}", r.task_id);
                println!("session:    {}", r.federation_session_id);
                println!("trace id:   {}", r.trace_id);
                println!(
                    "follow with: agent-federation get {} (or cancel it)",
                    r.task_id
                );
            }
            Ok(exit::OK)
        }
        Err(status) => Ok(print_error(&status, args.json)),
    }
}

/// `get` (GetAgentTask) or, with `cancel`, `cancel` (CancelAgentTask): prints the
/// task's status. Exit code: 0 while it runs or when it completed or asks for input;
/// a FAILED or CANCELED task exits with the code of its error.
pub async fn task_status(args: TaskIdArgs, cancel: bool) -> anyhow::Result<i32> {
    let mut client = match connect(&args.host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let reply = if cancel {
        client
            .cancel_agent_task(CancelAgentTaskRequest {
                task_id: args.task_id,
            })
            .await
    } else {
        client
            .get_agent_task(GetAgentTaskRequest {
                task_id: args.task_id,
            })
            .await
    };
    let status = match reply {
        Ok(reply) => reply.into_inner(),
        Err(status) => return Ok(print_error(&status, args.json)),
    };
    let state = status.state();
    let code = match state {
        agent_task_status::State::Failed if status.error_code == 0 => exit::FAILURE,
        agent_task_status::State::Failed => exit::of(tonic::Code::from(status.error_code)),
        agent_task_status::State::Canceled => exit::CANCELLED,
        _ => exit::OK,
    };
    if args.json {
        let json = serde_json::json!({
            "task_id": status.task_id,
            "state": state.as_str_name(),
            "trace_id": status.trace_id,
            "response": status.response.as_ref().map(response_json),
            "error": (status.error_code != 0 || !status.error_message.is_empty()).then(|| {
                let error = tonic::Code::from(status.error_code);
                let details = details_of(error, &status.error_message, &status.error_details);
                error_json(error, &status.error_message, &details, &status.trace_id)
            }),
            "exit_code": code,
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(code);
    }
    println!("task id:    {}", status.task_id);
    println!("state:      {}", state.as_str_name());
    if !status.trace_id.is_empty() {
        println!("trace id:   {}", status.trace_id);
    }
    if status.error_code != 0 || !status.error_message.is_empty() {
        println!(
            "error:      {}: {}",
            code_name(tonic::Code::from(status.error_code)),
            status.error_message
        );
        let error = tonic::Code::from(status.error_code);
        let details = details_of(error, &status.error_message, &status.error_details);
        if let Some(info) = details.error_info() {
            println!("reason:     {}", info.reason);
        }
        if let Some(delay) = details.retry_info().and_then(|r| r.retry_delay) {
            println!("retry after: {} ms", delay.as_millis());
        }
    }
    if let Some(response) = status.response {
        print_response(response, false)?;
    }
    Ok(code)
}

/// `--resume`: JSON, `@FILE` holding it, or `-` for standard input.
fn resume_value(arg: &str) -> anyhow::Result<prost_types::Value> {
    let text = read_arg("--resume", arg)?;
    let value = serde_json::from_str(&text).context("--resume is not JSON")?;
    Ok(json_to_value(value))
}

/// `watch`: rejoins a task's events after `--after` (WatchAgentTask) and prints them
/// as `call --stream` does; returns the exit code.
pub async fn watch_task(args: WatchArgs) -> anyhow::Result<i32> {
    let mut client = match connect(&args.host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let request = WatchAgentTaskRequest {
        task_id: args.task_id,
        after_seq: args.after,
    };
    match client.watch_agent_task(request).await {
        Ok(stream) => print_events(stream.into_inner(), args.json).await,
        Err(status) => Ok(print_error(&status, args.json)),
    }
}

/// Prints a task's events, each on a line (JSON lines with `json`), then the result;
/// the exit code is its last event's. A stream that breaks off says how to rejoin it.
async fn print_events(mut events: tonic::Streaming<TaskEvent>, json: bool) -> anyhow::Result<i32> {
    let mut code = exit::FAILURE;
    let (mut task_id, mut last_seq) = (String::new(), 0);
    loop {
        let event = match events.message().await {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(status) => {
                let code = print_error(&status, json);
                if !task_id.is_empty() && !json {
                    eprintln!("rejoin with: agent-federation watch {task_id} --after {last_seq}");
                }
                return Ok(code);
            }
        };
        (task_id, last_seq) = (event.task_id.clone(), event.seq);
        let Some(kind) = event.event else { continue };
        if json {
            println!(
                "{}",
                serde_json::to_string(&event_json(event.seq, &event.trace_id, &kind))?
            );
            code = match &kind {
                task_event::Event::Failed(f) => exit::of(tonic::Code::from(f.code)),
                task_event::Event::Completed(_) | task_event::Event::InputRequired(_) => exit::OK,
                _ => code,
            };
            continue;
        }
        match kind {
            task_event::Event::Started(s) => println!(
                "#{:<3} started    {} {} (sha256 {:.12}), task id {}, trace id {}",
                event.seq,
                s.backend,
                s.adapter_version,
                s.adapter_digest,
                event.task_id,
                event.trace_id
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
                let failed = tonic::Code::from(f.code);
                let details = details_of(failed, &f.message, &f.details);
                code = print_failure(failed, &f.message, &details, &event.trace_id, false);
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
        task_event::Event::Failed(f) => {
            let code = tonic::Code::from(f.code);
            let details = details_of(code, &f.message, &f.details);
            ("failed", error_json(code, &f.message, &details, trace_id))
        }
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

/// Prints a gRPC error with its reason, retry delay, field violations and trace id
/// (as JSON with `json`, on stdout), and returns its exit code.
fn print_error(status: &tonic::Status, json: bool) -> i32 {
    let trace_id = status
        .metadata()
        .get("x-trace-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let details = status.get_error_details();
    print_failure(status.code(), status.message(), &details, trace_id, json)
}

/// The `google.rpc` details a `failed` event or a task status carries, decoded as those
/// of a status would be.
fn details_of(code: tonic::Code, message: &str, details: &[prost_types::Any]) -> ErrorDetails {
    tonic_types::pb::Status {
        code: code as i32,
        message: message.to_string(),
        details: details.to_vec(),
    }
    .get_error_details()
}

/// An error as JSON: code, message, reason, domain, metadata, retry delay, field
/// violations, trace id and the exit code it gives.
fn error_json(
    code: tonic::Code,
    message: &str,
    details: &ErrorDetails,
    trace_id: &str,
) -> serde_json::Value {
    let info = details.error_info();
    let retry = details.retry_info().and_then(|r| r.retry_delay);
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    serde_json::json!({
        "code": code_name(code),
        "message": message,
        "reason": info.map(|i| i.reason.clone()),
        "domain": info.map(|i| i.domain.clone()),
        "metadata": info.map(|i| i.metadata.clone()),
        "retry_after_ms": retry.map(|d| d.as_millis() as u64),
        "field_violations": violations
            .iter()
            .map(|v| serde_json::json!({"field": v.field, "description": v.description}))
            .collect::<Vec<_>>(),
        "trace_id": trace_id,
        "exit_code": exit::of(code),
    })
}

/// Prints an error (`{"error": ...}` on stdout with `json`, else lines on stderr) and
/// returns its exit code.
fn print_failure(
    code: tonic::Code,
    message: &str,
    details: &ErrorDetails,
    trace_id: &str,
    json: bool,
) -> i32 {
    if json {
        let error = serde_json::json!({"error": error_json(code, message, details, trace_id)});
        println!(
            "{}",
            serde_json::to_string_pretty(&error).unwrap_or_default()
        );
        return exit::of(code);
    }
    eprintln!("error: {}: {}", code_name(code), message);
    if let Some(info) = details.error_info() {
        eprintln!("reason: {}", info.reason);
    }
    if let Some(bad) = details.bad_request() {
        for violation in &bad.field_violations {
            eprintln!(
                "invalid field {}: {}",
                violation.field, violation.description
            );
        }
    }
    if let Some(delay) = details.retry_info().and_then(|r| r.retry_delay) {
        eprintln!("retry after: {} ms", delay.as_millis());
    }
    if !trace_id.is_empty() {
        eprintln!("trace id: {trace_id}");
    }
    exit::of(code)
}

/// Lists the agents the host's wrapper can run; returns the exit code.
pub async fn agents(args: AgentsArgs) -> anyhow::Result<i32> {
    let mut client = match connect(&args.host).await {
        Ok(client) => client,
        Err(code) => return Ok(code),
    };
    let request = ListAgentsRequest {
        backend: args.backend,
    };
    let agents = match client.list_agents(request).await {
        Ok(reply) => reply.into_inner().agents,
        Err(status) => return Ok(print_error(&status, args.json)),
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
    // Health needs no token, but a host requiring mTLS needs the client certificate.
    let channel = match args.host.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!(
                "error: UNAVAILABLE: connecting to {}: {}",
                args.host.addr,
                error_chain(&e)
            );
            return Ok(exit::RETRY_LATER);
        }
    };
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    match client.check(request).await {
        Ok(reply) => {
            let status = ServingStatus::try_from(reply.into_inner().status)
                .unwrap_or(ServingStatus::Unknown);
            if args.json {
                let json = serde_json::json!({
                    "service": args.service,
                    "status": status.as_str_name(),
                });
                println!("{json}");
            } else {
                println!("{:?}: {}", args.service, status.as_str_name());
            }
            Ok(if status == ServingStatus::Serving {
                exit::OK
            } else {
                exit::FAILURE
            })
        }
        Err(status) => Ok(print_error(&status, args.json)),
    }
}

/// Runs one AdminService action; prints the outcome and returns the exit code.
pub async fn adapters(args: AdaptersArgs) -> anyhow::Result<i32> {
    use federation_proto::admin_service_client::AdminServiceClient;
    use federation_proto::{
        ListAdaptersRequest, LoadAdapterRequest, ReloadAdaptersRequest, RollbackAdapterRequest,
    };

    if let AdaptersAction::Push {
        file,
        reference,
        policy,
        registry,
    } = args.action
    {
        return push(file, &reference, policy, &registry, args.json).await;
    }
    let Some(token) = args.admin_token else {
        eprintln!("error: the admin token is needed (--admin-token or FEDERATION_ADMIN_TOKEN)");
        return Ok(exit::USAGE);
    };
    // The admin token, not the caller's --token, authorizes AdminService.
    let channel = args
        .host
        .endpoint()?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let bearer: MetadataValue<_> = token.bearer().parse().context("admin token")?;
    let mut client =
        AdminServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        })
        .max_encoding_message_size(usize::MAX);
    let json = args.json;
    let outcome = match args.action {
        AdaptersAction::List => client.list_adapters(ListAdaptersRequest {}).await.map(|r| {
            let r = r.into_inner();
            if json {
                print_json(&serde_json::json!({
                    "adapters": r.adapters.iter().map(status_json).collect::<Vec<_>>(),
                    "rejected_total": r.rejected_total,
                    "rejections": r.rejections.iter().map(rejection_json).collect::<Vec<_>>(),
                    "sources": r.sources.iter().map(source_json).collect::<Vec<_>>(),
                }));
                return;
            }
            for adapter in &r.adapters {
                print_status(adapter);
            }
            for source in &r.sources {
                print_source(source);
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
                if json {
                    print_json(&serde_json::json!({
                        "loaded": r.loaded.iter().map(version_json).collect::<Vec<_>>(),
                        "unloaded": r.unloaded,
                        "rejected": r.rejected.iter().map(rejection_json).collect::<Vec<_>>(),
                    }));
                    return;
                }
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
            .map(|r| print_adapter(&r.into_inner(), json)),
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
                .map(|r| print_adapter(&r.into_inner(), json))
        }
        AdaptersAction::Push { .. } => unreachable!("handled above"),
    };
    match outcome {
        Ok(()) => Ok(exit::OK),
        Err(status) => Ok(print_error(&status, json)),
    }
}

fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

fn print_adapter(status: &federation_proto::AdapterStatus, json: bool) {
    if json {
        print_json(&status_json(status));
    } else {
        print_status(status);
    }
}

fn version_json(v: &federation_proto::AdapterVersion) -> serde_json::Value {
    serde_json::json!({
        "name": v.name,
        "version": v.version,
        "digest": v.digest,
        "source": v.source,
        "tasks_served": v.tasks_served,
        "load_us": v.load_us,
        "from_cache": v.from_cache,
    })
}

fn status_json(status: &federation_proto::AdapterStatus) -> serde_json::Value {
    let state = federation_proto::adapter_status::State::try_from(status.state)
        .map(|s| s.as_str_name())
        .unwrap_or("UNKNOWN");
    serde_json::json!({
        "name": status.name,
        "state": state,
        "current": status.current.as_ref().map(version_json),
        "previous": status.previous.as_ref().map(version_json),
        "last_error": status.last_error,
        "source": status.source,
        "desired_digest": status.desired_digest,
        "serving_digest": status.current.as_ref().map(|c| c.digest.clone()),
        "converged_at": status.converged_at.as_ref().map(ToString::to_string),
    })
}

fn source_json(source: &federation_proto::AdapterSource) -> serde_json::Value {
    serde_json::json!({
        "name": source.name,
        "reference": source.reference,
        "pinned": source.pinned,
        "manifest_digest": source.manifest_digest,
        "desired_digest": source.desired_digest,
        "serving_digest": source.serving_digest,
        "converged_at": source.converged_at.as_ref().map(ToString::to_string),
        "registry_reachable": source.registry_reachable,
        "last_error": source.last_error,
        "last_poll_at": source.last_poll_at.as_ref().map(ToString::to_string),
    })
}

fn print_source(source: &federation_proto::AdapterSource) {
    let converged = match &source.converged_at {
        Some(at) => format!("converged at {at}"),
        None => "NOT converged".to_string(),
    };
    let registry = if source.registry_reachable {
        "registry up"
    } else {
        "REGISTRY UNREACHABLE"
    };
    println!(
        "source {} <- {} [{registry}]\n  desired sha256:{:.12}  serving sha256:{:.12}  {converged}",
        source.name, source.reference, source.desired_digest, source.serving_digest
    );
    if !source.last_error.is_empty() {
        println!("  last error: {}", source.last_error);
    }
}

/// `adapters push`: publishes FILE at REFERENCE; prints the digests.
async fn push(
    file: std::path::PathBuf,
    reference: &str,
    policy: Option<std::path::PathBuf>,
    registry: &federation_host::oci::RegistryArgs,
    json: bool,
) -> anyhow::Result<i32> {
    use federation_host::oci::{AdapterRef, Registry};
    let reference = match AdapterRef::parse(reference) {
        Ok(reference) if reference.pinned().is_none() => reference,
        Ok(_) => {
            eprintln!("error: push to a tag (oci://REGISTRY/REPO:TAG), not a digest");
            return Ok(exit::USAGE);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return Ok(exit::USAGE);
        }
    };
    let component = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    // A component, not a core module or anything else: `\0asm`, version 0x0d, layer 1.
    if !component.starts_with(b"\0asm\x0d\0\x01\0") {
        eprintln!("error: {} is not a WebAssembly component", file.display());
        return Ok(exit::INVALID);
    }
    let policy_path = policy.or_else(|| {
        let beside = federation_runtime::manifest_path(&file);
        beside.exists().then_some(beside)
    });
    let policy = policy_path
        .as_ref()
        .map(|path| {
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
        })
        .transpose()?;
    let client = Registry::new(registry, std::time::Duration::from_secs(30))?;
    match client.push(&reference, component, policy).await {
        Ok(pushed) => {
            if json {
                print_json(&serde_json::json!({
                    "reference": reference.to_string(),
                    "manifest_digest": pushed.manifest_digest,
                    "component_digest": pushed.component_digest,
                    "policy": policy_path.map(|p| p.display().to_string()),
                }));
            } else {
                println!(
                    "pushed {reference}\n  manifest  {}\n  component sha256:{}",
                    pushed.manifest_digest, pushed.component_digest
                );
            }
            Ok(exit::OK)
        }
        Err(e) if e.is_denied() => {
            eprintln!("error: PERMISSION_DENIED: {e:#}");
            Ok(exit::DENIED)
        }
        Err(e) => {
            eprintln!("error: UNAVAILABLE: {e:#}");
            Ok(exit::RETRY_LATER)
        }
    }
}

fn rejection_json(rejection: &federation_proto::Rejection) -> serde_json::Value {
    serde_json::json!({
        "source": rejection.source,
        "digest": rejection.digest,
        "reason": rejection.reason,
    })
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
    if !status.source.is_empty() {
        let converged = match &status.converged_at {
            Some(at) => format!("converged at {at}"),
            None => "NOT converged".to_string(),
        };
        println!(
            "  source   {} wants sha256:{:.12} ({converged})",
            status.source, status.desired_digest
        );
    }
}

fn print_rejection(rejection: &federation_proto::Rejection) {
    println!(
        "rejected {} sha256:{:.12}: {}",
        rejection.source, rejection.digest, rejection.reason
    );
}
