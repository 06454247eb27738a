//! TEST ONLY. An adapter that misbehaves on command so the host's containment can be
//! tested against a real component. The task's `goal` picks the behaviour:
//! `trap` panics, `spin` loops forever, `forge` sends a request carrying its own
//! `traceparent`, `call:<url>` sends a GET to an arbitrary URL, `echo` answers without
//! any outbound call, `sleep:<ms>` answers after waiting (a long in-flight task).
//! Hostile ones for the sandbox suite: `alloc:<mib>` grabs memory, `recurse` overflows
//! the stack, `huge-output:<mib>` answers with that much text, `many-calls:<n>` sends n
//! requests, `forge-secret` sets the header the host injects as a secret, `snoop`
//! tries to read files and the environment, `print:<kib>` floods stdout and stderr,
//! `log-flood:<n>` writes n lines of 4 KiB through the `log` import,
//! `forge-credential` sets the host's wrapper credential header itself,
//! `forge-principal` sets the principal header only the host may set.
//! `not-an-object` answers with a structured result that is JSON but not an object.
//! Never deploy it.
//!
//! `TEST_FAULTS_SPIN` in its environment (a policy manifest's `[wasi] env`) makes the
//! host's validation of the build hang: `describe` spins in `describe()`, `run-task`
//! spins in every task (the host's self-test is the first).
//!
//! `TEST_FAULTS_VERSION` at build time sets the version `describe()` reports, so the
//! hot-swap tests get two builds that differ only in version.
//!
//! It is built against the frozen adapter contract 0.1.0 (`wit/released/0.1.0`), so
//! every test that uses it also checks that components built before 0.1.1 still load
//! and run on the current host.

#[allow(clippy::too_many_arguments)] // generated glue for records with many fields
mod bindings {
    wit_bindgen::generate!({
        world: "agent-backend",
        path: "../../wit/released/0.1.0",
        default_bindings_module: "crate::bindings",
    });
}

use bindings::federation::agent_backend::log::{self, Level};
use bindings::federation::agent_backend::outbound_http::{self, Method, Request};
use bindings::federation::agent_backend::types::{AdapterError, AdapterInfo, Task, TaskResponse};
use bindings::{Guest, export};

struct Faults;

impl Guest for Faults {
    fn describe() -> AdapterInfo {
        spin_if_told("describe");
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
        spin_if_told("run-task");
        match task.goal.as_str() {
            "trap" => panic!("test-faults adapter asked to trap"),
            "spin" => spin(),
            "forge" => send_forged(&task),
            "echo" => Ok(answer(&task, format!("echo: {}", task.context))),
            "recurse" => Ok(answer(&task, format!("depth {}", recurse(0)))),
            "forge-secret" => {
                send_with_headers(&task, vec![("x-api-key".into(), "guest-forged-key".into())])
            }
            // Tries to speak for another principal; the host must refuse the request.
            "forge-principal" => send_with_headers(
                &task,
                vec![("x-federation-principal".into(), "admin".into())],
            ),
            "snoop" => Ok(answer(&task, snoop())),
            "forge-credential" => send_with_headers(
                &task,
                vec![("x-federation-host-credential".into(), "guest-forged".into())],
            ),
            "not-an-object" => Ok(TaskResponse {
                result_json: r#"["a", "list"]"#.into(),
                ..answer(&task, "a result that is not an object".into())
            }),
            goal => run_with_argument(&task, goal),
        }
    }
}

/// The faults whose goal carries an argument, `name:argument`.
fn run_with_argument(task: &Task, goal: &str) -> Result<TaskResponse, AdapterError> {
    let name = goal.split_once(':').map_or("", |(name, _)| name);
    match name {
        "log-flood" => log_flood(task, number(goal)?),
        "alloc" => alloc(task, number(goal)?),
        "huge-output" => Ok(answer(task, "x".repeat(number(goal)? << 20))),
        "print" => print(task, number(goal)?),
        "many-calls" => many_calls(task, number(goal)?),
        "sleep" => {
            let ms: u64 = goal["sleep:".len()..]
                .parse()
                .map_err(|_| AdapterError::InvalidInput(format!("bad sleep {goal:?}")))?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(answer(task, format!("slept {ms} ms")))
        }
        "call" => call(task, &goal["call:".len()..]),
        _ => Err(AdapterError::InvalidInput(format!(
            "unknown fault {goal:?}"
        ))),
    }
}

