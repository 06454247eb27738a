//! The client subcommands as a user runs them: exit codes derived from the gRPC status,
//! the error's reason and retry delay printed, `start`/`get`/`cancel`, input from
//! `@FILE` or standard input, `--json` everywhere (README: "Exit codes").

mod support;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{env, stub_wrapper, unused_url};

/// Runs `agent-federation ARGS` (with `--addr` of the shared host after the
/// subcommand), feeding `stdin`.
async fn cli(args: &[&str], stdin: Option<&str>) -> Output {
    let endpoint = env().host.endpoint();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.map(str::to_string);
    tokio::task::spawn_blocking(move || {
        let mut command = Command::new(federation_testkit::process::host_bin());
        command.arg(&args[0]).args(["--addr", &endpoint]);
        let mut child = command
            .args(&args[1..])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
        drop(input);
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

fn code(output: &Output) -> i32 {
    output.status.code().expect("exited")
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\n{}",
            String::from_utf8_lossy(&output.stdout),
            stderr(output)
        )
    })
}

#[tokio::test]
async fn exit_codes_follow_the_grpc_status_class() {
    let call = |backend: &'static str, goal: &'static str| async move {
        cli(&["call", "--backend", backend, "--goal", goal], None).await
    };
    let ok = call("crewai", "cli ok").await;
    assert_eq!(code(&ok), 0, "{}", stderr(&ok));
    for (backend, goal, exit, reason) in [
        ("crewai", "", 3, "INVALID_INPUT"),
        ("autogen", "x", 4, "BACKEND_NOT_FOUND"),
        ("crewai", "wrapper-error:session_busy", 5, "SESSION_BUSY"),
        (
            "crewai",
            "wrapper-error:input_required",
            5,
            "INPUT_REQUIRED",
        ),
        ("crewai", "wrapper-error:overloaded", 6, "OVERLOADED"),
        (
            "crewai",
            "wrapper-error:deadline_exceeded",
            7,
            "DEADLINE_EXCEEDED",
        ),
        ("crewai", "wrapper-error:canceled", 8, "CANCELED"),
        ("test-faults", "trap", 10, "ADAPTER_TRAP"),
    ] {
        let output = call(backend, goal).await;
        let printed = stderr(&output);
        assert_eq!(code(&output), exit, "{goal}: {printed}");
        assert!(printed.contains(&format!("reason: {reason}")), "{printed}");
        assert!(printed.contains("trace id: "), "{printed}");
    }
    let busy = call("crewai", "wrapper-error:session_busy").await;
    assert!(
        stderr(&busy).contains("retry after: 1000 ms"),
        "{}",
        stderr(&busy)
    );
    let overloaded = call("crewai", "wrapper-error:overloaded").await;
    let expected = format!(
        "retry after: {} ms",
        stub_wrapper::OVERLOADED_RETRY_AFTER_SECS * 1000
    );
    assert!(
        stderr(&overloaded).contains(&expected),
        "{}",
        stderr(&overloaded)
    );
    let missing = call("crewai", "").await;
    assert!(
        stderr(&missing).contains("invalid field goal"),
        "{}",
        stderr(&missing)
    );
}

