//! The hostile-caller suite (beside the hostile-adapter one in `sandbox.rs`): a real
//! host process, callers that have no token, the wrong token, another principal's task
//! or no client certificate, certificates made in the test (rcgen); and what reaches
//! the wrapper (the test kit's recording stub) on behalf of whom.

mod support;

use std::path::{Path, PathBuf};

use federation_proto::federation_service_client::FederationServiceClient;
use federation_proto::{
    CancelAgentTaskRequest, GetAgentTaskRequest, ListAgentsRequest, WatchAgentTaskRequest,
    agent_task_status::State,
};
use federation_testkit::process::stream_events;
use federation_testkit::stub::HOLD_GOAL;
use sha2::{Digest, Sha256};
use support::*;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;

const PRINCIPAL_HEADER: &str = "x-federation-principal";

/// Tokens of the auth file every test host here uses.
const ALICE: &str = "alice-token-0123456789";
const BOB: &str = "bob-token-0123456789";

/// alice: by the sha256 of her token, unlimited; bob: a plain token, crewai only;
/// carol: by her client certificate's CN.
fn auth_file(dir: &Path) -> PathBuf {
    let digest = hex::encode(Sha256::digest(ALICE.as_bytes()));
    let text = format!(
        r#"
[[principal]]
name = "alice"
token_sha256 = ["{digest}"]

[[principal]]
name = "bob"
token = ["{BOB}"]
backends = ["crewai"]

[[principal]]
name = "carol"
client_identity = ["carol"]
"#
    );
    let path = dir.join("auth.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn tmpdir() -> PathBuf {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("hostile-caller-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// `request` with `authorization: Bearer <token>`.
fn as_caller<T>(token: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    request
}

fn reason(status: &Status) -> String {
    status
        .get_error_details()
        .error_info()
        .map(|info| info.reason.clone())
        .unwrap_or_default()
}

fn assert_refused(status: &Status, code: Code, expected_reason: &str) {
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(reason(status), expected_reason, "{status:?}");
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate whose CN is
/// `client_cn`, as PEM files in `dir`.
struct Pki {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
}

fn pki(dir: &Path, client_cn: &str) -> Pki {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let mut server =
        CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()]).unwrap();
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &issuer).unwrap();
    let mut client = CertificateParams::new(Vec::<String>::new()).unwrap();
    client
        .distinguished_name
        .push(DnType::CommonName, client_cn);
    client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_key = KeyPair::generate().unwrap();
    let client_cert = client.signed_by(&client_key, &issuer).unwrap();
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    Pki {
        ca: write("ca.pem", ca.pem()),
        server_cert: write("server.pem", server_cert.pem()),
        server_key: write("server-key.pem", server_key.serialize_pem()),
        client_cert: write("client.pem", client_cert.pem()),
        client_key: write("client-key.pem", client_key.serialize_pem()),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A TLS channel to `host` trusting the test CA, with a client certificate if given.
async fn tls_channel(
    host: &HostProcess,
    pki: &Pki,
    with_client_cert: bool,
) -> Result<Channel, tonic::transport::Error> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca).unwrap()))
        .domain_name("127.0.0.1");
    if with_client_cert {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&pki.client_cert).unwrap(),
            std::fs::read(&pki.client_key).unwrap(),
        ));
    }
    Endpoint::from_shared(format!("https://{}", host.addr()))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
}

/// A host on loopback with the test auth file (and `extra` flags).
async fn auth_host(
    extra: &[&str],
) -> (
    federation_testkit::stub::StubWrapper,
    otlp_sink::OtlpSink,
    HostProcess,
) {
    let (stub, url, sink) = start_stub_and_sink().await;
    let dir = tmpdir();
    let auth = auth_file(&dir);
    let mut flags = vec!["--auth-file", path(&auth)];
    flags.extend_from_slice(extra);
    let host = HostProcess::start(&url, &sink.grpc_endpoint(), &flags);
    (stub, sink, host)
}

