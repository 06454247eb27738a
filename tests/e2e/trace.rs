//! One trace, orchestrator → host server span → adapter span → outbound client span →
//! wrapper server span → `CrewAI_Execution` / `LangGraph_Execution` → LLM spans, for
//! each backend, with the real framework output in the response.

use std::time::Duration;

use otlp_sink::RecordedSpan;

use crate::{call, orchestrator_traceparent, processes::Stack, request, result_json};

fn child_of<'a>(
    spans: &'a [RecordedSpan],
    parent: &RecordedSpan,
    pred: impl Fn(&RecordedSpan) -> bool,
) -> &'a RecordedSpan {
    spans
        .iter()
        .find(|s| s.parent_span_id.as_deref() == Some(parent.span_id.as_str()) && pred(s))
        .unwrap_or_else(|| {
            panic!(
                "no matching child under {:?} ({})",
                parent.name, parent.span_id
            )
        })
}

fn descendants<'a>(spans: &'a [RecordedSpan], root: &RecordedSpan) -> Vec<&'a RecordedSpan> {
    let mut found = vec![];
    let mut frontier = vec![root.span_id.clone()];
    while let Some(id) = frontier.pop() {
        for span in spans
            .iter()
            .filter(|s| s.parent_span_id.as_deref() == Some(id.as_str()))
        {
            frontier.push(span.span_id.clone());
            found.push(span);
        }
    }
    found
}

async fn one_trace(stack: &Stack, backend: &str, execution_span: &str, seed: u64) {
    let (tp, trace_id, orchestrator_span) = orchestrator_traceparent(seed);
    let session = format!("e2e-trace-{backend}");
    let response = call(
        stack,
        request(
            backend,
            "Explain WebAssembly sandboxing in one line",
            &session,
        ),
        Some(&tp),
    )
    .await
    .unwrap_or_else(|s| panic!("{backend}: {s:?}\n{}", stack.host_log()));

    assert_eq!(response.trace_id, trace_id);
    assert!(!response.output.trim().is_empty());
    let result = result_json(&response);
    assert_eq!(result["framework"], backend);
    assert_eq!(
        result["trace_id"],
        trace_id.as_str(),
        "the wrapper ran in the same trace"
    );
    assert_eq!(result["llm"]["provider"], "offline");
    assert!(
        result["steps"].as_array().is_some_and(|s| s.len() >= 2),
        "{result}"
    );

    let wanted = trace_id.clone();
    let exec_name = execution_span.to_string();
    stack
        .sink
        .wait_for(Duration::from_secs(30), move |spans| {
            let in_trace: Vec<_> = spans.iter().filter(|s| s.trace_id == wanted).collect();
            in_trace.iter().any(|s| s.name == exec_name)
                && in_trace.iter().any(|s| {
                    s.attributes
                        .get("openinference.span.kind")
                        .and_then(|v| v.as_str())
                        == Some("LLM")
                })
                && in_trace
                    .iter()
                    .any(|s| s.service_name == "agent-federation" && s.kind == "client")
        })
        .await
        .unwrap();
    // Let the last batches land, then check the whole tree.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = stack.sink.trace(&trace_id);
    println!("{}", stack.sink.render_tree(&trace_id));

    let server = spans
        .iter()
        .find(|s| s.service_name == "agent-federation" && s.kind == "server")
        .expect("host server span");
    assert_eq!(
        server.parent_span_id.as_deref(),
        Some(orchestrator_span.as_str())
    );
    let adapter = child_of(&spans, server, |s| s.name == format!("adapter {backend}"));
    let client = child_of(&spans, adapter, |s| s.kind == "client");
    let wrapper_server = child_of(&spans, client, |s| s.kind == "server");
    assert_eq!(wrapper_server.service_name, "agent-wrapper");
    let execution = child_of(&spans, wrapper_server, |s| s.name == execution_span);
    assert_eq!(execution.service_name, "agent-wrapper");
    let llm_spans: Vec<_> = descendants(&spans, execution)
        .into_iter()
        .filter(|s| {
            s.attributes
                .get("openinference.span.kind")
                .and_then(|v| v.as_str())
                == Some("LLM")
        })
        .collect();
    assert!(!llm_spans.is_empty(), "LLM spans under {execution_span}");
}

#[tokio::test]
async fn crewai_and_langgraph_each_run_in_one_trace_across_rust_wasm_and_python() {
    let stack = Stack::start().await;
    one_trace(&stack, "crewai", "CrewAI_Execution", 1).await;
    one_trace(&stack, "langgraph", "LangGraph_Execution", 2).await;
}
