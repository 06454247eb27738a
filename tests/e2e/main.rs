//! End to end, as real processes on loopback: the agent wrapper (uvicorn, file store,
//! offline model), the host with the real built adapters, and an OTLP receiver taking
//! OTLP/gRPC from the host and OTLP/HTTP from the wrapper. One trace must run from the
//! orchestrator's `traceparent` to the LLM spans of a real CrewAI crew and a real
//! LangGraph graph. A stream cut mid-run is rejoined on another host with no gap.

mod durable;
mod own_agents;
mod processes;
mod rejoin;
mod resume;
mod streaming;
mod task_api;
mod trace;

use std::time::Duration;

use federation_proto::{TaskRequest, TaskResponse};
use processes::Stack;

/// A W3C traceparent for a fresh orchestrator span; returns (header, trace id, span id).
pub fn orchestrator_traceparent(seed: u64) -> (String, String, String) {
    let trace_id = format!(
        "{:016x}{:016x}",
        0x0a9e_47f0_0000_0000u64 | seed,
        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    );
    let span_id = format!("{:016x}", seed.wrapping_mul(0xbf58_476d_1ce4_e5b9) | 1);
    (format!("00-{trace_id}-{span_id}-01"), trace_id, span_id)
}

pub fn request(backend: &str, goal: &str, session: &str) -> TaskRequest {
    TaskRequest {
        goal: goal.into(),
        context: "End-to-end test of agent-federation".into(),
        backend: backend.into(),
        federation_session_id: session.into(),
        ..Default::default()
    }
}

pub async fn call(
    stack: &Stack,
    request: TaskRequest,
    traceparent: Option<&str>,
) -> Result<TaskResponse, tonic::Status> {
    let mut client = stack.client().await;
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(120));
    if let Some(tp) = traceparent {
        request
            .metadata_mut()
            .insert("traceparent", tp.parse().unwrap());
    }
    client.run_agent_task(request).await.map(|r| r.into_inner())
}

pub fn result_json(response: &TaskResponse) -> serde_json::Value {
    serde_json::Value::Object(
        federation_proto::json::struct_to_json(
            response.result.as_ref().expect("structured result"),
        )
        .unwrap(),
    )
}
