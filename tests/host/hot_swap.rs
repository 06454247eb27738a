//! Adapter lifecycle on a running host: files dropped into, changed in and removed from
//! the adapters directory are applied without a restart; bad files never replace a
//! working version; swaps under continuous load fail no request; AdminService lists,
//! reloads, rolls back and uploads, behind its token.

mod support;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use federation_proto::admin_service_client::AdminServiceClient;
use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::{
    AdapterStatus, ListAdaptersRequest, ListAdaptersResponse, LoadAdapterRequest,
    ReloadAdaptersRequest, RollbackAdapterRequest, TaskResponse, adapter_status,
};
use sha2::{Digest, Sha256};
use support::{HostProcess, dist_dir, eventually, run, start_stub_and_sink, task};
use tonic::{Code, transport::Channel};

const TOKEN: &str = "test-admin-token";
const V1: &str = "1.0.0";
const V2: &str = "2.0.0";

fn build(version: &str) -> Vec<u8> {
    let path = dist_dir().join(format!("test-adapters/test-faults-{version}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; run scripts/build-adapters.sh first",
            path.display()
        )
    })
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Writes `bytes` to `dir/name` the way deployment tools should: a hidden temporary
/// file, then a rename (the watcher never sees a half-written file).
fn install_atomically(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

/// A host serving `dir` (with the admin token) against a stub wrapper.
struct Setup {
    dir: tempfile::TempDir,
    host: HostProcess,
    _stub: support::stub_wrapper::StubWrapper,
    _sink: otlp_sink::OtlpSink,
}

impl Setup {
    /// `files`: (file name, bytes) present before the host starts.
    async fn start(files: &[(&str, &[u8])], extra: &[&str]) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        for (name, bytes) in files {
            std::fs::write(dir.path().join(name), bytes).unwrap();
        }
        let (stub, stub_url, sink) = start_stub_and_sink().await;
        let mut args = vec!["--admin-token", TOKEN];
        args.extend_from_slice(extra);
        let host = HostProcess::start_in(dir.path(), &stub_url, &sink.grpc_endpoint(), &args);
        Setup {
            dir,
            host,
            _stub: stub,
            _sink: sink,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    async fn client(&self) -> FederationServiceClient<Channel> {
        self.host.client().await
    }

    async fn admin(&self) -> AdminServiceClient<Channel> {
        AdminServiceClient::new(self.host.channel().await)
    }

    async fn echo(&self) -> Result<TaskResponse, tonic::Status> {
        run(
            &mut self.client().await,
            task("test-faults", "echo"),
            None,
            None,
        )
        .await
    }

    async fn list(&self) -> ListAdaptersResponse {
        self.admin()
            .await
            .list_adapters(authed(ListAdaptersRequest {}, Some(TOKEN)))
            .await
            .unwrap()
            .into_inner()
    }

    async fn status(&self, name: &str) -> Option<AdapterStatus> {
        self.list()
            .await
            .adapters
            .into_iter()
            .find(|a| a.name == name)
    }
}

fn authed<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

const SWAP_LIMIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_dropped_in_file_is_served_and_a_removed_one_unloaded() {
    let setup = Setup::start(&[], &[]).await;
    let status = setup.echo().await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());

    install_atomically(setup.dir.path(), "test-faults.wasm", &build(V1));
    eventually("the new adapter serves", SWAP_LIMIT, || async {
        setup.echo().await.is_ok()
    })
    .await;
    let response = setup.echo().await.unwrap();
    assert_eq!(response.adapter_version, V1);
    assert_eq!(response.adapter_digest, digest(&build(V1)));

    std::fs::remove_file(setup.path("test-faults.wasm")).unwrap();
    eventually("the removed adapter is unloaded", SWAP_LIMIT, || async {
        setup
            .echo()
            .await
            .is_err_and(|status| status.code() == Code::NotFound)
    })
    .await;
    assert!(setup.list().await.adapters.is_empty());
}

#[tokio::test]
async fn swaps_under_continuous_load_fail_no_request() {
    let (v1, v2) = (build(V1), build(V2));
    let setup = Arc::new(Setup::start(&[("test-faults.wasm", &v1)], &[]).await);
    let stop = Arc::new(AtomicBool::new(false));
    // Bounded in time (the stop flag) and in count (per worker).
    let mut workers = Vec::new();
    for worker in 0..8 {
        let (setup, stop) = (setup.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut client = setup.client().await;
            let mut seen = Vec::new();
            for i in 0..20_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Some tasks stay in flight across swaps.
                let goal = if (worker + i) % 5 == 0 {
                    "sleep:30"
                } else {
                    "echo"
                };
                let started = Instant::now();
                let result = run(&mut client, task("test-faults", goal), None, None).await;
                seen.push((started, result.map(|r| r.adapter_version)));
            }
            seen
        }));
    }

    let swaps = 16;
    let mut last_swap_done = Instant::now();
    for swap in 0..swaps {
        let (bytes, version) = if swap % 2 == 0 { (&v2, V2) } else { (&v1, V1) };
        if swap % 4 == 3 {
            // Rewritten in place, as `cp` does: the watcher may see a truncated file
            // first, which must be rejected while the old version keeps serving.
            std::fs::write(setup.path("test-faults.wasm"), bytes).unwrap();
        } else {
            install_atomically(setup.dir.path(), "test-faults.wasm", bytes);
        }
        let want = digest(bytes);
        eventually(
            &format!("swap {swap} to {version} applies"),
            SWAP_LIMIT,
            || async {
                setup
                    .status("test-faults")
                    .await
                    .and_then(|s| s.current)
                    .is_some_and(|current| current.digest == want)
            },
        )
        .await;
        last_swap_done = Instant::now();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);

    let mut total = 0;
    let mut versions = std::collections::BTreeSet::new();
    for worker in workers {
        for (started, result) in worker.await.unwrap() {
            total += 1;
            let version = result.unwrap_or_else(|status| {
                panic!(
                    "a request failed during swaps: {status:?}\n{}",
                    setup.host.log()
                )
            });
            assert!(
                version == V1 || version == V2,
                "unexpected version {version}"
            );
            // The last swap (index 15, odd) went to V1; tasks started after it was
            // applied run on it only.
            if started > last_swap_done {
                assert_eq!(
                    version, V1,
                    "a task started after the last swap ran on the old version"
                );
            }
            versions.insert(version);
        }
    }
    assert!(
        total > 100,
        "too little load to mean anything: {total} requests"
    );
    assert_eq!(versions.len(), 2, "both versions served: {versions:?}");
    eprintln!("{total} requests over {swaps} swaps, none failed");
}

