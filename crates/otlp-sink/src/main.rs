//! `otlp-sink`: run the receiver as a process (for demos and cross-language tests).
//! Prints `otlp-sink grpc=http://… http=http://…` once both listeners are bound.

use std::{io::Write, net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Context;
use clap::Parser;
use otlp_sink::OtlpSink;

#[derive(Parser)]
#[command(about = "An OTLP trace receiver that keeps every span (gRPC and HTTP/protobuf)")]
struct Args {
    /// OTLP/gRPC listen address.
    #[arg(long, default_value = "127.0.0.1:4317")]
    grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (also serves /spans and /tree).
    #[arg(long, default_value = "127.0.0.1:4318")]
    http_addr: SocketAddr,
    /// Append every span received to this file, one JSON object a line.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sink = OtlpSink::start_on(args.grpc_addr, args.http_addr).await?;
    println!(
        "otlp-sink grpc={} http={}",
        sink.grpc_endpoint(),
        sink.http_endpoint()
    );
    std::io::stdout().flush()?;

    let mut file = match &args.out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening {}", path.display()))?,
        ),
        None => None,
    };
    let mut written = 0;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = term.recv() => break,
            _ = tick.tick() => {
                if let Some(file) = file.as_mut() {
                    let spans = sink.spans();
                    for span in &spans[written..] {
                        writeln!(file, "{}", serde_json::to_string(span)?)?;
                    }
                    file.flush()?;
                    written = spans.len();
                }
            }
        }
    }
    sink.shutdown().await;
    Ok(())
}
