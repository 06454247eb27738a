//! The shipped examples (`examples/agents.toml`: a classic CrewAI project with a custom
//! tool, a LangGraph app with a tool node and an interrupt, a CrewAI Flow) through the
//! host, as a newcomer runs them: ListAgents, a crew with its placeholders and tool, input refused
//! before anything runs, and a graph that asks for input and is resumed, in one trace.

use std::time::Duration;

use federation_proto::json::{json_to_struct, json_to_value, value_to_json};
use federation_proto::task_event::Event;
use federation_proto::task_progress::Kind;
use federation_proto::task_response::State;
use federation_proto::{ListAgentsRequest, TaskRequest};
use federation_testkit::process::stream_events;
use serde_json::{Value, json};
use tonic::Code;

use crate::processes::Stack;
use crate::{call, orchestrator_traceparent, request};

async fn examples_stack() -> Stack {
    let registry = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/agents.toml");
    Stack::start_with_wrapper_env(&[("AGENT_WRAPPER_AGENTS_FILE", registry)]).await
}

fn with_agent(backend: &str, agent: &str, session: &str, input: Value) -> TaskRequest {
    let Value::Object(input) = input else {
        panic!("input must be an object")
    };
    TaskRequest {
        agent: agent.into(),
        input_data: Some(json_to_struct(input)),
        ..request(backend, "Plan a weekend in Lisbon", session)
    }
}

#[tokio::test]
async fn the_example_agents_are_listed_with_their_backends_inputs_and_tools() {
    let stack = examples_stack().await;
    let mut client = stack.client().await;
    let agents = client
        .list_agents(ListAgentsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agents;
    let names: Vec<_> = agents.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "crew",
            "graph",
            "research_crew",
            "trip_planner",
            "newsletter"
        ],
        "{agents:?}"
    );
    let crew = &agents[2];
    assert_eq!(crew.backends, ["crewai"]);
    assert_eq!(crew.tools, ["fact_sheet"]);
    let schema =
        federation_proto::json::struct_to_json(crew.input_schema.as_ref().unwrap()).unwrap();
    assert_eq!(schema["required"], json!(["topic", "audience"]));
    let trip = &agents[3];
    assert!(trip.can_request_input && !trip.default);
    assert_eq!(trip.backends, ["langgraph"]);

    let only = client
        .list_agents(ListAgentsRequest {
            backend: "langgraph".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert!(only.iter().all(|a| a.framework == "langgraph"));
}

#[tokio::test]
async fn a_user_crew_runs_with_its_tool_and_bad_input_is_refused_before_it_runs() {
    let stack = examples_stack().await;
    let input = json!({"topic": "WebAssembly sandboxes", "audience": "platform engineers"});
    let response = call(
        &stack,
        with_agent("crewai", "research_crew", "e2e-own-crew", input),
        None,
    )
    .await
    .unwrap();
    assert_eq!(response.agent, "research_crew");
    assert_eq!(response.state(), State::Completed);
    let result = crate::result_json(&response);
    let steps: Vec<_> = result["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(steps, ["research_task", "brief_task"]);
    assert!(
        result["steps"][0]["output"]
            .as_str()
            .unwrap()
            .contains("WebAssembly runs code in a sandbox"),
        "the fact_sheet tool's answer reached the researcher: {result}"
    );

    let missing = call(
        &stack,
        with_agent(
            "crewai",
            "research_crew",
            "e2e-own-bad",
            json!({"topic": "x"}),
        ),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument, "{missing:?}");
    assert!(
        missing.message().contains("input_data.audience"),
        "{missing:?}"
    );

    let unknown = call(
        &stack,
        with_agent("crewai", "no_such_crew", "e2e-own-bad", json!({})),
        None,
    )
    .await
    .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(unknown.message().contains("research_crew"), "{unknown:?}");
}

#[tokio::test]
async fn a_graph_asks_for_input_streams_its_tool_call_and_resumes_in_one_trace() {
    let stack = examples_stack().await;
    let (tp, trace_id, _) = orchestrator_traceparent(301);
    let session = "e2e-own-trip";
    let first = with_agent(
        "langgraph",
        "trip_planner",
        session,
        json!({"city": "Lisbon", "budget": 600}),
    );

    let mut client = stack.client().await;
    let mut streamed = tonic::Request::new(first.clone());
    streamed.set_timeout(Duration::from_secs(120));
    streamed
        .metadata_mut()
        .insert("traceparent", tp.parse().unwrap());
    let events = stream_events(&mut client, streamed).await.unwrap();
    let tool_calls: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event {
            Some(Event::Progress(p)) if p.kind() == Kind::ToolCall => Some(p),
            _ => None,
        })
        .collect();
    assert_eq!(tool_calls.len(), 1, "{events:?}");
    let data =
        federation_proto::json::struct_to_json(tool_calls[0].data.as_ref().unwrap()).unwrap();
    assert_eq!(data["tool"], "weather");
    assert_eq!(data["step"], "tools");
    let Some(Event::InputRequired(asked)) = &events.last().unwrap().event else {
        panic!("the stream ends input_required: {events:?}")
    };
    assert_eq!(asked.state(), State::InputRequired);
    let question = value_to_json(asked.interrupt.as_ref().unwrap()).unwrap();
    assert_eq!(question["question"], "Book the trip to Lisbon for 600 EUR?");

    // Asking again with another request is refused until the question is answered.
    let other = TaskRequest {
        goal: "Plan a week in Porto".into(),
        ..first.clone()
    };
    let refused = call(&stack, other, None).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");

    let answer = TaskRequest {
        resume: Some(json_to_value(json!({"approved": true}))),
        input_data: None,
        ..first
    };
    let done = call(&stack, answer, Some(&tp)).await.unwrap();
    assert_eq!(done.state(), State::Completed);
    assert_eq!(done.output, "Booked: Lisbon within 600 EUR.");
    assert_eq!(done.trace_id, trace_id);

    // Both runs, and the tool span under its step, are in the orchestrator's trace.
    let wanted = trace_id.clone();
    stack
        .sink
        .wait_for(Duration::from_secs(30), move |spans| {
            spans
                .iter()
                .filter(|s| s.trace_id == wanted && s.name == "LangGraph_Execution")
                .count()
                >= 2
        })
        .await
        .unwrap_or_else(|_| panic!("{}", stack.sink.render_tree(&trace_id)));
    let spans = stack.sink.trace(&trace_id);
    let tool = spans
        .iter()
        .find(|s| s.name == "weather")
        .unwrap_or_else(|| panic!("a tool span: {}", stack.sink.render_tree(&trace_id)));
    let parent = spans
        .iter()
        .find(|s| Some(&s.span_id) == tool.parent_span_id.as_ref())
        .unwrap();
    assert_eq!(parent.name, "tools");
}