#[tokio::test]
async fn an_in_flight_task_finishes_on_the_version_it_started_on() {
    let setup = Setup::start(&[("test-faults.wasm", &build(V1))], &[]).await;
    let mut client = setup.client().await;
    let slow = tokio::spawn(async move {
        run(&mut client, task("test-faults", "sleep:1500"), None, None).await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let uploaded = setup
        .admin()
        .await
        .load_adapter(authed(
            LoadAdapterRequest {
                component: build(V2),
                ..Default::default()
            },
            Some(TOKEN),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(uploaded.current.unwrap().version, V2);
    assert_eq!(setup.echo().await.unwrap().adapter_version, V2);
    assert_eq!(slow.await.unwrap().unwrap().adapter_version, V1);
}

#[tokio::test]
async fn bad_files_are_rejected_and_the_old_version_keeps_serving() {
    let v1 = build(V1);
    let setup = Setup::start(&[("test-faults.wasm", &v1)], &[]).await;
    let v2 = build(V2);
    let bad: [(&str, Vec<u8>, &str); 5] = [
        (
            "truncated",
            v2[..v2.len() / 2].to_vec(),
            "not a valid adapter component",
        ),
        (
            "not wasm",
            b"#!/bin/sh\necho not wasm\n".to_vec(),
            "not a valid adapter component",
        ),
        ("empty", Vec::new(), "not a valid adapter component"),
        // A core module, not a component.
        (
            "core module",
            b"\0asm\x01\0\0\0".to_vec(),
            "not a valid adapter component",
        ),
        // A valid component of another world (exports nothing).
        (
            "wrong world",
            b"\0asm\x0d\0\x01\0".to_vec(),
            "does not fit the agent-backend world",
        ),
    ];
    let mut admin = setup.admin().await;
    for (kind, bytes, reason) in bad {
        install_atomically(setup.dir.path(), "test-faults.wasm", &bytes);
        // A forced reload reports the rejection whether or not the watcher saw the
        // file first.
        let report = admin
            .reload_adapters(authed(ReloadAdaptersRequest {}, Some(TOKEN)))
            .await
            .unwrap()
            .into_inner();
        assert!(report.loaded.is_empty(), "{kind}: {report:?}");
        let rejection = report
            .rejected
            .iter()
            .find(|r| r.source.ends_with("test-faults.wasm"))
            .unwrap_or_else(|| panic!("{kind} was not rejected: {report:?}"));
        assert!(
            rejection.reason.contains(reason),
            "{kind}: {}",
            rejection.reason
        );
        assert_eq!(rejection.digest, digest(&bytes), "{kind}");

        let response = setup.echo().await.unwrap();
        assert_eq!(response.adapter_digest, digest(&v1), "{kind} replaced v1");
        let status = setup.status("test-faults").await.unwrap();
        assert_eq!(
            status.state(),
            adapter_status::State::ServingUpdateRejected,
            "{kind}"
        );
        assert!(
            status.last_error.contains(reason),
            "{kind}: {}",
            status.last_error
        );
    }
    let listed = setup.list().await;
    assert!(listed.rejected_total >= 5, "{listed:?}");
    assert!(listed.rejections.len() >= 5, "{listed:?}");

    // A good file clears the error.
    install_atomically(setup.dir.path(), "test-faults.wasm", &v2);
    eventually("v2 applies", SWAP_LIMIT, || async {
        setup.echo().await.is_ok_and(|r| r.adapter_version == V2)
    })
    .await;
    let status = setup.status("test-faults").await.unwrap();
    assert_eq!(status.state(), adapter_status::State::Serving);
    assert!(status.last_error.is_empty());

    // A second file claiming a served name is rejected, and the first keeps serving.
    install_atomically(setup.dir.path(), "duplicate.wasm", &v1);
    let report = admin
        .reload_adapters(authed(ReloadAdaptersRequest {}, Some(TOKEN)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        report
            .rejected
            .iter()
            .any(|r| r.reason.contains("already served")),
        "{report:?}"
    );
    assert_eq!(setup.echo().await.unwrap().adapter_version, V2);
}

#[tokio::test]
async fn rollback_restores_the_previous_digest_and_admin_calls_need_the_token() {
    let (v1, v2) = (build(V1), build(V2));
    let setup = Setup::start(&[("test-faults.wasm", &v1)], &[]).await;
    let mut admin = setup.admin().await;

    for token in [None, Some("wrong-token")] {
        let status = admin
            .load_adapter(authed(
                LoadAdapterRequest {
                    component: v2.clone(),
                    ..Default::default()
                },
                token,
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
        let status = admin
            .list_adapters(authed(ListAdaptersRequest {}, token))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{token:?}");
    }
    assert_eq!(setup.echo().await.unwrap().adapter_version, V1);

    let status = admin
        .rollback_adapter(authed(
            RollbackAdapterRequest {
                name: "test-faults".into(),
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "{}",
        status.message()
    );
    let status = admin
        .rollback_adapter(authed(
            RollbackAdapterRequest {
                name: "nope".into(),
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    let status = admin
        .load_adapter(authed(
            LoadAdapterRequest {
                component: b"garbage".to_vec(),
                ..Default::default()
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(status.message().contains("not a valid adapter component"));

    let loaded = admin
        .load_adapter(authed(
            LoadAdapterRequest {
                component: v2.clone(),
                ..Default::default()
            },
            Some(TOKEN),
        ))
        .await
        .unwrap()
        .into_inner();
    let current = loaded.current.unwrap();
    assert_eq!(
        (current.version.as_str(), current.source.as_str()),
        (V2, "upload")
    );
    assert_eq!(current.digest, digest(&v2));
    assert_eq!(loaded.previous.unwrap().digest, digest(&v1));
    assert_eq!(setup.echo().await.unwrap().adapter_digest, digest(&v2));

    let rolled = admin
        .rollback_adapter(authed(
            RollbackAdapterRequest {
                name: "test-faults".into(),
            },
            Some(TOKEN),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rolled.current.unwrap().digest, digest(&v1));
    assert_eq!(rolled.previous.unwrap().digest, digest(&v2));
    let response = setup.echo().await.unwrap();
    assert_eq!(
        (response.adapter_version.as_str(), response.adapter_digest),
        (V1, digest(&v1))
    );

    // A second rollback undoes the first.
    admin
        .rollback_adapter(authed(
            RollbackAdapterRequest {
                name: "test-faults".into(),
            },
            Some(TOKEN),
        ))
        .await
        .unwrap();
    assert_eq!(setup.echo().await.unwrap().adapter_version, V2);
    let listed = setup.status("test-faults").await.unwrap();
    assert!(listed.current.unwrap().tasks_served >= 2);
}

#[tokio::test]
async fn uploads_over_the_size_limit_and_a_host_without_token_are_refused() {
    let setup = Setup::start(&[], &["--max-upload-mib", "1"]).await;
    let status = setup
        .admin()
        .await
        .load_adapter(authed(
            LoadAdapterRequest {
                component: vec![0; 3 << 19],
                ..Default::default()
            },
            Some(TOKEN),
        ))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::ResourceExhausted,
        "{}",
        status.message()
    );

    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let host = HostProcess::start_in(dir.path(), &stub_url, &sink.grpc_endpoint(), &[]);
    let status = AdminServiceClient::new(host.channel().await)
        .list_adapters(authed(ListAdaptersRequest {}, Some(TOKEN)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unimplemented, "{}", status.message());
}

#[tokio::test]
async fn a_restart_loads_known_adapters_from_the_compile_cache() {
    // The first start compiles (unless another test already did); the second must not.
    drop(Setup::start(&[("test-faults.wasm", &build(V1))], &[]).await);
    let setup = Setup::start(&[("test-faults.wasm", &build(V1))], &[]).await;
    let current = setup.status("test-faults").await.unwrap().current.unwrap();
    assert!(current.from_cache, "{current:?}");
    assert!(current.load_us > 0);
}

#[tokio::test]
async fn the_adapters_subcommand_drives_admin_service() {
    let setup = Setup::start(&[("test-faults.wasm", &build(V1))], &[]).await;
    let v2_path = dist_dir().join("test-adapters/test-faults-2.0.0.wasm");
    let endpoint = setup.host.endpoint();
    let cli = move |args: &[&str], token: &str| {
        let output = std::process::Command::new(federation_testkit::process::host_bin())
            .args(["adapters", "--addr", &endpoint])
            .args(args)
            .env("FEDERATION_ADMIN_TOKEN", token)
            .output()
            .unwrap();
        (
            output.status.success(),
            String::from_utf8_lossy(&output.stdout).into_owned()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let v2_arg = v2_path.display().to_string();
    let (ok, printed) = cli(&["load", &v2_arg], TOKEN);
    assert!(ok, "{printed}");
    assert!(printed.contains("current  test-faults 2.0.0"), "{printed}");
    let (ok, printed) = cli(&["rollback", "test-faults"], TOKEN);
    assert!(ok, "{printed}");
    assert!(printed.contains("current  test-faults 1.0.0"), "{printed}");
    let (ok, printed) = cli(&["list"], TOKEN);
    assert!(ok, "{printed}");
    assert!(printed.contains("test-faults [SERVING]"), "{printed}");
    assert!(
        printed.contains("previous test-faults 2.0.0 sha256:"),
        "{printed}"
    );
    let (ok, printed) = cli(&["list"], "wrong");
    assert!(!ok);
    assert!(printed.contains("error: UNAUTHENTICATED"), "{printed}");
    assert!(printed.contains("reason: UNAUTHENTICATED"), "{printed}");
    assert_eq!(setup.echo().await.unwrap().adapter_version, V1);
}

/// The test-faults build under a manifest that makes its validation spin at `stage`
/// (`describe` or `run-task`: the self-test) until the host's budget stops it.
fn spinning_policy(stage: &str) -> String {
    format!("[wasi]\nenv = {{ TEST_FAULTS_SPIN = \"{stage}\" }}\n")
}

/// Waits until the host logged that it started validating `digest` from `source`.
async fn validation_started(setup: &Setup, source: &str, digest: &str) {
    eventually(
        "the hostile build's validation starts",
        SWAP_LIMIT,
        || async {
            setup.host.log().lines().any(|line| {
                line.contains("validating adapter")
                    && line.contains(source)
                    && line.contains(digest)
            })
        },
    )
    .await;
}

/// Whether `listing` reports a rejection of `digest` from `source`.
fn rejected(listing: &ListAdaptersResponse, source: &str, digest: &str) -> bool {
    listing
        .rejections
        .iter()
        .any(|r| r.source.contains(source) && r.digest == digest)
}

/// A build whose describe() or self-test spins holds the lifecycle for its whole
/// validation budget; ListAdapters answers meanwhile. Ordering, not timing: the
/// listing taken after validation started does not yet hold the rejection that ends
/// that validation (a listing that waited for it would).
#[tokio::test]
async fn list_adapters_answers_while_a_spinning_build_is_validated() {
    let v1 = build(V1);
    let setup = Setup::start(&[("test-faults.wasm", &v1)], &[]).await;
    let hostile = std::fs::read(dist_dir().join("test-adapters/test-faults.wasm")).unwrap();
    let hostile_digest = digest(&hostile);

    // An upload whose describe() spins.
    let mut admin = setup.admin().await;
    let upload = LoadAdapterRequest {
        component: hostile.clone(),
        policy: spinning_policy("describe"),
    };
    let load = tokio::spawn(async move { admin.load_adapter(authed(upload, Some(TOKEN))).await });
    validation_started(&setup, "upload", &hostile_digest).await;
    let during = setup.list().await;
    assert!(
        !rejected(&during, "upload", &hostile_digest),
        "ListAdapters waited for the spinning describe() to be rejected"
    );
    let serving = during.adapters.iter().find(|a| a.name == "test-faults");
    assert_eq!(
        serving.unwrap().current.as_ref().unwrap().digest,
        digest(&v1)
    );
    let status = load.await.unwrap().unwrap_err();
    assert!(status.message().contains("describe"), "{status:?}");
    assert!(rejected(&setup.list().await, "upload", &hostile_digest));

    // A file dropped into the directory whose self-test spins.
    std::fs::write(setup.path("spinning.toml"), spinning_policy("run-task")).unwrap();
    install_atomically(setup.dir.path(), "spinning.wasm", &hostile);
    let file = setup.path("spinning.wasm").display().to_string();
    validation_started(&setup, &file, &hostile_digest).await;
    let during = setup.list().await;
    assert!(
        !rejected(&during, &file, &hostile_digest),
        "ListAdapters waited for the spinning self-test to be rejected"
    );
    eventually("the spinning self-test is rejected", SWAP_LIMIT, || async {
        rejected(&setup.list().await, &file, &hostile_digest)
    })
    .await;
    let listing = setup.list().await;
    let rejection = listing.rejections.iter().find(|r| r.source == file);
    assert!(
        rejection.unwrap().reason.contains("self-test"),
        "{listing:?}"
    );
    assert_eq!(setup.echo().await.unwrap().adapter_version, V1);
}
