//! The doors around the sandbox, each tried against a real host process: outbound TLS
//! (an https wrapper behind a CA made by the test), proxies from the environment
//! ignored, the host's wrapper credential (sent to the wrapper only, never forgeable by
//! an adapter), manifest secrets confined, the compile cache refused when others can
//! write it and re-verified when an artifact is tampered with, the adapters directory
//! (huge files and symlinks out refused unread), and the per-task log and background
//! results budgets.

mod support;

use std::{
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use federation_proto::admin_service_client::AdminServiceClient;
use federation_proto::agent_task_status::State;
use federation_proto::{
    CancelAgentTaskRequest, GetAgentTaskRequest, LoadAdapterRequest, ReloadAdaptersRequest,
};
use federation_testkit::process::{Host, Process};
use support::{
    HostProcess, dist_dir, eventually, run, start_stub_and_sink, stub_wrapper::StubWrapper, task,
};
use tokio_rustls::rustls;

const TOKEN: &str = "doors-admin-token";
const CREDENTIAL_HEADER: &str = "x-federation-host-credential";

fn copy_adapters(dir: &Path, names: &[&str]) {
    for name in names {
        let from = match *name {
            "test-faults" => "test-adapters/test-faults.wasm",
            other => &format!("adapters/{other}.wasm"),
        };
        std::fs::copy(dist_dir().join(from), dir.join(format!("{name}.wasm"))).unwrap();
    }
}

fn authed<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    request
}

/// A CA made for this test and a certificate it signed for `localhost` and
/// `127.0.0.1`: the CA's PEM, the server's chain and key.
fn test_pki() -> (
    String,
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "agent-federation test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    (
        ca.pem(),
        server.der().clone(),
        rustls::pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    )
}

/// A TLS front for the stub wrapper: terminates TLS with the test's certificate and
/// relays each connection to the stub. Its `https://127.0.0.1:PORT` URL.
async fn https_front(
    stub: &StubWrapper,
    chain: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> String {
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![chain], key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://127.0.0.1:{}",
        listener.local_addr().unwrap().port()
    );
    let backend = stub.addr();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake: nothing to relay.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    url
}

#[tokio::test]
async fn an_https_wrapper_is_reached_with_the_configured_ca_and_refused_without_it() {
    let (stub, _, sink) = start_stub_and_sink().await;
    let (ca_pem, chain, key) = test_pki();
    let url = https_front(&stub, chain, key).await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["crewai"]);
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca_pem).unwrap();

    let host = HostProcess::start_in(
        dir.path(),
        &url,
        &sink.grpc_endpoint(),
        &["--outbound-ca-file", ca_file.to_str().unwrap()],
    );
    let request = task("crewai", "over tls");
    let request_id = request.request_id.clone();
    let response = run(&mut host.client().await, request, None, None)
        .await
        .unwrap();
    assert_eq!(response.output, "stub answer to: over tls");
    assert_eq!(stub.requests_for(&request_id).len(), 1);

    // The same wrapper without the CA: refused at the handshake, saying why.
    let untrusting = HostProcess::start_in(dir.path(), &url, &sink.grpc_endpoint(), &[]);
    let request = task("crewai", "over untrusted tls");
    let request_id = request.request_id.clone();
    let status = run(&mut untrusting.client().await, request, None, None)
        .await
        .unwrap_err();
    assert!(
        status.message().contains("certificate") || status.message().contains("UnknownIssuer"),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    assert!(stub.requests_for(&request_id).is_empty());
}

#[tokio::test]
async fn proxy_variables_in_the_host_environment_are_ignored() {
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    // A "proxy" that counts the connections it gets (and answers none).
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_url = format!("http://{}", proxy.local_addr().unwrap());
    let proxied = Arc::new(AtomicUsize::new(0));
    let counter = proxied.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = proxy.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(tcp);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["crewai"]);
    let envs: Vec<(&str, &str)> = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "ALL_PROXY"]
        .into_iter()
        .map(|name| (name, proxy_url.as_str()))
        .chain([("NO_PROXY", ""), ("no_proxy", "")])
        .collect();
    let host =
        HostProcess::start_with_env(dir.path(), &stub_url, &sink.grpc_endpoint(), &[], &envs);
    let request = task("crewai", "direct");
    let request_id = request.request_id.clone();
    run(&mut host.client().await, request, None, None)
        .await
        .unwrap();
    // The host's own call to the wrapper's run API goes direct too.
    let _ = host
        .client()
        .await
        .cancel_agent_task(CancelAgentTaskRequest {
            task_id: "proxy-session/proxy-request".into(),
        })
        .await;
    assert_eq!(stub.requests_for(&request_id).len(), 1);
    assert_eq!(
        stub.requests_to("/v1/sessions/proxy-session/runs/proxy-request/cancel")
            .len(),
        1
    );
    assert_eq!(
        proxied.load(Ordering::SeqCst),
        0,
        "a request went to the proxy"
    );
}

