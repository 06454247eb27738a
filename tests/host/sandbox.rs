//! The sandbox against hostile adapters: each misbehaviour of the test-faults adapter
//! (under a policy manifest) is contained with a clear status while a well-behaved
//! adapter's tasks keep succeeding; per-adapter limits and policy changes apply.

mod support;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use support::{HostProcess, dist_dir, run, start_stub_and_sink, stub_wrapper::StubWrapper, task};
use tonic::Code;

const SECRET: &str = "host-secret-123";

/// The hostile adapter's policy: the wrapper only, 20 requests per task, a secret
/// header for the wrapper, 16 MiB, 300 ms of CPU, one granted env var.
fn manifest(max_concurrent_tasks: usize) -> String {
    format!(
        r#"
[outbound]
allow = ["wrapper"]
max_requests_per_task = 20

[[outbound.headers]]
origin = "wrapper"
name = "x-api-key"
value = "{SECRET}"

[limits]
max_memory_mib = 16
cpu_budget_ms = 300
max_concurrent_tasks = {max_concurrent_tasks}

[wasi]
env = {{ GRANTED = "yes" }}
"#
    )
}

struct Setup {
    dir: tempfile::TempDir,
    host: HostProcess,
    stub: StubWrapper,
    sink: otlp_sink::OtlpSink,
}

async fn start(max_concurrent_tasks: usize) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("adapters/crewai.wasm", "crewai.wasm"),
        ("test-adapters/test-faults.wasm", "test-faults.wasm"),
    ] {
        std::fs::copy(dist_dir().join(from), dir.path().join(to)).unwrap();
    }
    std::fs::write(
        dir.path().join("test-faults.toml"),
        manifest(max_concurrent_tasks),
    )
    .unwrap();
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start_in(dir.path(), &stub_url, &sink.grpc_endpoint(), &[]);
    Setup {
        dir,
        host,
        stub,
        sink,
    }
}

impl Setup {
    async fn fault(&self, goal: &str) -> Result<federation_proto::TaskResponse, tonic::Status> {
        let mut client = self.host.client().await;
        run(
            &mut client,
            task("test-faults", goal),
            None,
            Some(Duration::from_secs(20)),
        )
        .await
    }

    async fn expect(&self, goal: &str, code: Code, needles: &[&str]) -> Duration {
        let started = Instant::now();
        let status = self
            .fault(goal)
            .await
            .expect_err(&format!("{goal} should fail"));
        assert_eq!(status.code(), code, "{goal}: {}", status.message());
        for needle in needles {
            assert!(
                status.message().contains(needle),
                "{goal}: {needle:?} not in {:?}",
                status.message()
            );
        }
        started.elapsed()
    }
}

/// Accepts nothing, but counts the connections that reach it.
fn listener_counting_connections() -> (std::net::TcpListener, String) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/exfiltrate", listener.local_addr().unwrap());
    (listener, url)
}

