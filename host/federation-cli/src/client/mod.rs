//! The client subcommands, one module per command group: [`task`] (`call`, `start`,
//! `get`, `cancel`, `watch`), [`agents`] (ListAgents), [`health`] (probes),
//! [`adapters`] (AdminService) and [`push`] (a registry), so a user can drive a host
//! without grpcurl. What they print is formatted in [`output`] and [`admin_output`];
//! their exit codes are in [`exit`].

mod adapters;
mod admin_output;
mod agents;
pub mod exit;
mod health;
mod output;
mod push;
mod task;

pub use adapters::adapters;
pub use agents::agents;
pub use health::health;
pub use task::{call, start, task_status, watch_task};

use crate::cli::HostAddress;
use crate::connect::Authed;
use federation_proto::federation_service_client::FederationServiceClient;

/// A connected FederationService client, with the caller's token; a host that cannot
/// be reached is reported like an `UNAVAILABLE` answer (exit [`exit::RETRY_LATER`]).
async fn connect(host: &HostAddress) -> Result<FederationServiceClient<Authed>, i32> {
    match host.connect().await {
        Ok(channel) => Ok(FederationServiceClient::new(channel)),
        Err(e) => {
            eprintln!(
                "error: UNAVAILABLE: connecting to {}: {}",
                host.addr,
                error_chain(&e)
            );
            Err(exit::RETRY_LATER)
        }
    }
}

/// An error with its causes (tonic's transport errors hide the TLS reason in them).
fn error_chain(error: &anyhow::Error) -> String {
    error
        .chain()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(": ")
}
