//! The MCP door (`--mcp-listen`) with the official MCP client (PyPI `mcp` 2.3, the MCP
//! Python SDK): the real host binary, authenticated by an auth file of two principals,
//! in front of the stub wrapper, driven by `mcp_client.py` (tools listed, a call with
//! progress notifications, an interrupt then a resume that completes, a failed run as a
//! tool error with its reason, bad arguments as invalid params, an unauthenticated
//! caller refused with 401, a call given up on). This side checks what the client
//! cannot see: the answer resumed the session in the wrapper as its principal, each
//! principal ran as itself, the call given up on stopped the wrapper's run, and the
//! caller's trace went on through the host to the wrapper.

mod support;

use std::{path::PathBuf, process::Command, time::Duration};

use support::{peer, uuid_like};

const ALICE: &str = "alice-mcp-token-0123456789";
const BOB: &str = "bob-mcp-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn the_official_mcp_client_runs_federated_agents_as_tools() {
    let trace_id = "5cf92f3577b34da6a3ce929d0e0e4737";
    let peer::ClientRun {
        stub,
        sink,
        host,
        summary,
    } = peer::run_against_door("mcp", "/mcp", "mcp_client.py", ALICE, BOB, trace_id).await;

    // The answer resumed the asking session in the wrapper, as alice.
    let answers = stub.requests_with_goal("go on");
    assert_eq!(answers.len(), 1, "{answers:?}");
    assert_eq!(
        answers[0].body["resume"],
        serde_json::json!({"city": "Porto"})
    );
    assert_eq!(
        answers[0].body["federation_session_id"],
        summary["answer_session_id"]
    );
    assert_eq!(answers[0].header("x-federation-principal"), Some("alice"));
    // Each principal ran as itself.
    let bobs = stub.requests_with_goal("as bob");
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].header("x-federation-principal"), Some("bob"));

    // The call the client gave up on (notifications/cancelled) stopped the wrapper's run.
    let slow = stub.requests_with_goal("stream-slow:400");
    assert_eq!(slow.len(), 1, "{slow:?}");
    let cancel_path = format!(
        "/v1/sessions/{}/runs/{}/cancel",
        slow[0].body["federation_session_id"].as_str().unwrap(),
        slow[0].body["request_id"].as_str().unwrap()
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stub.requests_to(&cancel_path).is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the host never cancelled the wrapper's run of a cancelled call\n{}",
            host.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // One trace: the caller's traceparent, through the host, to the wrapper.
    assert_eq!(summary["trace_id"], trace_id);
    let traced = stub.requests_with_goal("Summarise WASM sandboxing");
    assert_eq!(
        traced.len(),
        1,
        "a tool call ran more than once: {traced:?}"
    );
    peer::assert_trace_joined(
        &sink,
        trace_id,
        traced[0].header("traceparent"),
        |name| name == "mcp tools/call",
        "mcp tools/call",
    )
    .await;
}

#[test]
fn a_tls_host_refuses_to_serve_mcp_in_the_clear() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("mcp-tls-{}", uuid_like()));
    let made = Command::new(federation_testkit::process::host_bin())
        .arg("dev-certs")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(made.status.success());
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let output = Command::new(federation_testkit::process::host_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--mcp-listen",
            "127.0.0.1:0",
        ])
        .args([
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server-key.pem"),
        ])
        .args(["--auth-file", &file("auth.toml"), "--adapters-dir"])
        .arg(&dir)
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(
        stderr.contains("--mcp-listen does not serve TLS yet"),
        "{stderr}"
    );
}