#[tokio::test]
async fn callers_without_a_known_token_are_refused_with_a_trace_id() {
    let (stub, _sink, host) = auth_host(&[]).await;
    let mut client = host.client().await;
    for token in [None, Some("wrong-token"), Some("")] {
        let status = client
            .run_agent_task(as_caller(token, task("crewai", "x")))
            .await
            .unwrap_err();
        assert_refused(&status, Code::Unauthenticated, "UNAUTHENTICATED");
        let trace_id = status.metadata().get("x-trace-id").expect("x-trace-id");
        assert_eq!(trace_id.len(), 32, "{trace_id:?}");
        let status = client
            .get_agent_task(as_caller(
                token,
                GetAgentTaskRequest {
                    task_id: "s/r".into(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated);
    }
    assert!(
        stub.take().is_empty(),
        "a refused caller reached the wrapper"
    );
    // Health and reflection stay open (probes carry no token).
    let mut health = tonic_health::pb::health_client::HealthClient::new(host.channel().await);
    health
        .check(tonic_health::pb::HealthCheckRequest::default())
        .await
        .expect("health answers without a token");
    // A known token passes.
    client
        .run_agent_task(as_caller(Some(ALICE), task("crewai", "x")))
        .await
        .expect("alice may run tasks");
}

#[tokio::test]
async fn a_principal_limited_to_a_backend_is_refused_another() {
    let (stub, _sink, host) = auth_host(&[]).await;
    let mut client = host.client().await;
    client
        .run_agent_task(as_caller(Some(BOB), task("crewai", "x")))
        .await
        .expect("bob may use crewai");
    let refused = task("langgraph", "x");
    let request_id = refused.request_id.clone();
    let status = client
        .run_agent_task(as_caller(Some(BOB), refused))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "PRINCIPAL_NOT_ALLOWED");
    assert!(stub.requests_for(&request_id).is_empty());
    let status = client
        .start_agent_task(as_caller(Some(BOB), task("langgraph", "x")))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "PRINCIPAL_NOT_ALLOWED");
    let status = stream_events(&mut client, as_caller(Some(BOB), task("langgraph", "x")))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "PRINCIPAL_NOT_ALLOWED");
    // ListAgents shows bob crewai's agents only, and refuses a langgraph filter.
    let agents = client
        .list_agents(as_caller(Some(BOB), ListAgentsRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .agents;
    assert!(!agents.is_empty());
    for agent in &agents {
        assert!(agent.backends.iter().all(|b| b == "crewai"), "{agent:?}");
    }
    let status = client
        .list_agents(as_caller(
            Some(BOB),
            ListAgentsRequest {
                backend: "langgraph".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "PRINCIPAL_NOT_ALLOWED");
}

#[tokio::test]
async fn another_principal_cannot_get_cancel_watch_or_stream_a_task() {
    let (stub, _sink, host) = auth_host(&[]).await;
    let mut client = host.client().await;
    let held = task("crewai", HOLD_GOAL);
    let started = client
        .start_agent_task(as_caller(Some(ALICE), held.clone()))
        .await
        .unwrap()
        .into_inner();
    assert!(stub.wait_held(1, std::time::Duration::from_secs(30)).await);
    let task_id = started.task_id.clone();

    let status = client
        .get_agent_task(as_caller(
            Some(BOB),
            GetAgentTaskRequest {
                task_id: task_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "SESSION_NOT_OWNED");
    let status = client
        .cancel_agent_task(as_caller(
            Some(BOB),
            CancelAgentTaskRequest {
                task_id: task_id.clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "SESSION_NOT_OWNED");
    let status = client
        .watch_agent_task(as_caller(
            Some(BOB),
            WatchAgentTaskRequest {
                task_id: task_id.clone(),
                after_seq: 0,
            },
        ))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "SESSION_NOT_OWNED");
    // The same session and request id, streamed or run by bob.
    let mut same = held.clone();
    same.federation_session_id = started.federation_session_id.clone();
    let status = stream_events(&mut client, as_caller(Some(BOB), same.clone()))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "SESSION_NOT_OWNED");
    let status = client
        .run_agent_task(as_caller(Some(BOB), same))
        .await
        .unwrap_err();
    assert_refused(&status, Code::PermissionDenied, "SESSION_NOT_OWNED");
    // Nothing of bob's reached the wrapper: no cancel, no second run.
    let cancels: Vec<_> = stub
        .take()
        .into_iter()
        .filter(|r| r.path.ends_with("/cancel") || r.header(PRINCIPAL_HEADER) == Some("bob"))
        .collect();
    assert!(
        cancels.is_empty(),
        "{:?}",
        cancels.iter().map(|r| &r.path).collect::<Vec<_>>()
    );

    // Alice still sees and cancels her own task; her cancel reaches the wrapper as hers.
    let status = client
        .get_agent_task(as_caller(
            Some(ALICE),
            GetAgentTaskRequest {
                task_id: task_id.clone(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state(), State::Working);
    let status = client
        .cancel_agent_task(as_caller(Some(ALICE), CancelAgentTaskRequest { task_id }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.state(), State::Canceled);
    stub.release();
    let cancel = stub
        .take()
        .into_iter()
        .find(|r| r.path.ends_with("/cancel"))
        .expect("the host asked the wrapper to cancel");
    assert_eq!(cancel.header(PRINCIPAL_HEADER), Some("alice"));
}

#[tokio::test]
async fn the_principal_reaches_the_wrapper_and_an_adapter_cannot_forge_it() {
    let (stub, _sink, host) = auth_host(&[]).await;
    let mut client = host.client().await;
    let request = task("crewai", "x");
    let request_id = request.request_id.clone();
    client
        .run_agent_task(as_caller(Some(ALICE), request))
        .await
        .unwrap();
    let runs = stub.requests_for(&request_id);
    assert!(!runs.is_empty());
    for run in &runs {
        assert_eq!(run.header(PRINCIPAL_HEADER), Some("alice"), "{}", run.path);
    }
    client
        .list_agents(as_caller(Some(BOB), ListAgentsRequest::default()))
        .await
        .unwrap();
    let listed = stub.requests_to("/v1/agents");
    assert_eq!(listed.last().unwrap().header(PRINCIPAL_HEADER), Some("bob"));

    // The adapter sets the header itself: the request never leaves.
    stub.take();
    let status = client
        .run_agent_task(as_caller(
            Some(ALICE),
            task("test-faults", "forge-principal"),
        ))
        .await
        .unwrap_err();
    assert!(
        status.message().contains("set by the host only"),
        "{status:?}"
    );
    let leaked: Vec<_> = stub
        .take()
        .into_iter()
        .filter(|r| r.path == "/v1/run_crew")
        .collect();
    assert!(leaked.is_empty(), "the forged request reached the wrapper");
}

#[tokio::test]
async fn without_auth_the_principal_is_local() {
    let (stub, url, sink) = start_stub_and_sink().await;
    let host = HostProcess::start(&url, &sink.grpc_endpoint(), &[]);
    let mut client = host.client().await;
    let request = task("crewai", "x");
    let request_id = request.request_id.clone();
    client.run_agent_task(request).await.unwrap();
    let runs = stub.requests_for(&request_id);
    assert_eq!(runs[0].header(PRINCIPAL_HEADER), Some("local"));
    assert!(
        host.log().contains("serving on loopback only"),
        "{}",
        host.log()
    );
}

#[tokio::test]
async fn a_tls_host_serves_tls_only() {
    let dir = tmpdir();
    let pki = pki(&dir, "carol");
    let (stub, _sink, host) = auth_host(&[
        "--tls-cert",
        path(&pki.server_cert),
        "--tls-key",
        path(&pki.server_key),
    ])
    .await;
    let channel = tls_channel(&host, &pki, false)
        .await
        .expect("a TLS connection");
    let mut client = FederationServiceClient::new(channel);
    let request = task("crewai", "x");
    let request_id = request.request_id.clone();
    client
        .run_agent_task(as_caller(Some(ALICE), request))
        .await
        .expect("a call over TLS");
    assert_eq!(
        stub.requests_for(&request_id)[0].header(PRINCIPAL_HEADER),
        Some("alice")
    );
    // Plaintext HTTP/2 to the TLS port gets no answer.
    let plain = Endpoint::from_shared(host.endpoint()).unwrap();
    let outcome = match plain.connect().await {
        Err(error) => Err(error.to_string()),
        Ok(channel) => FederationServiceClient::new(channel)
            .run_agent_task(as_caller(Some(ALICE), task("crewai", "x")))
            .await
            .map(|_| ())
            .map_err(|s| s.to_string()),
    };
    assert!(outcome.is_err(), "a plaintext call to a TLS port succeeded");
}

#[tokio::test]
async fn mtls_requires_a_client_certificate_that_names_the_principal() {
    let dir = tmpdir();
    let pki = pki(&dir, "carol");
    let (stub, _sink, host) = auth_host(&[
        "--tls-cert",
        path(&pki.server_cert),
        "--tls-key",
        path(&pki.server_key),
        "--tls-client-ca",
        path(&pki.ca),
    ])
    .await;
    // No client certificate: the handshake (or the first call) fails.
    let without = match tls_channel(&host, &pki, false).await {
        Err(error) => Err(error.to_string()),
        Ok(channel) => FederationServiceClient::new(channel)
            .run_agent_task(task("crewai", "x"))
            .await
            .map(|_| ())
            .map_err(|s| s.to_string()),
    };
    assert!(without.is_err(), "a caller without a certificate got in");
    let channel = tls_channel(&host, &pki, true)
        .await
        .expect("an mTLS connection");
    let mut client = FederationServiceClient::new(channel);
    let request = task("crewai", "x");
    let request_id = request.request_id.clone();
    client
        .run_agent_task(request)
        .await
        .expect("carol's certificate authenticates her");
    assert_eq!(
        stub.requests_for(&request_id)[0].header(PRINCIPAL_HEADER),
        Some("carol")
    );
    // A token naming someone else than the certificate is refused.
    let status = client
        .run_agent_task(as_caller(Some(ALICE), task("crewai", "x")))
        .await
        .unwrap_err();
    assert_refused(&status, Code::Unauthenticated, "UNAUTHENTICATED");
}

#[test]
fn a_non_loopback_address_without_auth_refuses_to_start() {
    let output = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--adapters-dir"])
        .arg(tmpdir())
        .env("OTEL_TRACES_EXPORTER", "none")
        .env("OTEL_METRICS_EXPORTER", "none")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("without caller authentication"), "{stderr}");
    assert!(stderr.contains("--allow-unauthenticated"), "{stderr}");
}

#[test]
fn dev_certs_writes_a_working_set() {
    let dir = tmpdir().join("certs");
    let output = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["dev-certs"])
        .arg(&dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("--tls-cert"), "{stdout}");
    for name in [
        "ca.pem",
        "server.pem",
        "server-key.pem",
        "client.pem",
        "client-key.pem",
        "token",
        "auth.toml",
    ] {
        assert!(dir.join(name).exists(), "{name}");
    }
    let token = std::fs::read_to_string(dir.join("token")).unwrap();
    let auth = std::fs::read_to_string(dir.join("auth.toml")).unwrap();
    assert!(auth.contains(&hex::encode(Sha256::digest(token.trim().as_bytes()))));
    // Never overwrites.
    let again = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["dev-certs"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!again.status.success());
}

// Multi-threaded: the CLI runs as a blocking child process while the stub answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_calls_over_tls_with_a_token() {
    let dir = tmpdir().join("certs");
    let made = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["dev-certs"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(made.status.success());
    let (stub, url, sink) = start_stub_and_sink().await;
    let file = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let host = HostProcess::start(
        &url,
        &sink.grpc_endpoint(),
        &[
            "--tls-cert",
            &file("server.pem"),
            "--tls-key",
            &file("server-key.pem"),
            "--auth-file",
            &file("auth.toml"),
        ],
    );
    let addr = format!("https://{}", host.addr());
    let call = |extra: &[&str]| {
        std::process::Command::new(federation_testkit::process::host_bin())
            .args([
                "call",
                "--addr",
                &addr,
                "--tls-ca",
                &file("ca.pem"),
                "--backend",
                "crewai",
                "--goal",
                "x",
                "--json",
            ])
            .args(extra)
            .env_remove("FEDERATION_TOKEN")
            .env_remove("FEDERATION_TOKEN_FILE")
            .output()
            .unwrap()
    };
    let refused = call(&[]);
    assert_eq!(
        refused.status.code(),
        Some(9),
        "{}",
        String::from_utf8_lossy(&refused.stdout)
    );
    let ok = call(&["--token-file", &file("token")]);
    assert!(
        ok.status.success(),
        "{}{}",
        String::from_utf8_lossy(&ok.stdout),
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(
        stub.take()
            .iter()
            .any(|r| r.header(PRINCIPAL_HEADER) == Some("dev"))
    );
    // With the client certificate too (the same principal: accepted).
    let both = call(&[
        "--token-file",
        &file("token"),
        "--tls-cert",
        &file("client.pem"),
        "--tls-key",
        &file("client-key.pem"),
    ]);
    assert!(
        both.status.success(),
        "{}",
        String::from_utf8_lossy(&both.stderr)
    );
}

#[tokio::test]
async fn silent_connections_are_closed_and_callers_still_served() {
    use tokio::io::AsyncReadExt;
    let (_stub, _sink, host) = auth_host(&["--handshake-timeout-ms", "300"]).await;
    // 200 sockets that never send a byte (slow-loris without even a preface).
    let mut silent = Vec::new();
    for _ in 0..200 {
        silent.push(tokio::net::TcpStream::connect(host.addr()).await.unwrap());
    }
    for mut socket in silent {
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(std::time::Duration::from_secs(30), socket.read(&mut byte))
            .await
            .expect("the host kept a silent connection open");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "a silent connection got data: {read:?}"
        );
    }
    host.client()
        .await
        .run_agent_task(as_caller(Some(ALICE), task("crewai", "x")))
        .await
        .expect("a prompt caller is served");
}
