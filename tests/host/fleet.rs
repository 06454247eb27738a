//! A fleet following an OCI registry: a real `docker-registry` on loopback, three host
//! replicas as separate processes (`--adapter-source NAME=oci://...`), components
//! published with `agent-federation adapters push`. Every replica converges on the
//! digest the tag names, swaps under load without failing a request, keeps the last
//! good build when a broken one is pushed or the registry goes away (and says so in
//! ListAdapters, gRPC health and metrics), and a pinned digest ignores tag moves.

mod support;

use std::{
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use federation_proto::admin_service_client::AdminServiceClient;
use federation_proto::{AdapterSource, ListAdaptersRequest, ListAdaptersResponse, adapter_status};
use federation_testkit::registry::OciRegistry;
use sha2::{Digest, Sha256};
use support::{HostProcess, dist_dir, eventually, run, start_stub_and_sink, task};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

const TOKEN: &str = "test-admin-token";
const NAME: &str = "test-faults";
const POLL_MS: &str = "200";

fn build(version: &str) -> std::path::PathBuf {
    let path = dist_dir().join(format!("test-adapters/test-faults-{version}.wasm"));
    assert!(
        path.exists(),
        "{}: run scripts/build-adapters.sh first",
        path.display()
    );
    path
}

fn digest_of_file(path: &Path) -> String {
    hex::encode(Sha256::digest(std::fs::read(path).unwrap()))
}

/// `agent-federation adapters push FILE REFERENCE --insecure-registry ADDR --json`;
/// the pushed manifest digest.
fn push(file: &Path, reference: &str, registry: &OciRegistry) -> String {
    push_with(file, reference, registry, &[])
}

/// [`push`] with more flags.
fn push_with(file: &Path, reference: &str, registry: &OciRegistry, extra: &[&str]) -> String {
    let output = std::process::Command::new(federation_testkit::process::host_bin())
        .args(["adapters", "push", "--json"])
        .arg(file)
        .arg(reference)
        .args(["--insecure-registry", &registry.addr()])
        .args(extra)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "push failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let reply: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(
        reply["component_digest"].as_str().unwrap(),
        digest_of_file(file),
        "the component layer's digest is the component's sha256"
    );
    reply["manifest_digest"].as_str().unwrap().to_string()
}

/// A replica following `source` (an `oci://` reference) for adapter [`NAME`].
fn replica(
    dir: &Path,
    stub_url: &str,
    sink: &otlp_sink::OtlpSink,
    registry: &OciRegistry,
    source: &str,
) -> HostProcess {
    let empty = dir.join(format!("adapters-{}", support::uuid_like()));
    std::fs::create_dir_all(&empty).unwrap();
    let source = format!("{NAME}={source}");
    HostProcess::start_in(
        &empty,
        stub_url,
        &sink.grpc_endpoint(),
        &[
            "--admin-token",
            TOKEN,
            "--adapter-source",
            &source,
            "--insecure-registry",
            &registry.addr(),
            "--source-poll-interval-ms",
            POLL_MS,
            "--connect-timeout-ms",
            "500",
        ],
    )
}

async fn list(host: &HostProcess) -> ListAdaptersResponse {
    let mut request = tonic::Request::new(ListAdaptersRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    AdminServiceClient::new(host.channel().await)
        .list_adapters(request)
        .await
        .unwrap()
        .into_inner()
}

async fn source(host: &HostProcess) -> AdapterSource {
    list(host)
        .await
        .sources
        .into_iter()
        .find(|s| s.name == NAME)
        .expect("the replica lists its source")
}

async fn source_health(host: &HostProcess) -> ServingStatus {
    let status = HealthClient::new(host.channel().await)
        .check(HealthCheckRequest {
            service: format!("source/{NAME}"),
        })
        .await
        .unwrap()
        .into_inner()
        .status;
    ServingStatus::try_from(status).unwrap()
}

/// Waits until every replica serves `digest` as the converged build of its source.
async fn converged(replicas: &[HostProcess], digest: &str) {
    for (i, host) in replicas.iter().enumerate() {
        eventually(
            &format!("replica {i} serves {digest}"),
            Duration::from_secs(60),
            || async {
                let s = source(host).await;
                s.serving_digest == digest && s.desired_digest == digest && s.converged_at.is_some()
            },
        )
        .await;
    }
}

/// Tasks sent to every replica in a loop until stopped: (sent, failed).
struct Load {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    workers: Vec<tokio::task::JoinHandle<Vec<String>>>,
}

impl Load {
    async fn start(replicas: &[HostProcess]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let mut workers = Vec::new();
        for host in replicas {
            let mut client = host.client().await;
            let (stop, sent) = (stop.clone(), sent.clone());
            workers.push(tokio::spawn(async move {
                let mut failures = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    if let Err(status) = run(&mut client, task(NAME, "echo"), None, None).await {
                        failures.push(format!("{:?}: {}", status.code(), status.message()));
                    }
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                failures
            }));
        }
        Load {
            stop,
            sent,
            workers,
        }
    }

    /// Stops it; the requests sent and every failure.
    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        let mut failures = Vec::new();
        for worker in self.workers {
            failures.extend(worker.await.unwrap());
        }
        (self.sent.load(Ordering::Relaxed), failures)
    }
}