#[tokio::test]
async fn hostile_adapters_are_contained_while_a_good_one_keeps_serving() {
    let setup = Arc::new(start(64).await);

    // The well-behaved adapter, in a loop for the whole suite.
    let stop = Arc::new(AtomicBool::new(false));
    let good = {
        let (setup, stop) = (setup.clone(), stop.clone());
        tokio::spawn(async move {
            let mut client = setup.host.client().await;
            let mut done = 0;
            while !stop.load(Ordering::Relaxed) {
                let response = run(&mut client, task("crewai", "behave"), None, None)
                    .await
                    .unwrap_or_else(|s| panic!("the good adapter failed: {s:?}"));
                assert_eq!(response.output, "stub answer to: behave");
                done += 1;
            }
            done
        })
    };

    // Infinite loop: stopped by the CPU budget, long before the 20 s deadline.
    let took = setup
        .expect("spin", Code::ResourceExhausted, &["CPU budget of 300ms"])
        .await;
    assert!(took < Duration::from_secs(10), "spin ran {took:?}");
    // Memory bomb: stopped at the policy's 16 MiB.
    setup
        .expect(
            "alloc:64",
            Code::ResourceExhausted,
            &["memory limit", "16777216"],
        )
        .await;
    // Stack overflow and panic: traps, reported with their cause. (Rust's shadow stack
    // lives in linear memory, so its overflow is an out-of-bounds access.)
    setup
        .expect("recurse", Code::Internal, &["trapped", "wasm trap"])
        .await;
    setup
        .expect("trap", Code::Internal, &["asked to trap"])
        .await;
    // A destination off the allow-list: denied, and no packet reaches it.
    let (listener, url) = listener_counting_connections();
    setup
        .expect(
            &format!("call:{url}"),
            Code::Internal,
            &["Denied", "allow-list"],
        )
        .await;
    assert!(
        listener
            .accept()
            .is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock),
        "a connection reached the denied destination"
    );
    // A huge output: refused by the host.
    setup
        .expect(
            "huge-output:8",
            Code::ResourceExhausted,
            &["bytes of output"],
        )
        .await;
    // Thousands of calls: the 21st is denied; the wrapper saw exactly 20.
    let request = task("test-faults", "many-calls:2000");
    let ping_path = format!("/ping/{}", request.request_id);
    let status = run(&mut setup.host.client().await, request, None, None)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    assert!(status.message().contains("call 20"), "{}", status.message());
    assert!(
        status.message().contains("20 requests per task"),
        "{}",
        status.message()
    );
    assert_eq!(setup.stub.requests_to(&ping_path).len(), 20);

    // Its own traceparent and the secret header: both replaced by the host's.
    let forged = setup.fault("forge-secret").await.unwrap();
    let sent = setup
        .stub
        .requests_with_goal("forged")
        .into_iter()
        .find(|r| r.body["request_id"] == forged.request_id)
        .expect("the request reached the stub");
    assert_eq!(sent.header("x-api-key"), Some(SECRET));
    let forged = setup.fault("forge").await.unwrap();
    let sent = setup
        .stub
        .requests_with_goal("forged")
        .into_iter()
        .find(|r| r.body["request_id"] == forged.request_id)
        .unwrap();
    let traceparent = sent.header("traceparent").unwrap();
    assert!(traceparent.contains(&forged.trace_id), "{traceparent}");
    assert!(!traceparent.contains("0badc0de"), "{traceparent}");

    // Files and environment: nothing but the granted variable.
    let snooped = setup.fault("snoop").await.unwrap().output;
    assert!(snooped.contains("file: denied"), "{snooped}");
    assert!(snooped.contains("dir: denied"), "{snooped}");
    assert!(snooped.ends_with("env: [GRANTED=yes]"), "{snooped}");

    // A flood of stdout/stderr: captured into the host's log under the adapter's name,
    // capped.
    setup.fault("print:256").await.unwrap();

    stop.store(true, Ordering::Relaxed);
    let good_tasks = good.await.unwrap();
    assert!(good_tasks > 0);
    eprintln!("the good adapter served {good_tasks} tasks during the hostile suite");

    // 512 KiB printed; what reaches the log is capped and says what it dropped.
    let log = setup.host.log();
    let printed = log.matches('y').count();
    assert!(printed > 1000, "guest output not in the log");
    assert!(
        printed < 64 * 1024,
        "guest output not capped: {printed} bytes"
    );
    assert!(log.contains("bytes after the first 16384 dropped]"));

    // The adapter span carries what each task used.
    let spans = setup
        .sink
        .wait_for(Duration::from_secs(10), |spans| {
            spans.iter().any(|s| {
                s.name == "adapter test-faults" && s.attr_i64("adapter.outbound_denied") == Some(1)
            })
        })
        .await;
    assert!(spans.is_ok(), "no adapter span recorded the denied call");

    // And the adapter's metrics reach the collector: errors by code, traps, denied
    // calls and its memory high-water mark, each labelled with the adapter.
    let faults = |p: &otlp_sink::MetricPoint| p.attr_str("adapter.name") == Some("test-faults");
    let points = setup
        .sink
        .wait_for_metrics(Duration::from_secs(15), |points| {
            let has = |name: &str, pred: &dyn Fn(&otlp_sink::MetricPoint) -> bool| {
                points
                    .iter()
                    .any(|p| p.name == name && faults(p) && pred(p))
            };
            has("federation.adapter.errors", &|p| {
                p.attr_str("error.type") == Some("RESOURCE_EXHAUSTED") && p.value >= Some(3.0)
            }) && has("federation.adapter.traps", &|p| p.value >= Some(2.0))
                && has("federation.adapter.outbound_denied", &|p| {
                    p.value >= Some(2.0)
                })
                && has("federation.adapter.memory_peak", &|p| {
                    p.max.is_some_and(|max| max >= (8 << 20) as f64)
                })
                && has("federation.adapter.cpu_time", &|p| {
                    p.count.is_some_and(|n| n > 0)
                })
        })
        .await;
    if let Err(error) = points {
        panic!(
            "adapter metrics missing: {error}\n{:#?}",
            setup
                .sink
                .metric_points()
                .iter()
                .filter(|p| faults(p))
                .collect::<Vec<_>>()
        );
    }
}

#[tokio::test]
async fn an_adapter_over_its_task_limit_gets_resource_exhausted_and_a_policy_change_applies() {
    let setup = start(1).await;
    let mut client = setup.host.client().await;
    let slow = tokio::spawn(async move {
        run(&mut client, task("test-faults", "sleep:1500"), None, None).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    setup
        .expect(
            "echo",
            Code::ResourceExhausted,
            &["running 1 tasks", "policy"],
        )
        .await;
    // Other adapters are not affected.
    run(
        &mut setup.host.client().await,
        task("crewai", "meanwhile"),
        None,
        None,
    )
    .await
    .unwrap();
    slow.await.unwrap().unwrap();

    // Raising the limit in the manifest applies without touching the component.
    let path = setup.dir.path().join("test-faults.toml");
    write_atomically(&path, &manifest(8));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut a = setup.host.client().await;
        let mut b = setup.host.client().await;
        let (first, second) = tokio::join!(
            run(&mut a, task("test-faults", "sleep:300"), None, None),
            async {
                tokio::time::sleep(Duration::from_millis(50)).await;
                run(&mut b, task("test-faults", "echo"), None, None).await
            }
        );
        first.unwrap();
        if second.is_ok() {
            break;
        }
        assert!(Instant::now() < deadline, "the new manifest never applied");
    }

    // A broken manifest is rejected and the last good policy keeps serving.
    write_atomically(&path, "[limits]\nmax_memory_mib = 100000\n");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(setup.fault("echo").await.is_ok());
    assert!(setup.host.log().contains("above the host's ceiling"));
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_file_name(".manifest.tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}
