//! Any one process can die without losing a run: two wrapper workers sharing one SQLite
//! database (the durable run queue) and two host replicas, each host on its own worker.
//! A host and a worker killed mid-run -> the other worker finishes the run by itself and
//! the other host reports it; a blocking call whose host died is attached to by a retry
//! with the same request id; a full queue answers UNAVAILABLE through the host.

use std::time::{Duration, Instant};

use federation_proto::TaskRequest;
use federation_proto::agent_task_status::State;
use tonic::Code;

use federation_testkit::process::Process;

use crate::processes::Fleet;
use crate::request;

fn with_ids(backend: &str, goal: &str, session: &str, request_id: &str) -> TaskRequest {
    TaskRequest {
        request_id: request_id.into(),
        ..request(backend, goal, session)
    }
}

#[tokio::test]
async fn a_host_and_a_worker_killed_mid_run_lose_nothing_and_the_other_host_reports_it() {
    // Every step sleeps first, so the crew is still running when its processes die.
    let mut fleet = Fleet::start(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "400")]).await;
    let started = fleet.hosts[0]
        .client()
        .await
        .start_agent_task(with_ids(
            "crewai",
            "Outlive two crashes",
            "e2e-fleet-1",
            "f-1",
        ))
        .await
        .unwrap()
        .into_inner();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let running = fleet.status(1, &started.task_id).await;
    assert!(
        matches!(running.state(), State::Submitted | State::Working),
        "the other host sees the run in progress: {running:?}"
    );
    fleet.hosts[0].kill();
    fleet.workers[0].kill();

    let deadline = Instant::now() + Duration::from_secs(90);
    let done = loop {
        let status = fleet.status(1, &started.task_id).await;
        if status.state() == State::Completed || Instant::now() > deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(done.state(), State::Completed, "{done:?}");
    let response = done.response.expect("the completed response");
    assert!(!response.output.is_empty());
}

#[tokio::test]
async fn a_blocking_call_whose_host_died_is_attached_to_by_a_retry_on_another_host() {
    let mut fleet = Fleet::start(&[("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "300")]).await;
    let first = with_ids("langgraph", "Survive the host", "e2e-fleet-2", "f-2");
    let doomed = {
        let host = fleet.hosts[0].endpoint();
        let request = first.clone();
        tokio::spawn(async move {
            let mut client =
                federation_proto::federation_service_client::FederationServiceClient::connect(host)
                    .await
                    .unwrap();
            client.run_agent_task(request).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    fleet.hosts[0].kill();
    assert!(
        doomed.await.unwrap().is_err(),
        "the caller of the dead host got an error"
    );

    // The same request id on the other host: it attaches to the run, which ran once.
    let mut client = fleet.hosts[1].client().await;
    let mut retry = tonic::Request::new(first);
    retry.set_timeout(Duration::from_secs(120));
    let response = client.run_agent_task(retry).await.unwrap().into_inner();
    assert!(!response.output.is_empty());
    let result = crate::result_json(&response);
    let steps: Vec<_> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["resumed_from_checkpoint"].as_bool().unwrap())
        .collect();
    assert_eq!(
        steps,
        [false, false],
        "the first attempt ran both nodes: {result}"
    );
}

#[tokio::test]
async fn a_full_queue_is_unavailable_through_the_host_and_says_why() {
    let fleet = Fleet::start(&[
        ("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "500"),
        ("AGENT_WRAPPER_MAX_RUNS", "1"),
        ("AGENT_WRAPPER_MAX_QUEUED", "0"),
    ])
    .await;
    let mut client = fleet.hosts[0].client().await;
    client
        .start_agent_task(with_ids("crewai", "Take the slot", "e2e-full-1", "q-1"))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = call_on(
        &fleet.hosts[0],
        with_ids("crewai", "No room", "e2e-full-2", "q-2"),
    )
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert!(refused.message().contains("run slots"), "{refused:?}");
}

async fn call_on(
    host: &Process,
    request: TaskRequest,
) -> Result<federation_proto::TaskResponse, tonic::Status> {
    let mut client = host.client().await;
    let mut request = tonic::Request::new(request);
    request.set_timeout(Duration::from_secs(60));
    client.run_agent_task(request).await.map(|r| r.into_inner())
}
