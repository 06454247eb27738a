//! The stub wrapper answers in the wrapper's own contract: its replies, run records,
//! agent list and progress events read as `federation-wire`'s types, which the golden
//! test binds to the wrapper's Python models.

use federation_testkit::StubWrapper;
use federation_wire::{
    AgentList, Event, EventType, ReplyStatus, RunRecord, RunReply, RunStatus, routes,
};
use serde_json::json;

/// A response's body as `T`.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> T {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

#[tokio::test]
async fn replies_records_agents_and_events_are_the_wrappers_types() {
    let stub = StubWrapper::start().await;
    let client = reqwest::Client::new();
    let body = json!({"goal": "interrupt", "federation_session_id": "s-1", "request_id": "r-1",
                      "agent": "trip_planner", "resume": {"city": "Lyon"}});
    let reply: RunReply = client
        .post(routes::url(&stub.url(), routes::RUN_GRAPH))
        .body(body.to_string())
        .send()
        .await
        .map(read)
        .unwrap()
        .await;
    assert_eq!(reply.status, ReplyStatus::InputRequired);
    assert_eq!(reply.agent, "trip_planner");
    assert_eq!(reply.framework, "langgraph");
    assert_eq!(stub.requests_for("r-1").len(), 1);

    let record: RunRecord = client
        .get(routes::url(&stub.url(), &routes::run("s-1", "r-1")))
        .send()
        .await
        .map(read)
        .unwrap()
        .await;
    assert_eq!(record.status, RunStatus::InputRequired);
    assert_eq!(record.result.unwrap()["resume_received"]["city"], "Lyon");
    let canceled: RunRecord = client
        .post(routes::url(&stub.url(), &routes::cancel("s-1", "r-1")))
        .send()
        .await
        .map(read)
        .unwrap()
        .await;
    assert_eq!(canceled.status, RunStatus::Canceled);

    let agents: AgentList = client
        .get(routes::url(&stub.url(), routes::AGENTS))
        .send()
        .await
        .map(read)
        .unwrap()
        .await;
    assert_eq!(agents.agents.len(), 4);

    let stream = client
        .post(routes::url(&stub.url(), routes::RUN_CREW))
        .header("accept", routes::NDJSON)
        .body(json!({"goal": "g", "federation_session_id": "s-2", "request_id": "r-2"}).to_string())
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events: Vec<Event> = stream
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kinds: Vec<EventType> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds.first(), Some(&EventType::Started));
    assert_eq!(kinds.last(), Some(&EventType::Completed));
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let reply = events.last().unwrap().data["reply"].clone();
    let reply: RunReply = serde_json::from_value(reply).unwrap();
    assert_eq!(reply.output, "stub answer to: g");
}
