//! The A2A door (`--a2a-listen`) with the official A2A client (PyPI `a2a-sdk` 1.3, the
//! A2A 1.0 SDK): the real host binary, authenticated by an auth file of two principals,
//! in front of the stub wrapper, driven by `a2a_client.py` (card, send, stream,
//! input-required → answer → completed, cancel, subscribe after a cut stream, unknown
//! tasks, a second principal refused, the caller's mistakes). This side checks what
//! the client cannot see: a repeated message ran once, and the caller's trace went on
//! through the host to the wrapper.

mod support;

use std::{path::PathBuf, process::Command, time::Duration};

use support::{HostProcess, start_stub_and_sink, uuid_like};

const ALICE: &str = "alice-a2a-token-0123456789";
const BOB: &str = "bob-a2a-token-0123456789";

/// The a2a-sdk venv (`A2A_CLIENT_VENV`, else made by scripts/a2a-client-venv.sh).
fn client_python() -> PathBuf {
    let venv = std::env::var("A2A_CLIENT_VENV").unwrap_or_else(|_| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/a2a-client-venv.sh");
        let output = Command::new("bash")
            .arg(script)
            .output()
            .expect("running a2a-client-venv.sh");
        assert!(
            output.status.success(),
            "installing a2a-sdk failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    });
    PathBuf::from(venv).join("bin/python")
}

fn auth_file() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("a2a-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("auth.toml");
    let text = format!(
        "[[principal]]\nname = \"alice\"\ntoken = [\"{ALICE}\"]\n\n\
         [[principal]]\nname = \"bob\"\ntoken = [\"{BOB}\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_a2a_client_runs_federated_agents() {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let auth = auth_file();
    let mut host = HostProcess::start(
        &stub_url,
        &sink.grpc_endpoint(),
        &[
            "--auth-file",
            auth.to_str().unwrap(),
            "--a2a-listen",
            "127.0.0.1:0",
        ],
    );
    let line = host.stdout_line();
    let a2a = line
        .strip_prefix("agent-federation a2a listening on ")
        .unwrap_or_else(|| panic!("no A2A address line, got {line:?}"))
        .to_string();

    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("host/a2a_client.py");
    let python = client_python();
    let base = format!("http://{a2a}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([&base, ALICE, BOB, &traceparent])
            .output()
            .expect("running a2a_client.py")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "a2a_client.py failed:\n{stdout}\n{}\n---- host log ----\n{}",
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
    let summary: serde_json::Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap();

    // The message sent twice ran once.
    let request_id = summary["blocking_request_id"].as_str().unwrap();
    let runs = stub.requests_for(request_id);
    assert_eq!(runs.len(), 1, "a repeated message ran again: {runs:?}");
    // The answer to input-required resumed the session in the wrapper.
    let answer = stub.requests_for(summary["answer_request_id"].as_str().unwrap());
    assert_eq!(answer.len(), 1);
    assert_eq!(
        answer[0].body["resume"],
        serde_json::json!({"city": "Porto"})
    );
    assert_eq!(answer[0].header("x-federation-principal"), Some("alice"));

    // One trace: the caller's traceparent, through the host, to the wrapper.
    assert_eq!(summary["trace_id"], trace_id);
    let sent = runs[0]
        .header("traceparent")
        .expect("a traceparent to the wrapper");
    assert_eq!(sent.split('-').nth(1), Some(trace_id), "{sent}");
    let spans = sink
        .wait_for(Duration::from_secs(30), |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && s.name.starts_with("a2a "))
                && spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.name.starts_with("adapter "))
        })
        .await
        .unwrap_or_else(|e| panic!("the host's spans did not join the caller's trace: {e}"));
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == trace_id && s.name == "a2a SendMessage" && s.kind == "server"),
        "{}",
        sink.render_tree(trace_id)
    );
}
