//! federation-wire against the agent wrapper's own models: the fixtures in `golden/`
//! are JSON Schemas and example payloads that the Pydantic models produced and
//! validated (`golden/generate.py`). Each Rust type must read every example and write
//! it back unchanged, have exactly the model's fields, require exactly what the model
//! requires, and know exactly the model's status values and event types.

use federation_wire::{
    Agent, AgentList, ERROR_CODES, ErrorBody, Event, EventType, GrpcCode, ReplyStatus, RunRecord,
    RunReply, RunRequest, RunStatus, routes,
};
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/golden/{name}.json", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap()
}

/// Whether a property of a JSON Schema admits `null`.
fn nullable(property: &Value) -> bool {
    property["anyOf"]
        .as_array()
        .is_some_and(|types| types.iter().any(|t| t["type"] == "null"))
        || property.get("default").is_some_and(Value::is_null)
}

/// The model in fixture `name` and the Rust type `T` describe the same JSON.
fn binds<T: Serialize + DeserializeOwned>(name: &str) {
    let golden = fixture(name);
    let model = golden["model"].as_str().unwrap();
    let schema = &golden["schema"];
    let properties = schema["properties"].as_object().unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().map(|v| v.as_str().unwrap()).collect())
        .unwrap_or_default();
    let examples = golden["examples"].as_array().unwrap();
    assert!(!examples.is_empty(), "{name}: no examples");
    for example in examples {
        // Read and written back unchanged: same field names, same values.
        let parsed: T = serde_json::from_value(example.clone())
            .unwrap_or_else(|e| panic!("{model}: the example does not parse: {e}\n{example:#}"));
        let written = serde_json::to_value(&parsed).unwrap();
        assert_eq!(&written, example, "{model}: written back differently");
        let keys: Vec<&String> = written.as_object().unwrap().keys().collect();
        let mut fields: Vec<&String> = properties.keys().collect();
        fields.sort();
        assert_eq!(keys, fields, "{model}: fields differ from the schema's");

        for (field, property) in properties {
            let mut without = example.clone();
            without.as_object_mut().unwrap().remove(field);
            let parsed = serde_json::from_value::<T>(without);
            let needed = required.contains(&field.as_str());
            if !needed {
                assert!(parsed.is_ok(), "{model}.{field} is optional in the model");
            } else if !nullable(property) {
                assert!(parsed.is_err(), "{model}.{field} is required in the model");
            }
        }
    }
}

/// The values a schema's enum property allows (resolving a `$ref` into `$defs`).
fn enum_values(schema: &Value, property: &str) -> Vec<String> {
    let mut node = &schema["properties"][property];
    if let Some(reference) = node["$ref"].as_str() {
        let name = reference.trim_start_matches("#/$defs/");
        node = &schema["$defs"][name];
    }
    node["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("{property} has no enum: {node:#}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn run_request_is_the_wrappers_run_body() {
    binds::<RunRequest>("run_request");
}

#[test]
fn run_reply_is_the_wrappers_run_response() {
    binds::<RunReply>("run_reply");
    let schema = &fixture("run_reply")["schema"];
    let ours: Vec<&str> = ReplyStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(enum_values(schema, "status"), ours);
}

#[test]
fn run_record_is_the_wrappers_run_record_view() {
    binds::<RunRecord>("run_record");
    let schema = &fixture("run_record")["schema"];
    let ours: Vec<&str> = RunStatus::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(enum_values(schema, "status"), ours);
}

#[test]
fn agents_are_the_wrappers_agent_views() {
    binds::<Agent>("agent");
    binds::<AgentList>("agent_list");
}

#[test]
fn error_body_is_the_wrappers_error_response() {
    binds::<ErrorBody>("error_body");
}

#[test]
fn events_are_the_wrappers_progress_stream() {
    let golden = fixture("events");
    let ours: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
    let theirs: Vec<&str> = golden["event_types"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(ours, theirs, "event types");
    assert_eq!(golden["media_type"], routes::NDJSON);
    // The model of one line (RunEvent) has exactly Event's fields and its types.
    let schema = &golden["schema"];
    let mut fields: Vec<&String> = schema["properties"].as_object().unwrap().keys().collect();
    fields.sort();
    assert_eq!(fields, ["data", "seq", "trace_id", "ts", "type"]);
    let typed: Vec<&str> = schema["properties"]["type"]["enum"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert_eq!(ours, typed, "RunEvent.type");
    for example in golden["examples"].as_array().unwrap() {
        let line = serde_json::to_string(example).unwrap();
        let event: Event = serde_json::from_str(&line).unwrap();
        assert_ne!(event.kind, EventType::Unknown, "{line}");
        assert_eq!(&serde_json::to_value(&event).unwrap(), example);
        let terminal = golden["terminal"]
            .as_array()
            .unwrap()
            .contains(&Value::from(event.kind.as_str()));
        assert_eq!(event.kind.is_terminal(), terminal, "{line}");
        assert_eq!(event.end().is_some(), terminal, "{line}");
    }
}

/// The wrapper's error codes (`contract.ErrorCode`, written to `golden/error_codes.json`
/// sorted by code) are exactly [`ERROR_CODES`], each with the same HTTP status and the
/// gRPC code the host answers for it.
#[test]
fn the_error_codes_are_the_wrappers() {
    let golden = fixture("error_codes");
    let golden: Vec<(String, u64, String)> = golden
        .as_array()
        .expect("a list of error codes")
        .iter()
        .map(|entry| {
            (
                entry["code"].as_str().unwrap().to_string(),
                entry["http_status"].as_u64().unwrap(),
                entry["grpc_code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let rust: Vec<(String, u64, String)> = ERROR_CODES
        .iter()
        .map(|entry| {
            (
                entry.code.to_string(),
                u64::from(entry.http_status),
                GrpcCode::of_http_status(entry.http_status)
                    .name()
                    .to_string(),
            )
        })
        .collect();
    assert_eq!(
        rust, golden,
        "federation-wire's ERROR_CODES vs the wrapper's"
    );
}
