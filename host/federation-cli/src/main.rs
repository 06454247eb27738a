//! The `agent-federation` binary: `serve` runs the host (`federation_host`); `call`,
//! `start`, `get`, `cancel`, `agents`, `health` and `adapters` drive a running one
//! ([`client`], over [`connect`]: TLS, mTLS, bearer token); `dev-certs` writes a TLS +
//! token setup for trying that ([`dev_certs`]); `adapter check` and `adapter new` are
//! the adapter author's tools ([`check`], [`scaffold`]).

mod check;
mod cli;
mod client;
mod connect;
mod dev_certs;
mod scaffold;

use anyhow::Context;
use clap::Parser;

use cli::{AdapterCommand, Cli, Command};
use federation_host::Telemetry;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        restore_sigpipe();
    }
    match cli.command {
        Command::Serve(args) => {
            let telemetry = Telemetry::init()?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("binding {}", args.listen))?;
            let result =
                federation_host::serve(*args, listener, federation_host::shutdown_signal()).await;
            telemetry.shutdown();
            result
        }
        Command::Call(args) => std::process::exit(client::call(args).await?),
        Command::Start(args) => std::process::exit(client::start(args).await?),
        Command::Get(args) => std::process::exit(client::task_status(args, false).await?),
        Command::Cancel(args) => std::process::exit(client::task_status(args, true).await?),
        Command::Watch(args) => std::process::exit(client::watch_task(args).await?),
        Command::Agents(args) => std::process::exit(client::agents(args).await?),
        Command::Health(args) => std::process::exit(client::health(args).await?),
        Command::Adapters(args) => std::process::exit(client::adapters(args).await?),
        Command::DevCerts(args) => dev_certs::write(&args),
        Command::Adapter(AdapterCommand::Check { file, policy }) => {
            let telemetry = Telemetry::init_local()?;
            let code = check::check(check::CheckArgs { file, policy }).await?;
            telemetry.shutdown();
            std::process::exit(code)
        }
        Command::Adapter(AdapterCommand::New { name, dir, sdk }) => {
            let dir = scaffold::new_adapter(scaffold::NewArgs { name, dir, sdk })?;
            println!(
                "created {}: build it with `cargo build --release --target wasm32-wasip2` there",
                dir.display()
            );
            Ok(())
        }
    }
}

/// Rust ignores SIGPIPE, so printing into a closed pipe (`call --json | head`) fails
/// and `println!` panics. A command-line client should just end, as other Unix tools
/// do. Not for `serve`: a peer closing a socket must never kill the host.
fn restore_sigpipe() {
    // SAFETY: signal() only sets the process-wide disposition; SIG_DFL is valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
