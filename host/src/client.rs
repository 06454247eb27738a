//! `agent-federation call`: a small gRPC client so a user can try a host without grpcurl.

use anyhow::Context;
use tonic::metadata::MetadataValue;

use crate::config::{CallArgs, HealthArgs};
use crate::json::{json_to_struct, struct_to_json};
use crate::proto::TaskRequest;
use crate::proto::federation_service_client::FederationServiceClient;

/// Sends one task; prints the result (or the gRPC error) and returns the exit code.
pub async fn call(args: CallArgs) -> anyhow::Result<i32> {
    let input = match serde_json::from_str(&args.input).context("--input is not JSON")? {
        serde_json::Value::Object(map) => json_to_struct(map),
        _ => anyhow::bail!("--input must be a JSON object"),
    };
    let mut client = FederationServiceClient::connect(args.host.addr.clone())
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let mut request = tonic::Request::new(TaskRequest {
        goal: args.goal,
        context: args.context,
        input_data: Some(input),
        federation_session_id: args.session,
        backend: args.backend,
        request_id: args.request_id,
        metadata: Default::default(),
    });
    request.set_timeout(std::time::Duration::from_millis(args.timeout_ms));
    if let Some(traceparent) = &args.traceparent {
        let value: MetadataValue<_> = traceparent.parse().context("--traceparent")?;
        request.metadata_mut().insert("traceparent", value);
    }
    match client.run_agent_task(request).await {
        Ok(response) => {
            let r = response.into_inner();
            let result = r.result.as_ref().map(struct_to_json).transpose();
            let result = serde_json::Value::Object(result.ok().flatten().unwrap_or_default());
            if args.json {
                let timing = r.timing.unwrap_or_default();
                let whole = serde_json::json!({
                    "output": r.output,
                    "trace_id": r.trace_id,
                    "federation_session_id": r.federation_session_id,
                    "request_id": r.request_id,
                    "backend": r.backend,
                    "adapter_version": r.adapter_version,
                    "adapter_digest": r.adapter_digest,
                    "resumed": r.resumed,
                    "timing_us": {
                        "total": timing.total_us,
                        "instantiate": timing.instantiate_us,
                        "adapter": timing.adapter_us,
                        "outbound": timing.outbound_us,
                    },
                    "result": result,
                });
                println!("{}", serde_json::to_string_pretty(&whole)?);
            } else {
                println!(
                    "backend:    {} {} (sha256 {:.12})",
                    r.backend, r.adapter_version, r.adapter_digest
                );
                println!(
                    "session:    {}  resumed: {}",
                    r.federation_session_id, r.resumed
                );
                println!("trace id:   {}", r.trace_id);
                if let Some(t) = r.timing {
                    println!(
                        "timing:     total {} µs, instantiate {} µs, adapter {} µs, outbound {} µs",
                        t.total_us, t.instantiate_us, t.adapter_us, t.outbound_us
                    );
                }
                println!("output:\n{}", r.output);
            }
            Ok(0)
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            if let Some(trace) = status.metadata().get("x-trace-id") {
                eprintln!("trace id: {}", trace.to_str().unwrap_or_default());
            }
            Ok(1)
        }
    }
}

/// Checks a host's health; prints the status and returns the exit code (0 = SERVING).
pub async fn health(args: HealthArgs) -> anyhow::Result<i32> {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let channel = tonic::transport::Endpoint::from_shared(args.host.addr.clone())?
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.host.addr))?;
    let mut client = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: args.service.clone(),
    };
    match client.check(request).await {
        Ok(reply) => {
            let status = ServingStatus::try_from(reply.into_inner().status)
                .unwrap_or(ServingStatus::Unknown);
            println!("{:?}: {}", args.service, status.as_str_name());
            Ok(if status == ServingStatus::Serving {
                0
            } else {
                1
            })
        }
        Err(status) => {
            eprintln!("error: {:?}: {}", status.code(), status.message());
            Ok(1)
        }
    }
}