#[tokio::test]
async fn usage_errors_exit_2_and_an_unreachable_host_6() {
    let no_backend = cli(&["call", "--goal", "x"], None).await;
    assert_eq!(code(&no_backend), 2, "{}", stderr(&no_backend));
    let bad_input = cli(
        &[
            "call",
            "--backend",
            "crewai",
            "--goal",
            "x",
            "--input",
            "[1]",
        ],
        None,
    )
    .await;
    assert_eq!(code(&bad_input), 2, "{}", stderr(&bad_input));
    let two_stdins = cli(
        &[
            "call",
            "--backend",
            "crewai",
            "--goal",
            "x",
            "--input",
            "-",
            "--context",
            "-",
        ],
        Some("{}"),
    )
    .await;
    assert_eq!(code(&two_stdins), 2, "{}", stderr(&two_stdins));
    let url = unused_url();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(federation_testkit::process::host_bin())
            .args(["call", "--addr", &url, "--backend", "crewai", "--goal", "x"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert_eq!(code(&output), 6, "{}", stderr(&output));
}

#[tokio::test]
async fn json_errors_carry_the_reason_and_retry_delay() {
    let output = cli(
        &[
            "call",
            "--backend",
            "crewai",
            "--goal",
            "wrapper-error:overloaded",
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(code(&output), 6);
    let error = &json(&output)["error"];
    assert_eq!(error["code"], "UNAVAILABLE");
    assert_eq!(error["reason"], "OVERLOADED");
    assert_eq!(error["domain"], "federation.v1");
    assert_eq!(
        error["retry_after_ms"],
        stub_wrapper::OVERLOADED_RETRY_AFTER_SECS * 1000
    );
    assert_eq!(error["metadata"]["wrapper_code"], "overloaded");
    assert_eq!(error["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(error["exit_code"], 6);

    let invalid = cli(
        &["call", "--backend", "crewai", "--goal", " ", "--json"],
        None,
    )
    .await;
    assert_eq!(code(&invalid), 3);
    assert_eq!(
        json(&invalid)["error"]["field_violations"][0]["field"],
        "goal"
    );

    let health = cli(&["health", "--json"], None).await;
    assert_eq!(code(&health), 0);
    assert_eq!(json(&health)["status"], "SERVING");
    let agents = cli(&["agents", "--backend", "nope", "--json"], None).await;
    assert_eq!(code(&agents), 4);
    assert_eq!(json(&agents)["error"]["reason"], "BACKEND_NOT_FOUND");
}

#[tokio::test]
async fn input_context_and_resume_come_from_files_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let context = dir.path().join("context.txt");
    std::fs::write(&context, "context from a file").unwrap();
    let context_arg = format!("@{}", context.display());
    let output = cli(
        &[
            "call",
            "--backend",
            "crewai",
            "--goal",
            "cli stdin input",
            "--input",
            "-",
            "--context",
            &context_arg,
        ],
        Some(r#"{"topic": "from stdin"}"#),
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let sent = env().stub.requests_with_goal("cli stdin input");
    let body = sent[0].body.to_string();
    assert!(body.contains("from stdin"), "{body}");
    assert!(body.contains("context from a file"), "{body}");

    let output = cli(
        &[
            "call",
            "--backend",
            "langgraph",
            "--goal",
            "cli stdin resume",
            "--resume",
            "-",
        ],
        Some(r#"{"city": "Porto"}"#),
    )
    .await;
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let sent = env().stub.requests_with_goal("cli stdin resume");
    assert_eq!(sent[0].body["resume"], serde_json::json!({"city": "Porto"}));
}

/// Polls `get --json TASK` until the task leaves SUBMITTED/WORKING.
async fn finished(task_id: &str) -> Output {
    for _ in 0..200 {
        let output = cli(&["get", task_id, "--json"], None).await;
        let state = json(&output)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if state != "SUBMITTED" && state != "WORKING" {
            return output;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("task {task_id} did not finish");
}

#[tokio::test]
async fn start_get_and_cancel_drive_background_tasks() {
    let started = cli(
        &[
            "start",
            "--backend",
            "crewai",
            "--goal",
            "cli background",
            "--json",
        ],
        None,
    )
    .await;
    assert_eq!(code(&started), 0, "{}", stderr(&started));
    let task_id = json(&started)["task_id"].as_str().unwrap().to_string();
    let done = finished(&task_id).await;
    assert_eq!(code(&done), 0);
    let done = json(&done);
    assert_eq!(done["state"], "COMPLETED");
    assert_eq!(done["response"]["output"], "stub answer to: cli background");

    let started = cli(
        &[
            "start",
            "--backend",
            "crewai",
            "--goal",
            "wrapper-error:run_superseded",
            "--json",
        ],
        None,
    )
    .await;
    let task_id = json(&started)["task_id"].as_str().unwrap().to_string();
    let failed = finished(&task_id).await;
    assert_eq!(
        code(&failed),
        5,
        "{}",
        String::from_utf8_lossy(&failed.stdout)
    );
    assert_eq!(json(&failed)["state"], "FAILED");
    assert_eq!(json(&failed)["error"]["code"], "ABORTED");
    // The failed task's status carries the error's details, as a unary error would.
    assert_eq!(json(&failed)["error"]["reason"], "RUN_SUPERSEDED");
    assert_eq!(json(&failed)["error"]["domain"], "federation.v1");
    assert_eq!(
        json(&failed)["error"]["metadata"]["request_id"],
        task_id.split_once('/').unwrap().1
    );

    let started = cli(
        &[
            "start",
            "--backend",
            "crewai",
            "--goal",
            stub_wrapper::HOLD_GOAL,
        ],
        None,
    )
    .await;
    assert_eq!(code(&started), 0, "{}", stderr(&started));
    let printed = String::from_utf8_lossy(&started.stdout).into_owned();
    let task_id = printed
        .lines()
        .find_map(|l| l.strip_prefix("task id:"))
        .expect("a task id line")
        .trim()
        .to_string();
    let canceled = cli(&["cancel", &task_id, "--json"], None).await;
    env().stub.release();
    assert_eq!(
        code(&canceled),
        8,
        "{}",
        String::from_utf8_lossy(&canceled.stdout)
    );
    assert_eq!(json(&canceled)["state"], "CANCELED");

    let unknown = cli(&["get", "no-such-session/no-such-request"], None).await;
    assert_eq!(code(&unknown), 4, "{}", stderr(&unknown));
    assert!(
        stderr(&unknown).contains("reason: RUN_NOT_FOUND"),
        "{}",
        stderr(&unknown)
    );
}

#[tokio::test]
async fn a_streamed_failure_shows_its_reason_and_retry_delay() {
    let session = format!("cli-stream-{}", support::uuid_like());
    let output = cli(
        &[
            "call",
            "--stream",
            "--json",
            "--backend",
            "langgraph",
            "--session",
            &session,
            "--goal",
            "wrapper-error:session_busy",
        ],
        None,
    )
    .await;
    assert_eq!(code(&output), 5, "{}", stderr(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert_eq!(last["type"], "failed", "{stdout}");
    let error = &last["data"];
    assert_eq!(error["code"], "ABORTED");
    assert_eq!(error["reason"], "SESSION_BUSY");
    assert_eq!(error["retry_after_ms"], 1000);
    assert_eq!(error["trace_id"], last["trace_id"]);
    assert_eq!(error["metadata"]["federation_session_id"], session.as_str());
}
