//! Own agents through the real host and adapters to the recording stub wrapper: a
//! task's `agent` and `resume` reach the wrapper's body; a run that asks for input ends
//! INPUT_REQUIRED (RunAgentTask, StreamAgentTask's last event, GetAgentTask from memory
//! and from the wrapper's run record); ListAgents maps the wrapper's agents to loaded
//! backends; a 0.1.0 adapter refuses `agent`/`resume` but still runs plain tasks; bad
//! names and oversized answers are refused; the CLI's `call --agent --resume` and
//! `agents`.

mod support;

use std::time::Duration;

use federation_proto::agent_task_status::State;
use federation_proto::json::{json_to_value, struct_to_json, value_to_json};
use federation_proto::task_event::Event;
use federation_proto::task_response;
use federation_proto::{
    AgentTaskStatus, GetAgentTaskRequest, ListAgentsRequest, TaskRequest, TaskResponse,
};
use federation_testkit::process::stream_events;
use serde_json::{Value, json};
use support::stub_wrapper::interrupt_value;
use support::{HostProcess, env, run, start_stub_and_sink, task, unused_url};
use tonic::Code;

async fn run_ok(request: TaskRequest) -> TaskResponse {
    let mut client = env().host.client().await;
    run(&mut client, request, None, None).await.unwrap()
}

async fn run_err(request: TaskRequest) -> tonic::Status {
    let mut client = env().host.client().await;
    run(&mut client, request, None, None)
        .await
        .expect_err("the task is refused")
}

fn with_session(mut request: TaskRequest) -> TaskRequest {
    request.federation_session_id = format!("agents-{}", support::uuid_like());
    request
}

fn interrupt_of(response: &TaskResponse) -> Value {
    value_to_json(response.interrupt.as_ref().expect("an interrupt")).unwrap()
}

fn task_id(request: &TaskRequest) -> String {
    format!("{}/{}", request.federation_session_id, request.request_id)
}

