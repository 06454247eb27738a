//! Fleet convergence: time from `adapters push` of a new component to a tag until every
//! host replica that follows the tag serves it. A real `docker-registry` on loopback,
//! N replicas of the release host as separate processes; pushes alternate two builds
//! of the test adapter, so the first push of each build compiles and later ones reuse
//! the build in memory. Prints figures; asserts nothing.
//!
//! `cargo run --release -p federation-bench --example fleet_bench -- [--replicas 3]
//! [--rounds 6] [--poll-ms 1000]` after `cargo build --release -p federation-cli` and
//! `scripts/build-adapters.sh`; `scripts/bench.sh` runs it. See docs/operations.md.

use std::{
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use clap::Parser;
use federation_host::oci_registry::{AdapterRef, Registry, RegistryArgs};
use federation_proto::ListAdaptersRequest;
use federation_proto::admin_service_client::AdminServiceClient;
use federation_testkit::process::{HOST_READY, Launch, Process};
use federation_testkit::registry::OciRegistry;
use tonic::transport::Channel;

const TOKEN: &str = "fleet-bench-token";

#[derive(Parser)]
struct Args {
    /// Host replicas following the tag.
    #[arg(long, default_value_t = 3)]
    replicas: usize,
    /// Pushes measured (alternating two builds).
    #[arg(long, default_value_t = 11)]
    rounds: usize,
    /// The replicas' --source-poll-interval-ms.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// The host binary (default: `agent-federation` of this release build).
    #[arg(long)]
    host_bin: Option<PathBuf>,
}

fn dist(version: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
        "../../dist/test-adapters/test-faults-{version}.wasm"
    ));
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run scripts/build-adapters.sh", path.display()))
}

fn host_bin(args: &Args) -> PathBuf {
    args.host_bin.clone().unwrap_or_else(|| {
        // target/release/examples/fleet_bench -> target/release/agent-federation
        let exe = std::env::current_exe().unwrap();
        exe.parent()
            .and_then(|examples| examples.parent())
            .unwrap()
            .join("agent-federation")
    })
}

/// The digest replica `admin` serves for the source (empty: none yet).
async fn serving(admin: &mut AdminServiceClient<Channel>) -> String {
    let mut request = tonic::Request::new(ListAdaptersRequest {});
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    admin
        .list_adapters(request)
        .await
        .map(|r| {
            r.into_inner()
                .sources
                .into_iter()
                .next()
                .filter(|s| s.converged_at.is_some())
                .map(|s| s.serving_digest)
                .unwrap_or_default()
        })
        .unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("fleet-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let registry_server = OciRegistry::start(&dir.join("registry"))?;
    let registry = Registry::new(
        &RegistryArgs {
            insecure_registries: vec![registry_server.addr()],
            ..RegistryArgs::default()
        },
        Duration::from_secs(10),
    )?;
    let reference = AdapterRef::parse(&format!(
        "oci://{}/adapters/test-faults:stable",
        registry_server.addr()
    ))?;
    let builds = [dist("1.0.0"), dist("2.0.0")];
    registry.push(&reference, builds[0].clone(), None).await?;

    let bin = host_bin(&args);
    let mut replicas: Vec<Process> = Vec::new();
    for i in 0..args.replicas {
        let adapters = dir.join(format!("adapters-{i}"));
        std::fs::create_dir_all(&adapters)?;
        let mut command = Command::new(&bin);
        command
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--wrapper-url",
                "http://127.0.0.1:9",
            ])
            .arg("--adapters-dir")
            .arg(&adapters)
            .arg("--compile-cache-dir")
            .arg(dir.join(format!("cache-{i}")))
            .args(["--admin-token", TOKEN, "--insecure-registry"])
            .arg(registry_server.addr())
            .arg("--adapter-source")
            .arg(format!("test-faults={reference}"))
            .arg("--source-poll-interval-ms")
            .arg(args.poll_ms.to_string())
            .env("OTEL_TRACES_EXPORTER", "none")
            .env("OTEL_METRICS_EXPORTER", "none");
        replicas.push(
            Launch::new(
                format!("replica-{i}"),
                command,
                dir.join(format!("replica-{i}.log")),
            )
            .ready_line(HOST_READY)
            .start()?,
        );
    }
    let mut admins = Vec::new();
    for replica in &replicas {
        admins.push(AdminServiceClient::new(replica.channel().await));
    }

    println!("fleet-bench");
    println!(
        "  {} replicas (release host, separate processes), docker-registry on {}, poll every {} ms",
        args.replicas,
        registry_server.addr(),
        args.poll_ms
    );
    let mut warm = Vec::new();
    for round in 0..args.rounds {
        let bytes = builds[(round + 1) % 2].clone();
        let digest = federation_runtime::digest_of(&bytes);
        // Push at a varying point of the replicas' poll cycles, so the figures span
        // best to worst case.
        let phase = (round as u64 * 7 % 10) * args.poll_ms / 10;
        tokio::time::sleep(Duration::from_millis(phase)).await;
        let started = Instant::now();
        registry.push(&reference, bytes, None).await?;
        let pushed = started.elapsed();
        let mut last = Duration::ZERO;
        for admin in &mut admins {
            while serving(admin).await != digest {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            last = last.max(started.elapsed());
        }
        // The first push of v2 compiles; v1 was loaded at start-up, then both stay in
        // memory (current and previous).
        let kind = if round == 0 {
            "new build: compile"
        } else {
            "build in memory"
        };
        println!(
            "  push {} (v{}): push {:>6.1} ms, all replicas converged {:>7.1} ms after the push started ({kind})",
            round + 1,
            if round % 2 == 0 { 2 } else { 1 },
            pushed.as_secs_f64() * 1e3,
            last.as_secs_f64() * 1e3,
        );
        if round >= 1 {
            warm.push(last);
        }
    }
    if !warm.is_empty() {
        warm.sort();
        println!(
            "  pushes of a build in memory: median {:.1} ms, max {:.1} ms (poll interval {} ms: at most one interval plus pull and swap)",
            warm[warm.len() / 2].as_secs_f64() * 1e3,
            warm[warm.len() - 1].as_secs_f64() * 1e3,
            args.poll_ms
        );
    }
    drop(replicas);
    drop(registry_server);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
