//! The peer-client suites' setup (`a2a.rs`, `mcp.rs`): the host behind an auth file of
//! two principals (alice and bob) with one HTTP door, and the official client's script
//! run against that door.

use std::{path::PathBuf, process::Command, time::Duration};

use federation_testkit::stub::StubWrapper;
use otlp_sink::OtlpSink;

use super::{HostProcess, start_stub_and_sink, uuid_like};

/// One run of a peer client against a door, and what the suite checks after it.
pub struct ClientRun {
    pub stub: StubWrapper,
    pub sink: OtlpSink,
    pub host: HostProcess,
    /// The script's summary (the JSON of its last line).
    pub summary: serde_json::Value,
}

/// Starts the stub wrapper, the OTLP receiver and the host serving `door` to two
/// principals, alice and bob (tokens `alice`, `bob`), then runs the client script
/// `script` with the door's URL (`http://ADDRESS{path}`), the two tokens and a
/// `traceparent` in trace `trace_id`.
pub async fn run_against_door(
    door: &str,
    path: &str,
    script: &str,
    alice: &str,
    bob: &str,
    trace_id: &str,
) -> ClientRun {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let auth = auth_file(door, alice, bob);
    let (host, address) = start_host_with_door(&stub_url, &sink, &auth, door);
    let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-01");
    let url = format!("http://{address}{path}");
    let args = vec![url, alice.into(), bob.into(), traceparent];
    let summary = run_client(&host, script, args).await;
    ClientRun {
        stub,
        sink,
        host,
        summary,
    }
}

/// The peer clients' venv (`A2A_CLIENT_VENV`: a2a-sdk and mcp, else made by
/// scripts/a2a-client-venv.sh).
pub fn client_python() -> PathBuf {
    let venv = std::env::var("A2A_CLIENT_VENV").unwrap_or_else(|_| {
        let script =
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../scripts/a2a-client-venv.sh");
        let output = Command::new("bash")
            .arg(script)
            .output()
            .expect("running a2a-client-venv.sh");
        assert!(
            output.status.success(),
            "installing the peer clients failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout)
            .trim()
            .lines()
            .last()
            .unwrap_or_default()
            .to_string()
    });
    PathBuf::from(venv).join("bin/python")
}

/// An auth file (in a fresh directory named after `suite`) of two principals, alice
/// and bob, each with its token.
pub fn auth_file(suite: &str, alice: &str, bob: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{suite}-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("auth.toml");
    let text = format!(
        "[[principal]]\nname = \"alice\"\ntoken = [\"{alice}\"]\n\n\
         [[principal]]\nname = \"bob\"\ntoken = [\"{bob}\"]\n"
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// The host in front of `stub_url`, callers authenticated by `auth`, serving one door
/// (`door`: `a2a` or `mcp`) on a loopback port; the door's address, from its line.
pub fn start_host_with_door(
    stub_url: &str,
    sink: &OtlpSink,
    auth: &std::path::Path,
    door: &str,
) -> (HostProcess, String) {
    let flag = format!("--{door}-listen");
    let mut host = HostProcess::start(
        stub_url,
        &sink.grpc_endpoint(),
        &["--auth-file", auth.to_str().unwrap(), &flag, "127.0.0.1:0"],
    );
    let line = host.stdout_line();
    let prefix = format!("agent-federation {door} listening on ");
    let address = line
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("no {door} address line, got {line:?}"))
        .to_string();
    (host, address)
}

/// Runs the client script `tests/host/{script}` with `args`, which must succeed; its
/// summary (the JSON of its last line).
pub async fn run_client(host: &HostProcess, script: &str, args: Vec<String>) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("host")
        .join(script);
    let python = client_python();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(path)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("running the client script: {e}"))
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}\n---- host log ----\n{}",
        String::from_utf8_lossy(&output.stderr),
        host.log()
    );
    serde_json::from_str(stdout.trim().lines().last().unwrap()).unwrap()
}

/// The caller's trace went on through the host to the wrapper: the `traceparent` the
/// wrapper got (`sent`) is in `trace_id`, and so are the door's spans (`door_span`
/// picks the one waited for, `server_span` names the door's server span) and the
/// adapter's.
pub async fn assert_trace_joined(
    sink: &OtlpSink,
    trace_id: &str,
    sent: Option<&str>,
    door_span: impl Fn(&str) -> bool,
    server_span: &str,
) {
    let sent = sent.expect("a traceparent to the wrapper");
    assert_eq!(sent.split('-').nth(1), Some(trace_id), "{sent}");
    let spans = sink
        .wait_for(Duration::from_secs(30), |spans| {
            spans
                .iter()
                .any(|s| s.trace_id == trace_id && door_span(&s.name))
                && spans
                    .iter()
                    .any(|s| s.trace_id == trace_id && s.name.starts_with("adapter "))
        })
        .await
        .unwrap_or_else(|e| panic!("the host's spans did not join the caller's trace: {e}"));
    assert!(
        spans
            .iter()
            .any(|s| s.trace_id == trace_id && s.name == server_span && s.kind == "server"),
        "{}",
        sink.render_tree(trace_id)
    );
}
