//! The task commands of FederationService: `call` (one task, optionally streamed),
//! `start`/`get`/`cancel` (background tasks) and `watch` (rejoin a task's events).

use anyhow::Context;
use tonic::metadata::MetadataValue;

use super::output::{
    details_of, error_json, event_json, print_error, print_failure, print_response, progress_kind,
    response_json,
};
use super::{connect, exit};
use crate::cli::{CallArgs, StartArgs, TaskArgs, TaskIdArgs, WatchArgs};
use federation_host::code_name;
use federation_proto::json::{json_to_struct, json_to_value};
use federation_proto::{
    CancelAgentTaskRequest, GetAgentTaskRequest, TaskEvent, TaskRequest, WatchAgentTaskRequest,
    agent_task_status, task_event, task_request,
};

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

/// `--resume`: JSON, `@FILE` holding it, or `-` for standard input.
fn resume_value(arg: &str) -> anyhow::Result<prost_types::Value> {
    let text = read_arg("--resume", arg)?;
    let value = serde_json::from_str(&text).context("--resume is not JSON")?;
    Ok(json_to_value(value))
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