fn write_private(path: &Path, text: &str, mode: u32) {
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn the_wrapper_credential_goes_to_the_wrapper_only_and_adapters_cannot_forge_it() {
    const SECRET: &str = "wrapper-credential-s3cret";
    let (stub, stub_url, sink) = start_stub_and_sink().await;
    let other = StubWrapper::start().await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["crewai", "test-faults"]);
    std::fs::write(
        dir.path().join("test-faults.toml"),
        format!("[outbound]\nallow = [\"wrapper\", \"{}\"]\n", other.url()),
    )
    .unwrap();
    let secrets = tempfile::tempdir().unwrap();
    let credential = secrets.path().join("credential");
    write_private(&credential, &format!("{SECRET}\n"), 0o600);
    let host = HostProcess::start_in(
        dir.path(),
        &stub_url,
        &sink.grpc_endpoint(),
        &["--wrapper-credential-file", credential.to_str().unwrap()],
    );
    let mut client = host.client().await;

    // An adapter's request to the wrapper carries it.
    let request = task("crewai", "with credential");
    let request_id = request.request_id.clone();
    run(&mut client, request, None, None).await.unwrap();
    let sent = stub.requests_for(&request_id);
    assert_eq!(sent[0].header(CREDENTIAL_HEADER), Some(SECRET));

    // So does the host's own call to the wrapper's run API.
    let _ = client
        .cancel_agent_task(CancelAgentTaskRequest {
            task_id: "cred-session/cred-request".into(),
        })
        .await;
    let cancel = stub.requests_to("/v1/sessions/cred-session/runs/cred-request/cancel");
    assert_eq!(cancel[0].header(CREDENTIAL_HEADER), Some(SECRET));

    // Another allowed origin never gets it.
    let request = task("test-faults", &format!("call:{}/elsewhere", other.url()));
    run(&mut client, request, None, None).await.unwrap();
    let elsewhere = other.requests_to("/elsewhere");
    assert_eq!(elsewhere.len(), 1);
    assert_eq!(elsewhere[0].header(CREDENTIAL_HEADER), None);

    // An adapter that sets it itself is refused before anything leaves.
    let forged = task("test-faults", "forge-credential");
    let forged_id = forged.request_id.clone();
    let status = run(&mut client, forged, None, None).await.unwrap_err();
    assert!(
        status.message().contains("set by the host only"),
        "{:?}: {}",
        status.code(),
        status.message()
    );
    assert!(stub.requests_for(&forged_id).is_empty());

    // Never in the host's log.
    assert!(!host.log().contains(SECRET), "the credential was logged");
}

