//! How the client commands print what the host answered: task results, streamed
//! events and errors (with their `google.rpc` details), as text or as JSON.

use tonic_types::{ErrorDetails, RpcStatusExt, StatusExt};

use super::exit;
use federation_host::code_name;
use federation_proto::json::{struct_to_json, value_to_json};
use federation_proto::{TaskResponse, task_event, task_progress, task_response};

/// Prints `value` as pretty JSON on stdout.
pub(super) fn print_json(value: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

/// The name of a progress event's kind, as printed.
pub(super) fn progress_kind(kind: i32) -> &'static str {
    match task_progress::Kind::try_from(kind) {
        Ok(task_progress::Kind::Step) => "step",
        Ok(task_progress::Kind::LlmCall) => "llm_call",
        Ok(task_progress::Kind::ToolCall) => "tool_call",
        Ok(task_progress::Kind::CheckpointSaved) => "checkpoint",
        _ => "progress",
    }
}

/// One streamed event as a JSON object (`--stream --json`).
pub(super) fn event_json(seq: u64, trace_id: &str, event: &task_event::Event) -> serde_json::Value {
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

/// A `Struct` as a JSON object (empty when absent).
pub(super) fn struct_json(value: Option<&prost_types::Struct>) -> serde_json::Value {
    let map = value.map(struct_to_json).transpose().ok().flatten();
    serde_json::Value::Object(map.unwrap_or_default())
}

/// A `Value` as JSON (null when absent).
pub(super) fn value_json(value: Option<&prost_types::Value>) -> serde_json::Value {
    value
        .and_then(|v| value_to_json(v).ok())
        .unwrap_or_default()
}

/// A task response's state, as printed.
fn state_name(r: &TaskResponse) -> &'static str {
    match r.state() {
        task_response::State::InputRequired => "INPUT_REQUIRED",
        _ => "COMPLETED",
    }
}

/// A task response as JSON.
pub(super) fn response_json(r: &TaskResponse) -> serde_json::Value {
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

/// Prints a task response (pretty JSON with `json`).
pub(super) fn print_response(r: TaskResponse, json: bool) -> anyhow::Result<()> {
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
pub(super) fn print_error(status: &tonic::Status, json: bool) -> i32 {
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
pub(super) fn details_of(
    code: tonic::Code,
    message: &str,
    details: &[prost_types::Any],
) -> ErrorDetails {
    tonic_types::pb::Status {
        code: code as i32,
        message: message.to_string(),
        details: details.to_vec(),
    }
    .get_error_details()
}

/// An error as JSON: code, message, reason, domain, metadata, retry delay, field
/// violations, trace id and the exit code it gives.
pub(super) fn error_json(
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
pub(super) fn print_failure(
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
