//! `otlp-sink`: run the receiver as a process (for demos and cross-language tests).
//! Prints `otlp-sink grpc=http://… http=http://…` once both listeners are bound, and
//! runs until SIGTERM or Ctrl-C.

use std::{
    fs::{File, OpenOptions},
    io::{BufWriter, Write},
    net::SocketAddr,
    path::PathBuf,
};

use anyhow::Context;
use clap::Parser;
use otlp_sink::{OtlpSink, RecordedSpan};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "An OTLP trace receiver that keeps every span (gRPC and HTTP)")]
struct Args {
    /// OTLP/gRPC listen address (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:4317")]
    grpc_addr: SocketAddr,
    /// OTLP/HTTP listen address (also serves /spans, /tree and /healthz).
    #[arg(long, default_value = "127.0.0.1:4318")]
    http_addr: SocketAddr,
    /// Append every span received to this file, one JSON object a line.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut out = match &args.out {
        Some(path) => Some(BufWriter::new(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening --out {}", path.display()))?,
        )),
        None => None,
    };
    // Handlers go in before the ready line, so a signal sent right after it is ours.
    let mut interrupt = signal(SignalKind::interrupt()).context("installing SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing SIGTERM handler")?;
    let sink = OtlpSink::start_on(args.grpc_addr, args.http_addr).await?;
    println!(
        "otlp-sink grpc={} http={}",
        sink.grpc_endpoint(),
        sink.http_endpoint()
    );
    std::io::stdout().flush()?;

    let mut written = 0;
    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = terminate.recv() => break,
            // Cancel-safe: it only reads, so a signal arriving meanwhile loses nothing.
            new = sink.spans_after(written) => {
                written += new.len();
                if let Some(out) = out.as_mut() {
                    append(out, &new)?;
                }
            }
        }
    }
    // Spans that arrived between the last batch and the signal.
    if let Some(out) = out.as_mut() {
        append(out, &sink.spans()[written..])?;
    }
    sink.shutdown().await;
    Ok(())
}

fn append(out: &mut BufWriter<File>, spans: &[RecordedSpan]) -> anyhow::Result<()> {
    for span in spans {
        serde_json::to_writer(&mut *out, span)?;
        out.write_all(b"\n")?;
    }
    out.flush().context("writing --out")
}