/// Writes `n` lines of 4 KiB through the `log` import.
fn log_flood(task: &Task, n: usize) -> Result<TaskResponse, AdapterError> {
    let line = "z".repeat(4096);
    for _ in 0..n {
        log::log(Level::Info, &line);
    }
    Ok(answer(task, format!("logged {n} lines")))
}

/// Holds `mib` MiB of memory.
fn alloc(task: &Task, mib: usize) -> Result<TaskResponse, AdapterError> {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    for _ in 0..mib {
        hoard.push(vec![1u8; 1 << 20]);
    }
    Ok(answer(
        task,
        format!("held {} MiB", std::hint::black_box(hoard).len()),
    ))
}

/// Writes `kib` KiB to stdout and as much to stderr.
fn print(task: &Task, kib: usize) -> Result<TaskResponse, AdapterError> {
    let line = "y".repeat(1023);
    for _ in 0..kib {
        println!("{line}");
        eprintln!("{line}");
    }
    Ok(answer(task, format!("printed {kib} KiB")))
}

/// Sends `n` requests to the wrapper.
fn many_calls(task: &Task, n: usize) -> Result<TaskResponse, AdapterError> {
    for i in 0..n {
        let request = Request {
            method: Method::Get,
            url: format!("{}/ping/{}", task.wrapper_url, task.request_id),
            headers: vec![],
            body: vec![],
            timeout_ms: None,
        };
        outbound_http::send(&request)
            .map_err(|e| AdapterError::Internal(format!("call {i}: {e:?}")))?;
    }
    Ok(answer(task, format!("sent {n} requests")))
}

/// A GET to `url`, whatever it is; answers with its status.
fn call(task: &Task, url: &str) -> Result<TaskResponse, AdapterError> {
    let request = Request {
        method: Method::Get,
        url: url.into(),
        headers: vec![],
        body: vec![],
        timeout_ms: None,
    };
    let response =
        outbound_http::send(&request).map_err(|e| AdapterError::Internal(format!("{e:?}")))?;
    Ok(answer(task, format!("status {}", response.status)))
}

/// Loops until the host stops it.
fn spin() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

/// Spins when `TEST_FAULTS_SPIN` names `stage`.
fn spin_if_told(stage: &str) {
    if std::env::var("TEST_FAULTS_SPIN").is_ok_and(|value| value == stage) {
        spin()
    }
}

fn answer(task: &Task, output: String) -> TaskResponse {
    TaskResponse {
        output,
        result_json: "{}".into(),
        federation_session_id: task.federation_session_id.clone(),
        resumed: false,
    }
}

/// The number after the `:` in a goal.
fn number(goal: &str) -> Result<usize, AdapterError> {
    goal.split_once(':')
        .and_then(|(_, n)| n.parse().ok())
        .ok_or_else(|| AdapterError::InvalidInput(format!("bad number in {goal:?}")))
}

#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = std::hint::black_box([depth; 64]);
    recurse(depth + 1) + frame[0]
}

/// What the sandbox lets the guest see of files and the environment.
fn snoop() -> String {
    let file = match std::fs::read_to_string("/etc/passwd") {
        Ok(text) => format!("READ {} bytes", text.len()),
        Err(e) => format!("denied ({e})"),
    };
    let dir = match std::fs::read_dir("/") {
        Ok(entries) => format!("LISTED {} entries", entries.count()),
        Err(e) => format!("denied ({e})"),
    };
    let env: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    format!("file: {file}; dir: {dir}; env: [{}]", env.join(", "))
}

/// Sends a request with a forged `traceparent`; the host must replace it.
fn send_forged(task: &Task) -> Result<TaskResponse, AdapterError> {
    send_with_headers(
        task,
        vec![(
            "traceparent".into(),
            "00-0badc0de0badc0de0badc0de0badc0d-0badc0de0badc0d0-01".into(),
        )],
    )
}

/// POSTs a tiny task body to the wrapper with extra `headers`; answers its reply body.
fn send_with_headers(
    task: &Task,
    mut headers: Vec<(String, String)>,
) -> Result<TaskResponse, AdapterError> {
    headers.push(("content-type".into(), "application/json".into()));
    let request = Request {
        method: Method::Post,
        url: format!("{}/v1/run_crew", task.wrapper_url),
        headers,
        body: format!(r#"{{"goal":"forged","request_id":"{}"}}"#, task.request_id).into_bytes(),
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
