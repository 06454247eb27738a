//! The `otlp-sink` binary as the demo and e2e tests run it: ports from `:0`, the ready
//! line, a real export, `--out` JSON lines, and a clean exit on SIGTERM.

mod common;

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
};

use common::{export, span};
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use otlp_sink::RecordedSpan;
use prost::Message;

#[tokio::test]
async fn binary_reports_its_ports_records_spans_and_stops_on_sigterm() {
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("otlp-sink-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&out);
    let mut child = Command::new(env!("CARGO_BIN_EXE_otlp-sink"))
        .args(["--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();

    let mut ready = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut ready)
        .unwrap();
    let words: Vec<_> = ready.split_whitespace().collect();
    assert_eq!(words.len(), 3, "{ready:?}");
    assert_eq!(words[0], "otlp-sink");
    let grpc = words[1].strip_prefix("grpc=").unwrap();
    let http = words[2].strip_prefix("http=").unwrap();
    assert!(grpc.starts_with("http://127.0.0.1:") && !grpc.ends_with(":0"));
    assert!(http.starts_with("http://127.0.0.1:") && !http.ends_with(":0"));

    let request = export("cli", vec![span("from-test", 1, None, SpanKind::Server)]);
    let response = common::post_traces(
        http,
        "application/x-protobuf",
        request.encode_to_vec(),
        true,
    )
    .await;
    assert_eq!(response.status(), 200);
    let listed: Vec<RecordedSpan> = reqwest::get(format!("{http}/spans"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert!(child.wait().unwrap().success(), "exits cleanly on SIGTERM");

    let lines = std::fs::read_to_string(&out).unwrap();
    let written: Vec<RecordedSpan> = lines
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(written, listed);
}