/// `agent-federation serve` with `args`, expected to refuse to start: its stderr.
fn refused_start(args: &[&str]) -> String {
    use std::io::BufRead;
    let mut child = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    if !line.is_empty() {
        child.kill().unwrap();
        panic!("the host started with {args:?}: {line}");
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_credential_file_others_can_read_and_a_world_writable_cache_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let credential = dir.path().join("credential");
    write_private(&credential, "s3cret", 0o644);
    let stderr = refused_start(&[
        "--adapters-dir",
        dir.path().to_str().unwrap(),
        "--wrapper-credential-file",
        credential.to_str().unwrap(),
    ]);
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    assert!(!stderr.contains("s3cret"), "{stderr}");

    let cache = dir.path().join("cache");
    std::fs::create_dir(&cache).unwrap();
    std::fs::set_permissions(&cache, std::fs::Permissions::from_mode(0o777)).unwrap();
    let stderr = refused_start(&[
        "--adapters-dir",
        dir.path().to_str().unwrap(),
        "--compile-cache-dir",
        cache.to_str().unwrap(),
    ]);
    assert!(stderr.contains("writable by group or others"), "{stderr}");
}

#[tokio::test]
async fn manifest_secrets_come_only_from_the_secrets_dir_and_prefixed_variables() {
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("api-key"), "k3y").unwrap();
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "host-only").unwrap();
    let host = HostProcess::start_with_env(
        dir.path(),
        &stub_url,
        &sink.grpc_endpoint(),
        &[
            "--admin-token",
            TOKEN,
            "--secrets-dir",
            secrets.path().to_str().unwrap(),
        ],
        &[
            ("FEDERATION_SECRET_GRANTED", "granted"),
            ("FEDERATION_SECRET_SMUGGLED", TOKEN),
            ("UNPREFIXED_SECRET", "x"),
        ],
    );
    let component = std::fs::read(dist_dir().join("test-adapters/test-faults.wasm")).unwrap();
    let mut admin = AdminServiceClient::new(host.channel().await);
    let header = |source: String| {
        format!("[[outbound.headers]]\norigin = \"wrapper\"\nname = \"x-key\"\n{source}\n")
    };
    for (source, needles) in [
        (
            format!("value_file = {:?}", outside.path().display().to_string()),
            &["value_file", "outside the secrets directory"][..],
        ),
        (
            "value_file = \"../etc/passwd\"".to_string(),
            &["value_file", "'..'"][..],
        ),
        (
            "value_env = \"UNPREFIXED_SECRET\"".to_string(),
            &["value_env", "prefix"][..],
        ),
        (
            "value_env = \"FEDERATION_ADMIN_TOKEN\"".to_string(),
            &["value_env"][..],
        ),
        (
            "value_env = \"FEDERATION_SECRET_SMUGGLED\"".to_string(),
            &["admin token"][..],
        ),
    ] {
        let status = admin
            .load_adapter(authed(LoadAdapterRequest {
                component: component.clone(),
                policy: header(source.clone()),
            }))
            .await
            .expect_err(&source);
        for needle in needles {
            assert!(
                status.message().contains(needle),
                "{source}: {}",
                status.message()
            );
        }
    }
    for source in [
        "value_file = \"api-key\"",
        "value_env = \"FEDERATION_SECRET_GRANTED\"",
    ] {
        admin
            .load_adapter(authed(LoadAdapterRequest {
                component: component.clone(),
                policy: header(source.to_string()),
            }))
            .await
            .unwrap_or_else(|s| panic!("{source}: {}", s.message()));
    }
}

/// A host with its own compile cache (not the suite's shared one).
fn host_with_cache(dir: &Path, cache: &Path, wrapper: &str, log: &str) -> Process {
    Host::new(federation_testkit::process::host_bin(), wrapper, dir)
        .args(["--admin-token", TOKEN, "--compile-cache-dir"])
        .arg(cache)
        .start(
            PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("doors-{log}-{}.log", std::process::id())),
        )
}

/// Whether the host's one adapter came from its compile cache.
async fn from_cache(host: &Process) -> bool {
    let listed = AdminServiceClient::new(host.channel().await)
        .list_adapters(authed(federation_proto::ListAdaptersRequest {}))
        .await
        .unwrap()
        .into_inner();
    listed.adapters[0].current.as_ref().unwrap().from_cache
}

