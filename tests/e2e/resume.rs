//! Sessions across calls and across wrapper restarts; the wrapper down and back.

use tonic::Code;

use crate::{call, processes::Stack, request, result_json};

fn history_len(response: &federation_proto::TaskResponse) -> usize {
    result_json(response)["history"]
        .as_array()
        .map_or(0, Vec::len)
}

#[tokio::test]
async fn second_call_resumes_and_state_survives_a_wrapper_crash() {
    let mut stack = Stack::start().await;
    for backend in ["crewai", "langgraph"] {
        let session = format!("e2e-resume-{backend}");
        let first = call(&stack, request(backend, "Draft a plan", &session), None)
            .await
            .unwrap();
        assert!(!first.resumed, "{backend}: a new session does not resume");
        assert_eq!(history_len(&first), 1);

        let second = call(&stack, request(backend, "Refine the plan", &session), None)
            .await
            .unwrap();
        assert!(second.resumed, "{backend}: same session resumes");
        let result = result_json(&second);
        assert_eq!(history_len(&second), 2, "{result}");
        assert_eq!(result["history"][0]["goal"], "Draft a plan");

        // A crash (SIGKILL) and restart of the wrapper loses nothing stored.
        stack.kill_wrapper();
        stack.restart_wrapper();
        let third = call(&stack, request(backend, "Finish the plan", &session), None)
            .await
            .unwrap();
        assert!(third.resumed);
        let result = result_json(&third);
        assert_eq!(history_len(&third), 3, "{result}");
        assert_eq!(result["history"][1]["goal"], "Refine the plan");
    }
}

#[tokio::test]
async fn wrapper_down_is_unavailable_and_the_host_recovers() {
    let mut stack = Stack::start().await;
    stack.kill_wrapper();
    let status = call(&stack, request("crewai", "Anyone there?", "e2e-down"), None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    stack.restart_wrapper();
    let response = call(&stack, request("crewai", "Anyone there?", "e2e-down"), None)
        .await
        .expect("the host serves again once the wrapper is back");
    assert!(!response.output.is_empty());
    assert!(!response.resumed, "the failed call stored nothing");
}
