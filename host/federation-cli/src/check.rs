//! `agent-federation adapter check FILE.wasm`: a conformance report for an adapter,
//! produced by loading it exactly as the host does (same engine, linker, policy and
//! self-test) and running golden tasks against a built-in stub wrapper (the test kit's,
//! which the host's own tests use too).
//!
//! Checks: it compiles; its world (imports and exports) fits `agent-backend`;
//! `describe()` answers valid info; its policy manifest (beside the file, or
//! `--policy`) is valid; a successful wrapper reply maps to a response and the request
//! it sent has the expected shape (POST to its route, JSON body with the task's goal,
//! session and request ids, the host's `traceparent`); wrapper errors 422, 503 and 500
//! map to INVALID_ARGUMENT, UNAVAILABLE and INTERNAL; a non-JSON reply is INTERNAL; a
//! wrapper slower than the deadline ends with DEADLINE_EXCEEDED; an adapter that
//! imports `progress` maps the wrapper's NDJSON progress stream to the same response
//! when its task is watched (and the report counts the events it relayed); an adapter
//! that imports `interaction` passes a task's agent and resume answer on in the body
//! and reports the wrapper's `input_required` reply as a question for the caller.
//! Exit code 1 if any check fails.

use std::{
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use federation_testkit::stub::{Recorded, StubWrapper, interrupt_value};
use opentelemetry::trace::TraceContextExt;
use serde_json::json;
use tonic::Code;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use federation_host::TaskError;
use federation_runtime::bindings::Task;
use federation_runtime::engine::{EngineLimits, build_engine};
use federation_runtime::outbound::{Origin, OutboundHttp, OutboundLimits};
use federation_runtime::{
    Adapter, AdapterRuntime, PolicyDefaults, ProgressSink, SandboxPolicy, TaskInteraction,
    digest_of, manifest_path, parse_interrupt,
};

/// The goal of the golden task the stub answers with a reply.
const GOLDEN: &str = "golden:ok";

/// What the command was asked to check.
pub struct CheckArgs {
    pub file: PathBuf,
    /// Policy manifest; default: `FILE.toml` beside the component, if present.
    pub policy: Option<PathBuf>,
}

/// One line of the report.
struct Check {
    name: String,
    passed: bool,
    detail: String,
}

#[derive(Default)]
struct Report {
    checks: Vec<Check>,
}

impl Report {
    fn record(&mut self, name: impl Into<String>, result: Result<String, String>) -> bool {
        let passed = result.is_ok();
        let (Ok(detail) | Err(detail)) = result;
        let check = Check {
            name: name.into(),
            passed,
            detail,
        };
        println!(
            "{} {:<34} {}",
            if check.passed { "PASS" } else { "FAIL" },
            check.name,
            check.detail
        );
        self.checks.push(check);
        passed
    }

    fn exit_code(&self) -> i32 {
        let failed = self.checks.iter().filter(|c| !c.passed).count();
        println!(
            "\n{} checks, {} passed, {failed} failed",
            self.checks.len(),
            self.checks.len() - failed
        );
        i32::from(failed > 0)
    }
}

/// Runs every check and prints the report; returns the exit code.
pub async fn check(args: CheckArgs) -> anyhow::Result<i32> {
    let mut report = Report::default();
    let bytes =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    println!(
        "adapter check: {} ({} bytes, sha256 {})\n",
        args.file.display(),
        bytes.len(),
        digest_of(&bytes)
    );

    let stub = StubWrapper::start().await;
    let defaults = policy_defaults(&stub)?;
    let policy = match load_policy(&args, &defaults) {
        Ok(policy) => {
            report.record("policy manifest", Ok(policy.source.clone()));
            Arc::new(policy)
        }
        Err(error) => {
            report.record("policy manifest", Err(error));
            Arc::new(SandboxPolicy::defaults(&defaults))
        }
    };
    let runtime = check_runtime(&defaults)?;
    let Some(adapter) = load_adapter(&mut report, &runtime, bytes, &args, policy).await else {
        return Ok(report.exit_code());
    };

    golden_success(&mut report, &runtime, &adapter, &stub).await;
    if adapter.reports_progress {
        golden_watched(&mut report, &runtime, &adapter, &stub).await;
    }
    if adapter.supports_interaction {
        golden_interaction(&mut report, &runtime, &adapter, &stub).await;
    }
    golden_errors(&mut report, &runtime, &adapter, &stub).await;
    Ok(report.exit_code())
}

/// The host's default limits, with the stub as the wrapper.
fn policy_defaults(stub: &StubWrapper) -> anyhow::Result<PolicyDefaults> {
    Ok(PolicyDefaults {
        wrapper: Origin::of(&url::Url::parse(&stub.url())?).expect("stub URL is http"),
        outbound_timeout: Duration::from_secs(30),
        max_response_bytes: 8 << 20,
        max_requests_per_task: 64,
        max_concurrent_requests: 256,
        max_memory_bytes: 64 << 20,
        cpu_budget: Duration::from_secs(30),
        max_concurrent_tasks: 64,
        // No secrets directory: a manifest's value_file is reported, not read.
        secrets: Default::default(),
    })
}

/// An adapter runtime set up as the host's (engine, outbound client, self-test on).
fn check_runtime(defaults: &PolicyDefaults) -> anyhow::Result<AdapterRuntime> {
    let engine = build_engine(&EngineLimits {
        max_instances: 16,
        max_memory_bytes: defaults.max_memory_bytes,
    })?;
    let outbound = OutboundHttp::new(OutboundLimits {
        max_response_bytes: defaults.max_response_bytes,
        default_timeout: defaults.outbound_timeout,
        connect_timeout: Duration::from_secs(5),
    })?;
    AdapterRuntime::new(engine, Arc::new(outbound), None, true)
}

/// Compiles the component (printing its imports and exports), then links, describes
/// and self-tests it as the host does; None when a step failed (reported).
async fn load_adapter(
    report: &mut Report,
    runtime: &AdapterRuntime,
    bytes: Vec<u8>,
    args: &CheckArgs,
    policy: Arc<SandboxPolicy>,
) -> Option<Adapter> {
    let started = Instant::now();
    let digest = digest_of(&bytes);
    let component = match runtime.compile(bytes, &digest).await {
        Ok((component, _)) => {
            report.record(
                "compiles as a component",
                Ok(format!("{} ms", started.elapsed().as_millis())),
            );
            component
        }
        Err(error) => {
            report.record("compiles as a component", Err(error.to_string()));
            return None;
        }
    };
    let ty = component.component_type();
    let names = |items: Vec<&str>| items.join(", ");
    let imports: Vec<&str> = ty.imports(runtime.engine()).map(|(name, _)| name).collect();
    let exports: Vec<&str> = ty.exports(runtime.engine()).map(|(name, _)| name).collect();
    println!(
        "     imports: {}\n     exports: {}",
        names(imports),
        names(exports)
    );
    let source = args.file.display().to_string();
    let loaded = runtime
        .load_compiled(component, digest, source, policy, started, false)
        .await;
    let described = loaded.as_ref().map_err(ToString::to_string).map(|adapter| {
        let info = &adapter.info;
        format!(
            "{} {} (framework {}, route {})",
            info.name, info.version, info.framework, info.route
        )
    });
    report.record("fits agent-backend, describe(), self-test", described);
    loaded.ok()
}

/// Wrapper errors, a non-JSON reply and a slow wrapper map to their gRPC codes.
async fn golden_errors(
    report: &mut Report,
    runtime: &AdapterRuntime,
    adapter: &Adapter,
    stub: &StubWrapper,
) {
    for (goal, code) in [
        ("status:422", Code::InvalidArgument),
        ("status:503", Code::Unavailable),
        ("status:500", Code::Internal),
        ("notjson", Code::Internal),
    ] {
        let outcome = run(runtime, adapter, stub, goal, Duration::from_secs(10)).await;
        report.record(
            format!("maps {goal} to {code:?}"),
            expect_code(outcome, code),
        );
    }
    let outcome = run(
        runtime,
        adapter,
        stub,
        "slow:5000",
        Duration::from_millis(500),
    )
    .await;
    report.record(
        "a slow wrapper ends at the deadline",
        expect_code(outcome, Code::DeadlineExceeded),
    );
}

fn load_policy(args: &CheckArgs, defaults: &PolicyDefaults) -> Result<SandboxPolicy, String> {
    let path = args
        .policy
        .clone()
        .unwrap_or_else(|| manifest_path(&args.file));
    if !path.exists() {
        return Ok(SandboxPolicy::defaults(defaults));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    SandboxPolicy::from_manifest(&text, &path.display().to_string(), defaults)
        .map_err(|e| e.to_string())
}

/// The gRPC code a run ends with (OK on success), as the host would answer.
type Outcome = Result<String, Code>;

async fn run(
    runtime: &AdapterRuntime,
    adapter: &Adapter,
    stub: &StubWrapper,
    goal: &str,
    budget: Duration,
) -> Outcome {
    let deadline = Instant::now() + budget;
    let task = golden_task(goal, &stub.url(), budget);
    match tokio::time::timeout_at(deadline.into(), runtime.run(adapter, task, deadline)).await {
        Ok((Ok(outcome), _)) => Ok(outcome.response.output),
        Ok((Err(error), _)) => Err(TaskError::from_run(&adapter.info.name, error, budget).code()),
        Err(_) => Err(Code::DeadlineExceeded),
    }
}

fn expect_code(outcome: Outcome, want: Code) -> Result<String, String> {
    match outcome {
        Err(code) if code == want => Ok(format!("{code:?}")),
        Err(code) => Err(format!("got {code:?}")),
        Ok(output) => Err(format!("succeeded with output {output:?}")),
    }
}

async fn golden_success(
    report: &mut Report,
    runtime: &AdapterRuntime,
    adapter: &Adapter,
    stub: &StubWrapper,
) {
    let span = tracing::info_span!("adapter check");
    let trace_id = span.context().span().span_context().trace_id().to_string();
    let outcome = tracing::Instrument::instrument(
        run(runtime, adapter, stub, GOLDEN, Duration::from_secs(10)),
        span,
    )
    .await;
    let answer = format!("stub answer to: {GOLDEN}");
    let ok = report.record(
        "maps a wrapper reply to a response",
        match &outcome {
            Ok(output) if *output == answer => Ok(format!("output {answer:?}")),
            Ok(output) => Err(format!("output {output:?}, wanted the reply's `output`")),
            Err(code) => Err(format!("failed with {code:?}")),
        },
    );
    let requests = stub.take();
    let shape = match requests.as_slice() {
        [request] => request_shape(request, &adapter.info.route),
        other => Err(format!("{} requests, expected 1", other.len())),
    };
    report.record("sends the expected request", shape);
    let trace = match requests.first().and_then(|r| r.header("traceparent")) {
        Some(tp) if tp.split('-').nth(1) == Some(trace_id.as_str()) => Ok(tp.to_string()),
        Some(tp) => Err(format!(
            "traceparent {tp} is not the host's trace {trace_id}"
        )),
        None => Err("no traceparent reached the wrapper".into()),
    };
    if ok || !requests.is_empty() {
        report.record("carries the host's traceparent", trace);
    }
}

/// The golden task again, watched (as `StreamAgentTask` runs it): the stub streams
/// progress to adapters that ask for it; the result must be the same.
async fn golden_watched(
    report: &mut Report,
    runtime: &AdapterRuntime,
    adapter: &Adapter,
    stub: &StubWrapper,
) {
    let budget = Duration::from_secs(10);
    let deadline = Instant::now() + budget;
    let task = golden_task(GOLDEN, &stub.url(), budget);
    let (sink, mut events) = ProgressSink::channel();
    let run = runtime.run_watched(
        adapter,
        task,
        TaskInteraction::default(),
        deadline,
        Some(sink),
    );
    let outcome = tokio::time::timeout_at(deadline.into(), run).await;
    let mut relayed = Vec::new();
    while let Ok(stamped) = events.try_recv() {
        relayed.push(stamped.progress.message);
    }
    stub.take();
    let result = match outcome {
        Ok((Ok(outcome), _)) if outcome.response.output == format!("stub answer to: {GOLDEN}") => {
            if relayed.is_empty() {
                Ok(
                    "answered; relayed no progress (watchers see only started and the result)"
                        .into(),
                )
            } else {
                Ok(format!(
                    "{} progress events: {}",
                    relayed.len(),
                    relayed.join("; ")
                ))
            }
        }
        Ok((Ok(outcome), _)) => Err(format!(
            "output {:?}, wanted the completed event's reply",
            outcome.response.output
        )),
        Ok((Err(error), _)) => {
            let error = TaskError::from_run(&adapter.info.name, error, budget);
            Err(format!("failed with {:?}: {error}", error.code()))
        }
        Err(_) => Err("ran past its deadline".into()),
    };
    report.record("relays progress when watched", result);
}

/// A task naming an agent and resuming must carry both to the wrapper (`agent`,
/// `resume` in the body); a reply with status `input_required` must reach the host as
/// `interaction.input-required` with the reply's `interrupt`.
async fn golden_interaction(
    report: &mut Report,
    runtime: &AdapterRuntime,
    adapter: &Adapter,
    stub: &StubWrapper,
) {
    let budget = Duration::from_secs(10);
    let asked = TaskInteraction {
        agent: "golden-agent".into(),
        resume_json: Some(r#"{"answer":42}"#.into()),
        ..Default::default()
    };
    let deadline = Instant::now() + budget;
    let task = golden_task(GOLDEN, &stub.url(), budget);
    let run = runtime.run_watched(adapter, task, asked, deadline, None);
    let outcome = tokio::time::timeout_at(deadline.into(), run).await;
    let requests = stub.take();
    let result = match (outcome, requests.as_slice()) {
        (Ok((Ok(_), _)), [request]) => {
            let body = &request.body;
            if body["agent"] != "golden-agent" {
                Err(format!(
                    "body.agent is {}, expected \"golden-agent\"",
                    body["agent"]
                ))
            } else if body["resume"] != json!({"answer": 42}) {
                Err(format!(
                    "body.resume is {}, expected {{\"answer\":42}}",
                    body["resume"]
                ))
            } else {
                Ok("body.agent and body.resume as the task gave them".into())
            }
        }
        (Ok((Ok(_), _)), other) => Err(format!("{} requests, expected 1", other.len())),
        (Ok((Err(error), _)), _) => {
            let error = TaskError::from_run(&adapter.info.name, error, budget);
            Err(format!("failed with {:?}: {error}", error.code()))
        }
        (Err(_), _) => Err("ran past its deadline".into()),
    };
    report.record("passes the task's agent and resume", result);

    let deadline = Instant::now() + budget;
    let task = golden_task("interrupt", &stub.url(), budget);
    let run = runtime.run_watched(adapter, task, TaskInteraction::default(), deadline, None);
    let outcome = tokio::time::timeout_at(deadline.into(), run).await;
    stub.take();
    let result = match outcome {
        Ok((Ok(outcome), _)) => match outcome.interrupt.as_deref().map(parse_interrupt) {
            Some(Ok(value)) if value == interrupt_value() => {
                Ok("input-required with the reply's interrupt".into())
            }
            Some(Ok(value)) => Err(format!(
                "input-required with {value}, expected the reply's interrupt {}",
                interrupt_value()
            )),
            Some(Err(error)) => Err(format!("input-required, but {error}")),
            None => Err("answered without calling interaction.input-required".into()),
        },
        Ok((Err(error), _)) => {
            let error = TaskError::from_run(&adapter.info.name, error, budget);
            Err(format!("failed with {:?}: {error}", error.code()))
        }
        Err(_) => Err("ran past its deadline".into()),
    };
    report.record("asks for input on an interrupt", result);
}

fn request_shape(request: &Recorded, route: &str) -> Result<String, String> {
    if request.method != "POST" {
        return Err(format!("method {}, expected POST", request.method));
    }
    if request.path != route {
        return Err(format!("path {}, expected its route {route}", request.path));
    }
    let body = &request.body;
    let request_id = format!("adapter-check-{GOLDEN}");
    for (field, want) in [
        ("goal", GOLDEN),
        ("federation_session_id", "adapter-check-session"),
        ("request_id", request_id.as_str()),
    ] {
        if body[field] != want {
            return Err(format!(
                "body.{field} is {}, expected {want:?}",
                body[field]
            ));
        }
    }
    Ok(format!("POST {route} with goal, session and request ids"))
}

fn golden_task(goal: &str, wrapper_url: &str, budget: Duration) -> Task {
    Task {
        goal: goal.into(),
        context: "agent-federation adapter check".into(),
        input_data: r#"{"check":true}"#.into(),
        federation_session_id: "adapter-check-session".into(),
        request_id: format!("adapter-check-{goal}"),
        metadata: vec![("origin".into(), "adapter-check".into())],
        wrapper_url: wrapper_url.into(),
        deadline_ms: Some(budget.as_millis() as u64),
    }
}
