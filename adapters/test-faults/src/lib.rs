//! TEST ONLY. An adapter that misbehaves on command so the host's containment can be
//! tested against a real component. The task's `goal` picks the behaviour:
//! `trap` panics, `spin` loops forever, `forge` sends a request carrying its own
//! `traceparent`, `call:<url>` sends a GET to an arbitrary URL, `echo` answers without
//! any outbound call, `sleep:<ms>` answers after waiting (a long in-flight task).
//! Never deploy it.
//!
//! `TEST_FAULTS_VERSION` at build time sets the version `describe()` reports, so the
//! hot-swap tests get two builds that differ only in version.

use federation_adapter_sdk::{
    AdapterError, AdapterInfo, Guest, Method, Request, Task, TaskResponse, export, outbound_http,
};

struct Faults;

impl Guest for Faults {
    fn describe() -> AdapterInfo {
        AdapterInfo {
            name: "test-faults".into(),
            version: option_env!("TEST_FAULTS_VERSION")
                .unwrap_or(env!("CARGO_PKG_VERSION"))
                .into(),
            framework: "test".into(),
            route: "/v1/run_crew".into(),
            description: "TEST ONLY: misbehaves on command".into(),
        }
    }

    fn run_task(task: Task) -> Result<TaskResponse, AdapterError> {
        match task.goal.as_str() {
            "trap" => panic!("test-faults adapter asked to trap"),
            "spin" => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            "forge" => send_forged(&task),
            "echo" => Ok(TaskResponse {
                output: format!("echo: {}", task.context),
                result_json: "{}".into(),
                federation_session_id: task.federation_session_id,
                resumed: false,
            }),
            goal if goal.starts_with("sleep:") => {
                let ms: u64 = goal["sleep:".len()..]
                    .parse()
                    .map_err(|_| AdapterError::InvalidInput(format!("bad sleep {goal:?}")))?;
                std::thread::sleep(std::time::Duration::from_millis(ms));
                Ok(TaskResponse {
                    output: format!("slept {ms} ms"),
                    result_json: "{}".into(),
                    federation_session_id: task.federation_session_id,
                    resumed: false,
                })
            }
            goal => match goal.strip_prefix("call:") {
                Some(url) => {
                    let request = Request {
                        method: Method::Get,
                        url: url.into(),
                        headers: vec![],
                        body: vec![],
                        timeout_ms: None,
                    };
                    let response = outbound_http::send(&request)
                        .map_err(|e| AdapterError::Internal(format!("{e:?}")))?;
                    Ok(TaskResponse {
                        output: format!("status {}", response.status),
                        result_json: "{}".into(),
                        federation_session_id: task.federation_session_id,
                        resumed: false,
                    })
                }
                None => Err(AdapterError::InvalidInput(format!(
                    "unknown fault {goal:?}"
                ))),
            },
        }
    }
}

/// Sends a request with a forged `traceparent`; the host must replace it.
fn send_forged(task: &Task) -> Result<TaskResponse, AdapterError> {
    let request = Request {
        method: Method::Post,
        url: format!("{}/v1/run_crew", task.wrapper_url),
        headers: vec![
            (
                "traceparent".into(),
                "00-0badc0de0badc0de0badc0de0badc0d-0badc0de0badc0d0-01".into(),
            ),
            ("content-type".into(), "application/json".into()),
        ],
        body: br#"{"goal":"forged"}"#.to_vec(),
        timeout_ms: None,
    };
    let response =
        outbound_http::send(&request).map_err(|e| AdapterError::Transport(format!("{e:?}")))?;
    Ok(TaskResponse {
        output: String::from_utf8_lossy(&response.body).into_owned(),
        result_json: "{}".into(),
        federation_session_id: task.federation_session_id.clone(),
        resumed: false,
    })
}

export!(Faults);