#[tokio::test]
async fn a_tampered_cache_artifact_is_recompiled_not_loaded() {
    let (stub, stub_url, _sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["test-faults"]);
    let cache = tempfile::tempdir().unwrap();
    let mut first = host_with_cache(dir.path(), cache.path(), &stub_url, "cache-1");
    assert!(!from_cache(&first).await, "a fresh cache cannot hit");
    first.terminate();
    let artifacts: Vec<PathBuf> = std::fs::read_dir(cache.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    let mut bytes = std::fs::read(&artifacts[0]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x5a;
    std::fs::write(&artifacts[0], bytes).unwrap();

    let second = host_with_cache(dir.path(), cache.path(), &stub_url, "cache-2");
    assert!(
        !from_cache(&second).await,
        "the tampered artifact was loaded"
    );
    assert!(
        second.log().contains("MAC does not match"),
        "{}",
        second.log()
    );
    let response = run(
        &mut second.client().await,
        task("test-faults", "echo"),
        None,
        None,
    )
    .await
    .unwrap();
    assert!(response.output.starts_with("echo"));
    drop(second);
    // Overwritten with a good artifact: the next start hits.
    let third = host_with_cache(dir.path(), cache.path(), &stub_url, "cache-3");
    assert!(from_cache(&third).await);
    drop(stub);
}

#[tokio::test]
async fn a_huge_adapter_file_and_a_symlink_out_of_the_directory_are_refused_unread() {
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["test-faults"]);
    let host = HostProcess::start_in(
        dir.path(),
        &stub_url,
        &sink.grpc_endpoint(),
        &["--admin-token", TOKEN, "--max-upload-mib", "8"],
    );
    // 1 GiB, sparse: reading it would take the host to a gigabyte.
    let huge = std::fs::File::create(dir.path().join("huge.wasm")).unwrap();
    huge.set_len(1 << 30).unwrap();
    drop(huge);
    // A link to a file outside the directory (a secret of the host's user).
    let outside = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(outside.path(), "not an adapter").unwrap();
    std::os::unix::fs::symlink(outside.path(), dir.path().join("shadow.wasm")).unwrap();
    // A link inside the directory still works.
    std::os::unix::fs::symlink(
        dir.path().join("test-faults.wasm"),
        dir.path().join("alias.wasm"),
    )
    .unwrap();

    let report = AdminServiceClient::new(host.channel().await)
        .reload_adapters(authed(ReloadAdaptersRequest {}))
        .await
        .unwrap()
        .into_inner();
    let reason = |file: &str| {
        report
            .rejected
            .iter()
            .find(|r| r.source.ends_with(file))
            .unwrap_or_else(|| panic!("{file} was not rejected: {report:?}"))
            .reason
            .clone()
    };
    let huge = reason("huge.wasm");
    assert!(
        huge.contains("1073741824 bytes, over the 8388608-byte limit"),
        "{huge}"
    );
    let shadow = reason("shadow.wasm");
    assert!(
        shadow.contains("outside the adapters directory"),
        "{shadow}"
    );
    // alias.wasm was read: it is the same adapter, rejected only as a duplicate name.
    assert!(reason("alias.wasm").contains("already served"));
    run(
        &mut host.client().await,
        task("test-faults", "echo"),
        None,
        None,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_log_flood_is_capped_per_task_with_the_dropped_count() {
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["test-faults"]);
    let host = HostProcess::start_in(dir.path(), &stub_url, &sink.grpc_endpoint(), &[]);
    let response = run(
        &mut host.client().await,
        task("test-faults", "log-flood:5000"),
        None,
        Some(Duration::from_secs(60)),
    )
    .await
    .unwrap();
    assert_eq!(response.output, "logged 5000 lines");
    let log = host.log();
    let kept = log
        .lines()
        .filter(|l| l.contains(&"z".repeat(4096)))
        .count();
    // 64 KiB per task: 16 lines of 4 KiB.
    assert_eq!(kept, 16, "lines of the flood in the host log");
    assert!(
        log.contains("[4984 log lines (20414464 bytes)"),
        "no dropped count in the log"
    );
    assert!(
        log.len() < 1 << 20,
        "the host log grew to {} bytes",
        log.len()
    );
}

#[tokio::test]
async fn a_flood_of_background_results_stays_under_the_budget() {
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let dir = tempfile::tempdir().unwrap();
    copy_adapters(dir.path(), &["test-faults"]);
    let host = HostProcess::start_in(
        dir.path(),
        &stub_url,
        &sink.grpc_endpoint(),
        &["--background-results-mib", "8"],
    );
    let mut client = host.client().await;
    let mut ids = Vec::new();
    for _ in 0..6 {
        // Each result is 3 MiB: six of them would hold 18 MiB.
        let started = client
            .start_agent_task(task("test-faults", "huge-output:3"))
            .await
            .unwrap()
            .into_inner();
        ids.push(started.task_id);
    }
    // First every task ends (a later one may still evict an earlier result)...
    for id in &ids {
        eventually(&format!("{id} finishes"), Duration::from_secs(120), || {
            let (mut client, id) = (client.clone(), id.clone());
            async move { background_state(&mut client, id).await.is_some() }
        })
        .await;
    }
    // ...then what the host still holds is counted.
    let (mut held, mut evicted) = (0, 0);
    for id in &ids {
        match background_state(&mut client, id.clone()).await.unwrap() {
            Some(status) => {
                assert_eq!(
                    status.state,
                    State::Completed as i32,
                    "{}",
                    status.error_message
                );
                held += status.response.unwrap().output.len();
            }
            None => evicted += 1,
        }
    }
    assert!(held <= 8 << 20, "results held: {held} bytes");
    assert!(held >= 3 << 20, "no result kept");
    assert!(evicted >= 4, "{evicted} evicted");
}

/// A background task's status: `None` while it works, `Some(None)` once its result was
/// evicted (the wrapper's run record answers, and the stub has none for it).
async fn background_state(
    client: &mut federation_proto::federation_service_client::FederationServiceClient<
        tonic::transport::Channel,
    >,
    task_id: String,
) -> Option<Option<federation_proto::AgentTaskStatus>> {
    match client.get_agent_task(GetAgentTaskRequest { task_id }).await {
        Err(status) if status.code() == tonic::Code::NotFound => Some(None),
        Err(status) => panic!("GetAgentTask: {status}"),
        Ok(reply) if reply.get_ref().state == State::Working as i32 => None,
        Ok(reply) => Some(Some(reply.into_inner())),
    }
}
