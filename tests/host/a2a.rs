//! The A2A door (`--a2a-listen`) with the official A2A client (PyPI `a2a-sdk` 1.3, the
//! A2A 1.0 SDK): the real host binary, authenticated by an auth file of two principals,
//! in front of the stub wrapper, driven by `a2a_client.py` (card, send, stream,
//! input-required → answer → completed, cancel, subscribe after a cut stream, unknown
//! tasks, a second principal refused, the caller's mistakes). This side checks what
//! the client cannot see: a repeated message ran once, and the caller's trace went on
//! through the host to the wrapper.

mod support;

use support::peer;

const ALICE: &str = "alice-a2a-token-0123456789";
const BOB: &str = "bob-a2a-token-0123456789";

#[tokio::test(flavor = "multi_thread")]
async fn the_official_a2a_client_runs_federated_agents() {
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let peer::ClientRun {
        stub,
        sink,
        // Kept (not `_`) so the host runs until the checks are done.
        host: _host,
        summary,
    } = peer::run_against_door("a2a", "", "a2a_client.py", ALICE, BOB, trace_id).await;

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
    peer::assert_trace_joined(
        &sink,
        trace_id,
        runs[0].header("traceparent"),
        |name| name.starts_with("a2a "),
        "a2a SendMessage",
    )
    .await;
}