async fn get_status(task_id: &str) -> AgentTaskStatus {
    let mut client = env().host.client().await;
    client
        .get_agent_task(GetAgentTaskRequest {
            task_id: task_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn a_named_agent_reaches_the_wrapper_and_names_the_response() {
    let mut request = task("crewai", "research with my crew");
    request.agent = "research_crew".into();
    let request_id = request.request_id.clone();

    let response = run_ok(request).await;

    let sent = &env().stub.requests_for(&request_id)[0];
    assert_eq!(sent.body["agent"], "research_crew");
    assert!(sent.body.get("resume").is_none(), "{}", sent.body);
    assert_eq!(response.agent, "research_crew");
    assert_eq!(response.state(), task_response::State::Completed);
    assert!(response.interrupt.is_none());
}

#[tokio::test]
async fn a_task_without_agent_sends_none_and_the_reply_names_the_default() {
    let request = task("langgraph", "plain graph");
    let request_id = request.request_id.clone();

    let response = run_ok(request).await;

    let sent = &env().stub.requests_for(&request_id)[0];
    assert!(sent.body.get("agent").is_none(), "{}", sent.body);
    assert!(sent.body.get("resume").is_none(), "{}", sent.body);
    assert_eq!(
        response.agent, "graph",
        "the wrapper's name for its default"
    );
    assert_eq!(response.state(), task_response::State::Completed);
}

#[tokio::test]
async fn a_resume_answer_reaches_the_wrapper_as_json() {
    let mut request = with_session(task("langgraph", "continue the trip"));
    request.agent = "trip_planner".into();
    request.resume = Some(json_to_value(json!({"city": "Lyon", "days": 2})));
    let request_id = request.request_id.clone();

    let response = run_ok(request).await;

    let sent = &env().stub.requests_for(&request_id)[0];
    // An integral number stays an integer on the way (protobuf carries it as 2.0).
    assert_eq!(sent.body["resume"], json!({"city": "Lyon", "days": 2}));
    assert_eq!(sent.body["agent"], "trip_planner");
    let result = struct_to_json(response.result.as_ref().unwrap()).unwrap();
    assert_eq!(result["resume_received"]["city"], "Lyon");

    // JSON null is an answer too: the key is sent.
    let mut request = with_session(task("langgraph", "answer with nothing"));
    request.resume = Some(json_to_value(Value::Null));
    let request_id = request.request_id.clone();
    run_ok(request).await;
    let sent = &env().stub.requests_for(&request_id)[0];
    assert_eq!(sent.body.get("resume"), Some(&Value::Null), "{}", sent.body);
}

#[tokio::test]
async fn a_run_that_asks_for_input_ends_input_required_with_its_question() {
    let request = with_session(task("langgraph", "interrupt"));
    let session = request.federation_session_id.clone();

    let response = run_ok(request).await;

    assert_eq!(response.state(), task_response::State::InputRequired);
    assert_eq!(interrupt_of(&response), interrupt_value());
    assert_eq!(response.output, "");
    assert_eq!(response.federation_session_id, session);
    assert_eq!(response.agent, "graph");
    assert_eq!(response.trace_id.len(), 32);
}

#[tokio::test]
async fn a_streamed_run_that_asks_for_input_ends_with_input_required() {
    let request = with_session(task("langgraph", "interrupt"));
    let mut client = env().host.client().await;
    let events: Vec<Event> = stream_events(&mut client, request.clone())
        .await
        .unwrap()
        .into_iter()
        .map(|event| event.event.unwrap())
        .collect();

    assert!(matches!(events[0], Event::Started(_)));
    assert!(
        events.iter().any(|e| matches!(e, Event::Progress(_))),
        "progress is relayed as for any run"
    );
    assert!(!events.iter().any(|e| matches!(e, Event::Completed(_))));
    let Some(Event::InputRequired(response)) = events.last() else {
        panic!("the last event is not input_required: {:?}", events.last());
    };
    assert_eq!(response.state(), task_response::State::InputRequired);
    assert_eq!(interrupt_of(response), interrupt_value());
    assert_eq!(response.request_id, request.request_id);
}

#[tokio::test]
async fn get_agent_task_reports_input_required_from_memory() {
    let request = with_session(task("langgraph", "interrupt"));
    let mut client = env().host.client().await;
    let started = client
        .start_agent_task(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(started.task_id, task_id(&request));

    let mut status = get_status(&started.task_id).await;
    for _ in 0..500 {
        if status.state() != State::Working {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        status = get_status(&started.task_id).await;
    }
    assert_eq!(status.state(), State::InputRequired, "{status:?}");
    let response = status.response.expect("the response");
    assert_eq!(response.state(), task_response::State::InputRequired);
    assert_eq!(interrupt_of(&response), interrupt_value());
    // Answered from this replica's memory: the wrapper's record was not asked.
    let record = format!(
        "/v1/sessions/{}/runs/{}",
        request.federation_session_id, request.request_id
    );
    assert!(env().stub.requests_to(&record).is_empty());
}

#[tokio::test]
async fn get_agent_task_reports_input_required_from_the_wrappers_record() {
    // A task this replica did not start: GetAgentTask reads the wrapper's run record.
    let mut request = with_session(task("langgraph", "interrupt"));
    request.agent = "trip_planner".into();
    run_ok(request.clone()).await;

    let status = get_status(&task_id(&request)).await;

    assert_eq!(status.state(), State::InputRequired, "{status:?}");
    let response = status.response.expect("the response from the record");
    assert_eq!(response.state(), task_response::State::InputRequired);
    assert_eq!(interrupt_of(&response), interrupt_value());
    assert_eq!(response.agent, "trip_planner");
    assert_eq!(response.request_id, request.request_id);
    assert_eq!(status.trace_id.len(), 32);

    // A completed one is COMPLETED, with no interrupt.
    let done = with_session(task("langgraph", "finish"));
    run_ok(done.clone()).await;
    let status = get_status(&task_id(&done)).await;
    assert_eq!(status.state(), State::Completed, "{status:?}");
    let response = status.response.unwrap();
    assert_eq!(response.state(), task_response::State::Completed);
    assert!(response.interrupt.is_none());
}

#[tokio::test]
async fn list_agents_maps_the_wrappers_agents_to_loaded_backends() {
    let mut client = env().host.client().await;
    let agents = client
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents;

    let summary: Vec<_> = agents
        .iter()
        .map(|a| (a.name.as_str(), a.framework.as_str(), a.backends.join(",")))
        .collect();
    assert_eq!(
        summary,
        [
            ("crew", "crewai", "crewai".to_string()),
            ("graph", "langgraph", "langgraph".to_string()),
            ("trip_planner", "langgraph", "langgraph".to_string()),
            ("team", "autogen", String::new()),
        ]
    );
    let planner = &agents[2];
    assert_eq!(planner.description, "plans a trip");
    assert!(planner.can_request_input && !planner.default);
    assert_eq!(planner.tools, ["lookup_weather"]);
    let schema = struct_to_json(planner.input_schema.as_ref().unwrap()).unwrap();
    assert_eq!(schema["required"], json!(["city"]));
    assert!(agents[0].default && !agents[0].can_request_input);
    // The host asked the wrapper, in a trace of its own.
    let asked = env().stub.requests_to("/v1/agents");
    assert!(asked.iter().all(|r| r.header("traceparent").is_some()));
}

#[tokio::test]
async fn list_agents_filters_by_backend_and_refuses_unknown_ones() {
    let mut client = env().host.client().await;
    let names = |agents: Vec<federation_proto::AgentInfo>| {
        agents.into_iter().map(|a| a.name).collect::<Vec<_>>()
    };
    let langgraph = client
        .list_agents(ListAgentsRequest {
            backend: "langgraph".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(names(langgraph.agents), ["graph", "trip_planner"]);
    // test-faults drives framework "test": the wrapper has no agents of it.
    let faults = client
        .list_agents(ListAgentsRequest {
            backend: "test-faults".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(faults.agents.is_empty());

    let before = env().stub.requests_to("/v1/agents").len();
    let unknown = client
        .list_agents(ListAgentsRequest {
            backend: "nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{}", unknown.message());
    assert!(
        unknown.message().contains("crewai, langgraph, test-faults"),
        "{}",
        unknown.message()
    );
    assert_eq!(
        env().stub.requests_to("/v1/agents").len(),
        before,
        "an unknown backend is refused before the wrapper is asked"
    );
}

#[tokio::test]
async fn list_agents_is_unavailable_when_the_wrapper_is_unreachable() {
    let (_, _, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&unused_url(), &sink.grpc_endpoint(), &[]);
    let mut client = host.client().await;
    let status = client
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{}", status.message());
    assert!(
        status.message().contains("unreachable"),
        "{}",
        status.message()
    );
}

#[tokio::test]
async fn an_adapter_built_before_interaction_refuses_agent_and_resume_but_runs_plain_tasks() {
    // test-faults is built against contract 0.1.0: no `interaction` import.
    let mut named = task("test-faults", "echo");
    named.agent = "crew".into();
    let status = run_err(named).await;
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    for needle in [
        "\"test-faults\" cannot run a named agent",
        "interaction",
        "0.1.2",
    ] {
        assert!(status.message().contains(needle), "{}", status.message());
    }
    assert!(status.metadata().get("x-trace-id").is_some());

    let mut resuming = task("test-faults", "echo");
    resuming.resume = Some(json_to_value(json!("yes")));
    let status = run_err(resuming).await;
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    assert!(
        status.message().contains("cannot resume an interrupt"),
        "{}",
        status.message()
    );

    // Refused before the start on a stream too, with no events.
    let mut client = env().host.client().await;
    let mut streamed = task("test-faults", "echo");
    streamed.agent = "crew".into();
    let status = client.stream_agent_task(streamed).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);

    let mut plain = task("test-faults", "echo");
    plain.context = "still served".into();
    let response = run_ok(plain).await;
    assert_eq!(response.output, "echo: still served");
    assert_eq!(response.state(), task_response::State::Completed);
}

#[tokio::test]
async fn invalid_agent_names_and_oversized_resumes_are_invalid_argument() {
    for agent in ["../etc", "trip planner", "a/b", &"x".repeat(129)] {
        let mut request = task("langgraph", "bad agent");
        request.agent = agent.to_string();
        let request_id = request.request_id.clone();
        let status = run_err(request).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{agent:?}");
        assert!(status.message().contains("agent"), "{}", status.message());
        assert!(env().stub.requests_for(&request_id).is_empty());
    }
    let mut request = task("langgraph", "bad resume");
    request.resume = Some(json_to_value(json!("x".repeat(256 * 1024))));
    let request_id = request.request_id.clone();
    let status = run_err(request).await;
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status
            .message()
            .contains("resume is larger than 262144 bytes"),
        "{}",
        status.message()
    );
    assert!(env().stub.requests_for(&request_id).is_empty());
}

#[tokio::test]
async fn the_cli_calls_an_agent_resumes_and_lists_agents() {
    let endpoint = env().host.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let answer = dir.path().join("answer.json");
    std::fs::write(&answer, r#"{"city": "Porto"}"#).unwrap();
    let resume_arg = format!("@{}", answer.display());
    let bin = federation_testkit::process::host_bin();
    let (asked, resumed, listed) = tokio::task::spawn_blocking(move || {
        let call = |extra: &[&str]| {
            std::process::Command::new(bin)
                .args(["call", "--addr", &endpoint, "--backend", "langgraph"])
                .args(extra)
                .output()
                .unwrap()
        };
        let asked = call(&["--goal", "interrupt", "--agent", "trip_planner"]);
        let resumed = call(&["--goal", "cli resume", "--resume", &resume_arg, "--json"]);
        let listed = std::process::Command::new(bin)
            .args([
                "agents",
                "--addr",
                &endpoint,
                "--backend",
                "langgraph",
                "--json",
            ])
            .output()
            .unwrap();
        (asked, resumed, listed)
    })
    .await
    .unwrap();

    let printed = String::from_utf8_lossy(&asked.stdout);
    assert!(asked.status.success(), "{printed}");
    assert!(printed.contains("state:      INPUT_REQUIRED"), "{printed}");
    assert!(
        printed.contains("\"question\": \"Which city?\""),
        "{printed}"
    );
    assert!(printed.contains("agent:      trip_planner"), "{printed}");

    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let response: Value = serde_json::from_slice(&resumed.stdout).unwrap();
    assert_eq!(response["state"], "COMPLETED");
    let sent = env().stub.requests_with_goal("cli resume");
    assert_eq!(sent[0].body["resume"], json!({"city": "Porto"}));

    assert!(listed.status.success());
    let listed: Value = serde_json::from_slice(&listed.stdout).unwrap();
    let names: Vec<_> = listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["graph", "trip_planner"]);
    assert_eq!(listed["agents"][1]["backends"], json!(["langgraph"]));
}
