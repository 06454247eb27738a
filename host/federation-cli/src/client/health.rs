//! `health`: a gRPC health probe of the host or of one of its services.

use super::output::print_error;
use super::{error_chain, exit};
use crate::cli::HealthArgs;

/// Checks a host's health; prints the status and returns the exit code (0 = SERVING).
pub async fn health(args: HealthArgs) -> anyhow::Result<i32> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    // Health needs no token, but a host requiring mTLS needs the client certificate.
    let channel = match args.host.connect().await {
        Ok(channel) => channel,
        Err(e) => {
            eprintln!(
                "error: UNAVAILABLE: connecting to {}: {}",
                args.host.addr,
                error_chain(&e)
            );
            return Ok(exit::RETRY_LATER);
        }
    };
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    match client.check(request).await {
        Ok(reply) => {
            let status = ServingStatus::try_from(reply.into_inner().status)
                .unwrap_or(ServingStatus::Unknown);
            if args.json {
                let json = serde_json::json!({
                    "service": args.service,
                    "status": status.as_str_name(),
                });
                println!("{json}");
            } else {
                println!("{:?}: {}", args.service, status.as_str_name());
            }
            Ok(if status == ServingStatus::Serving {
                exit::OK
            } else {
                exit::FAILURE
            })
        }
        Err(status) => Ok(print_error(&status, args.json)),
    }
}