async fn versions(replicas: &[HostProcess]) -> Vec<String> {
    let mut out = Vec::new();
    for host in replicas {
        let reply = run(&mut host.client().await, task(NAME, "echo"), None, None)
            .await
            .expect("the replica serves");
        out.push(reply.adapter_version);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fleet_follows_a_tag_swaps_under_load_and_survives_bad_pushes_and_outages() {
    let dir = tempfile::tempdir().unwrap();
    let mut registry = OciRegistry::start(&dir.path().join("registry")).unwrap();
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let tag = format!("oci://{}/adapters/test-faults:stable", registry.addr());
    let (v1, v2) = (build("1.0.0"), build("2.0.0"));
    let (d1, d2) = (digest_of_file(&v1), digest_of_file(&v2));

    // v1 published before the fleet starts: every replica serves it.
    push(&v1, &tag, &registry);
    let replicas: Vec<HostProcess> = (0..3)
        .map(|_| replica(dir.path(), &stub_url, &sink, &registry, &tag))
        .collect();
    converged(&replicas, &d1).await;
    assert_eq!(versions(&replicas).await, ["1.0.0"; 3]);
    for host in &replicas {
        let listed = list(host).await;
        let status = listed.adapters.iter().find(|a| a.name == NAME).unwrap();
        assert_eq!(status.source, tag, "the adapter's source is the reference");
        assert_eq!(status.desired_digest, d1);
        assert!(status.converged_at.is_some());
        assert_eq!(source_health(host).await, ServingStatus::Serving);
    }

    // v2 pushed under load: every replica converges, no request fails.
    let load = Load::start(&replicas).await;
    let pushed = Instant::now();
    push(&v2, &tag, &registry);
    converged(&replicas, &d2).await;
    let convergence = pushed.elapsed();
    let (sent, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
    assert!(sent > 0);
    assert_eq!(versions(&replicas).await, ["2.0.0"; 3]);
    eprintln!(
        "fleet of 3 converged on v2 {convergence:?} after the push (poll {POLL_MS} ms), {sent} tasks, 0 failed"
    );

    // A broken component (a component header, then junk) pushed to the tag: every
    // replica rejects it, keeps v2 and reports the rejection.
    let broken = dir.path().join("broken.wasm");
    let mut bytes = b"\0asm\x0d\0\x01\0".to_vec();
    bytes.extend_from_slice(b"definitely not a component body");
    std::fs::write(&broken, &bytes).unwrap();
    let broken_digest = digest_of_file(&broken);
    push(&broken, &tag, &registry);
    for (i, host) in replicas.iter().enumerate() {
        eventually(
            &format!("replica {i} rejects the broken push"),
            Duration::from_secs(60),
            || async {
                let s = source(host).await;
                s.desired_digest == broken_digest && !s.last_error.is_empty()
            },
        )
        .await;
        let listed = list(host).await;
        let s = listed.sources.iter().find(|s| s.name == NAME).unwrap();
        assert_eq!(s.serving_digest, d2, "v2 keeps serving");
        assert!(
            s.converged_at.is_none(),
            "not converged on the tag's digest"
        );
        let status = listed.adapters.iter().find(|a| a.name == NAME).unwrap();
        assert_eq!(
            status.state,
            adapter_status::State::ServingUpdateRejected as i32
        );
        assert!(
            listed
                .rejections
                .iter()
                .any(|r| r.digest == broken_digest && r.source.starts_with(&tag)),
            "{:?}",
            listed.rejections
        );
    }
    assert_eq!(versions(&replicas).await, ["2.0.0"; 3]);

    // The registry goes away: tasks keep succeeding; health and metrics say so.
    registry.stop();
    let load = Load::start(&replicas).await;
    for (i, host) in replicas.iter().enumerate() {
        eventually(
            &format!("replica {i} reports the registry down"),
            Duration::from_secs(60),
            || async { !source(host).await.registry_reachable },
        )
        .await;
        assert_eq!(source_health(host).await, ServingStatus::NotServing);
    }
    let (sent, failures) = load.finish().await;
    assert!(
        failures.is_empty(),
        "{} of {sent} failed: {failures:?}",
        failures.len()
    );
    assert_eq!(versions(&replicas).await, ["2.0.0"; 3]);
    sink.wait_for_metrics(Duration::from_secs(30), |points| {
        let down = points
            .iter()
            .any(|p| p.name == "federation.adapter.source.up" && p.value == Some(0.0));
        let serving_v2 = points.iter().any(|p| {
            p.name == "federation.adapter.serving"
                && p.attr_str("adapter.digest") == Some(d2.as_str())
                && p.value == Some(1.0)
        });
        down && serving_v2
    })
    .await
    .unwrap();

    // Back again: reachable, and still on v2 (the broken manifest is not retried).
    registry.resume().unwrap();
    for host in &replicas {
        eventually(
            "the registry is reachable again",
            Duration::from_secs(60),
            || async { source(host).await.registry_reachable },
        )
        .await;
        assert_eq!(source_health(host).await, ServingStatus::Serving);
        assert_eq!(source(host).await.serving_digest, d2);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pinned_digest_ignores_tag_moves() {
    let dir = tempfile::tempdir().unwrap();
    let registry = OciRegistry::start(&dir.path().join("registry")).unwrap();
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let tag = format!("oci://{}/adapters/test-faults:stable", registry.addr());
    let (v1, v2) = (build("1.0.0"), build("2.0.0"));
    // v1 goes with a policy manifest, as the artifact's second layer.
    let policy = dir.path().join("policy.toml");
    std::fs::write(&policy, "[limits]\ncpu_budget_ms = 2000\n").unwrap();
    let manifest = push_with(
        &v1,
        &tag,
        &registry,
        &["--policy", policy.to_str().unwrap()],
    );
    let pinned_ref = format!("oci://{}/adapters/test-faults@{manifest}", registry.addr());
    let pinned = replica(dir.path(), &stub_url, &sink, &registry, &pinned_ref);
    let following = replica(dir.path(), &stub_url, &sink, &registry, &tag);
    let d1 = digest_of_file(&v1);
    converged(std::slice::from_ref(&pinned), &d1).await;
    converged(std::slice::from_ref(&following), &d1).await;
    assert!(source(&pinned).await.pinned);
    let listed = list(&pinned).await;
    let current = listed.adapters[0].current.as_ref().unwrap();
    assert!(
        current.policy_source.ends_with("policy layer"),
        "the policy layer applies: {current:?}"
    );

    push(&v2, &tag, &registry);
    // Once the tag follower has moved and the pinned replica has polled since, the
    // pinned one must still be on v1.
    converged(std::slice::from_ref(&following), &digest_of_file(&v2)).await;
    let moved_at = source(&following).await.last_poll_at.unwrap();
    eventually(
        "the pinned replica polls again",
        Duration::from_secs(60),
        || async {
            source(&pinned)
                .await
                .last_poll_at
                .is_some_and(|at| (at.seconds, at.nanos) > (moved_at.seconds, moved_at.nanos))
        },
    )
    .await;
    let s = source(&pinned).await;
    assert_eq!(s.serving_digest, d1);
    assert_eq!(s.desired_digest, d1);
    assert!(s.converged_at.is_some());
    assert_eq!(versions(std::slice::from_ref(&pinned)).await, ["1.0.0"]);
}

/// A test-only user of the authenticated registry (bcrypt, cost 4).
const USER: &str = "fleet";
const PASSWORD: &str = "fleet-test-password";
const HTPASSWD: &str = "fleet:$2b$04$speH6hlmmaRP5LXW.MWO2Ov7cEazVVdXunuk9qOu.9yCl58uvPqDK\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn registry_credentials_come_from_a_file_or_the_environment_and_are_never_logged() {
    let dir = tempfile::tempdir().unwrap();
    let registry = OciRegistry::start_with_auth(&dir.path().join("registry"), HTPASSWD).unwrap();
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let tag = format!("oci://{}/adapters/test-faults:stable", registry.addr());
    let v1 = build("1.0.0");
    let push_with = |envs: &[(&str, &str)]| {
        std::process::Command::new(federation_testkit::process::host_bin())
            .args(["adapters", "push"])
            .arg(&v1)
            .arg(&tag)
            .args(["--insecure-registry", &registry.addr()])
            .env_remove("FEDERATION_REGISTRY_USERNAME")
            .env_remove("FEDERATION_REGISTRY_PASSWORD")
            .envs(envs.iter().copied())
            .output()
            .unwrap()
    };

    // Anonymous: refused, exit code of a denied call.
    let anonymous = push_with(&[]);
    assert_eq!(anonymous.status.code(), Some(9), "{anonymous:?}");
    // From the environment: published.
    let pushed = push_with(&[
        ("FEDERATION_REGISTRY_USERNAME", USER),
        ("FEDERATION_REGISTRY_PASSWORD", PASSWORD),
    ]);
    assert!(pushed.status.success(), "{pushed:?}");

    // A replica with the credentials in a file pulls it; its log (debug level) never
    // shows the password.
    let credentials = dir.path().join("registry-credentials");
    std::fs::write(&credentials, format!("{USER}:{PASSWORD}\n")).unwrap();
    let empty = dir.path().join("adapters");
    std::fs::create_dir_all(&empty).unwrap();
    let host = HostProcess::start_in(
        &empty,
        &stub_url,
        &sink.grpc_endpoint(),
        &[
            "--admin-token",
            TOKEN,
            "--adapter-source",
            &format!("{NAME}={tag}"),
            "--insecure-registry",
            &registry.addr(),
            "--registry-credentials-file",
            credentials.to_str().unwrap(),
        ],
    );
    converged(std::slice::from_ref(&host), &digest_of_file(&v1)).await;
    assert!(!host.log().contains(PASSWORD), "the password was logged");
    assert!(!String::from_utf8_lossy(&pushed.stderr).contains(PASSWORD));
}

/// A CA, and a certificate for 127.0.0.1 it signed, as PEM files in `dir`: (CA,
/// certificate, key).
fn registry_pki(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "fleet test CA");
    let ca_key = KeyPair::generate().unwrap();
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&key, &issuer)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, cert.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

#[tokio::test]
async fn an_https_registry_is_trusted_through_the_hosts_ca_setting_and_not_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = registry_pki(dir.path());
    let registry = OciRegistry::start_with_tls(&dir.path().join("registry"), &cert, &key).unwrap();
    let (_stub, stub_url, sink) = start_stub_and_sink().await;
    let tag = format!("oci://{}/adapters/test-faults:stable", registry.addr());
    let v1 = build("1.0.0");
    let push = |extra: &[&str]| {
        std::process::Command::new(federation_testkit::process::host_bin())
            .args(["adapters", "push"])
            .arg(&v1)
            .arg(&tag)
            .args(extra)
            .output()
            .unwrap()
    };
    // https only, and only behind a trusted certificate: the test CA is in no root store.
    let untrusted = push(&[]);
    assert!(!untrusted.status.success(), "{untrusted:?}");
    let pushed = push(&["--registry-ca-file", ca.to_str().unwrap()]);
    assert!(pushed.status.success(), "{pushed:?}");

    let followed = format!("{NAME}={tag}");
    let start = |name: &str, extra: &[&str]| {
        let empty = dir.path().join(name);
        std::fs::create_dir_all(&empty).unwrap();
        let mut flags = vec![
            "--admin-token",
            TOKEN,
            "--adapter-source",
            &followed,
            "--source-poll-interval-ms",
            POLL_MS,
            "--connect-timeout-ms",
            "500",
        ];
        flags.extend_from_slice(extra);
        HostProcess::start_in(&empty, &stub_url, &sink.grpc_endpoint(), &flags)
    };
    // The host's --outbound-ca-file is what registries trust too.
    let trusting = start("trusting", &["--outbound-ca-file", ca.to_str().unwrap()]);
    converged(std::slice::from_ref(&trusting), &digest_of_file(&v1)).await;
    // Without it the registry is unreachable: reported, nothing served from it.
    let distrusting = start("distrusting", &[]);
    eventually(
        "the source reports the registry down",
        Duration::from_secs(30),
        || async { source_health(&distrusting).await == ServingStatus::NotServing },
    )
    .await;
    let status = source(&distrusting).await;
    assert!(!status.registry_reachable, "{status:?}");
    assert!(status.serving_digest.is_empty(), "{status:?}");
    assert!(!status.last_error.is_empty(), "{status:?}");
}
