//! Rejoinable streams across replicas: two wrapper workers on one SQLite store and two
//! hosts, host `i` on worker `i`. A crew streamed through host 0 (`on_disconnect`
//! CONTINUE) is cut after a few events; host 1's WatchAgentTask, after the last seq
//! seen, gives exactly the rest (the wrapper's run record holds the events), numbered as
//! the cut stream numbered them, up to `completed`; so does `agent-federation watch`.
//! A run cancelled through the other host reports CANCELED with its reason, in its
//! rejoined `failed` event and in GetAgentTask.

use std::process::Command;
use std::time::Duration;

use federation_proto::agent_task_status::State;
use federation_proto::task_event::Event;
use federation_proto::{
    CancelAgentTaskRequest, GetAgentTaskRequest, TaskEvent, TaskRequest, WatchAgentTaskRequest,
    task_request,
};
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_types::RpcStatusExt;

use crate::processes::Fleet;
use crate::request;

fn with_ids(goal: &str, session: &str, request_id: &str) -> TaskRequest {
    TaskRequest {
        request_id: request_id.into(),
        on_disconnect: task_request::OnDisconnect::Continue as i32,
        ..request("crewai", goal, session)
    }
}

/// What an event is, for comparing two streams' events of the same seq.
fn what(event: &TaskEvent) -> String {
    match event.event.as_ref().unwrap() {
        Event::Started(s) => format!("started {}", s.request_id),
        Event::Progress(p) => format!("progress {}", p.message),
        Event::Completed(r) => format!("completed {}", r.output),
        Event::InputRequired(r) => format!("input_required {}", r.output),
        Event::Failed(f) => format!("failed {} {}", f.code, f.message),
    }
}

#[tokio::test]
async fn a_stream_cut_on_one_host_is_rejoined_on_the_other_without_gap_or_duplicate() {
    let pair = Fleet::start(&[
        // Every step sleeps first: the crew still runs when its stream is cut.
        ("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "300"),
    ])
    .await;
    let task_id = "e2e-rejoin-1/rj-1";
    let mut request = tonic::Request::new(with_ids("Rejoin me", "e2e-rejoin-1", "rj-1"));
    request.set_timeout(Duration::from_secs(120));
    let mut stream = pair.hosts[0]
        .client()
        .await
        .stream_agent_task(request)
        .await
        .unwrap()
        .into_inner();
    let k = 3;
    let mut seen = Vec::new();
    while seen.len() < k {
        seen.push(stream.next().await.unwrap().unwrap());
    }
    drop(stream); // the watcher loses its stream

    let rest = pair.hosts.len() - 1;
    let rejoined = pair.watch(rest, task_id, k as u64).await;
    let all: Vec<&TaskEvent> = seen.iter().chain(&rejoined).collect();
    let seqs: Vec<u64> = all.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "no gap, no duplicate"
    );
    let Some(Event::Completed(response)) = &all.last().unwrap().event else {
        panic!("the last event is not completed: {:?}", all.last());
    };
    assert!(!response.output.is_empty());
    assert!(
        all.iter()
            .all(|e| e.task_id == task_id && e.trace_id == seen[0].trace_id)
    );

    // The seq of an event means the same event on both: the cut stream's first k are
    // the replay's first k (`started` is each host's own; the rest are the wrapper's).
    let replay = pair.watch(rest, task_id, 0).await;
    assert_eq!(replay.len(), all.len());
    // The replay's `started` names the adapter as the stream's did.
    let (Some(Event::Started(streamed)), Some(Event::Started(replayed))) =
        (&seen[0].event, &replay[0].event)
    else {
        panic!("not started: {:?} / {:?}", seen[0], replay[0]);
    };
    assert_eq!(replayed.backend, "crewai");
    assert!(!replayed.adapter_digest.is_empty(), "{replayed:?}");
    assert_eq!(
        (
            &replayed.backend,
            &replayed.adapter_version,
            &replayed.adapter_digest
        ),
        (
            &streamed.backend,
            &streamed.adapter_version,
            &streamed.adapter_digest
        )
    );
    for (cut, replayed) in seen.iter().zip(&replay).skip(1) {
        assert_eq!(what(cut), what(replayed));
    }

    // The command line rejoins the same way.
    let output = Command::new(federation_testkit::process::host_bin())
        .args([
            "watch",
            task_id,
            "--after",
            &k.to_string(),
            "--json",
            "--addr",
        ])
        .arg(pair.hosts[rest].endpoint())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let cli_seqs: Vec<u64> = lines.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert_eq!(cli_seqs, rejoined.iter().map(|e| e.seq).collect::<Vec<_>>());
    assert_eq!(lines.last().unwrap()["type"], "completed");

    // An unknown task: NOT_FOUND.
    let mut client = pair.hosts[rest].client().await;
    let unknown = client
        .watch_agent_task(WatchAgentTaskRequest {
            task_id: "e2e-rejoin-1/nope".into(),
            after_seq: 0,
        })
        .await
        .expect_err("no such run");
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn a_run_cancelled_through_another_host_reports_why_in_its_events_and_status() {
    let pair = Fleet::start(&[
        // Every step sleeps first: the crew still runs when its stream is cut.
        ("AGENT_WRAPPER_TEST_STEP_DELAY_MS", "300"),
    ])
    .await;
    let task_id = pair.hosts[0]
        .client()
        .await
        .start_agent_task(with_ids("Cancel me", "e2e-rejoin-2", "rj-2"))
        .await
        .unwrap()
        .into_inner()
        .task_id;
    let mut other = pair.hosts[1].client().await;
    // Cancel once the run exists in the wrapper (its record may not be written yet).
    loop {
        match other
            .cancel_agent_task(CancelAgentTaskRequest {
                task_id: task_id.clone(),
            })
            .await
        {
            Ok(_) => break,
            Err(status) if status.code() == Code::NotFound => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(status) => panic!("{status:?}"),
        }
    }
    let events = pair.watch(1, &task_id, 0).await;
    let last = events.last().unwrap();
    let Some(Event::Failed(failed)) = &last.event else {
        panic!("the last event is not failed: {last:?}");
    };
    assert_eq!(Code::from(failed.code), Code::Cancelled);
    let details = tonic_types::pb::Status {
        code: failed.code,
        message: failed.message.clone(),
        details: failed.details.clone(),
    }
    .get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "CANCELED");

    // GetAgentTask on the host that did not run it (from the wrapper's record).
    let status = other
        .get_agent_task(GetAgentTaskRequest {
            task_id: task_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state(), State::Canceled, "{status:?}");
    let details = tonic_types::pb::Status {
        code: status.error_code,
        message: status.error_message.clone(),
        details: status.error_details.clone(),
    }
    .get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "CANCELED");
    assert_eq!(info.metadata["request_id"], "rj-2");
}
