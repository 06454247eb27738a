//! A gRPC status's `google.rpc` details (`grpc-status-details-bin`) in ProtoJSON, as the
//! HTTP doors (A2A, MCP) give them to their callers: the same `ErrorInfo` reason,
//! `RetryInfo` and `BadRequest` a gRPC caller reads (docs/errors.md).

use prost::Message as _;
use serde_json::{Value, json};
use tonic::Status;

/// The `google.rpc` details of a status, ProtoJSON (none when it has none or they do
/// not decode).
pub fn status_details_json(status: &Status) -> Vec<Value> {
    if status.details().is_empty() {
        return Vec::new();
    }
    match tonic_types::pb::Status::decode(status.details()) {
        Ok(decoded) => decoded.details.iter().filter_map(any_to_json).collect(),
        Err(_) => Vec::new(),
    }
}

/// A `google.rpc` detail (`ErrorInfo`, `RetryInfo`, `BadRequest`) as ProtoJSON `Any`;
/// `None` for other types.
pub fn any_to_json(any: &prost_types::Any) -> Option<Value> {
    use tonic_types::pb::{BadRequest, ErrorInfo, RetryInfo};
    let type_url = any.type_url.as_str();
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let mut body = match name {
        "google.rpc.ErrorInfo" => {
            let info = ErrorInfo::decode(any.value.as_slice()).ok()?;
            json!({"reason": info.reason, "domain": info.domain, "metadata": info.metadata})
        }
        "google.rpc.RetryInfo" => {
            let info = RetryInfo::decode(any.value.as_slice()).ok()?;
            let delay = info.retry_delay.unwrap_or_default();
            let seconds = delay.seconds as f64 + f64::from(delay.nanos) / 1e9;
            json!({"retryDelay": format!("{seconds}s")})
        }
        "google.rpc.BadRequest" => {
            let request = BadRequest::decode(any.value.as_slice()).ok()?;
            let violations: Vec<Value> = request
                .field_violations
                .iter()
                .map(|v| json!({"field": v.field, "description": v.description}))
                .collect();
            json!({"fieldViolations": violations})
        }
        _ => return None,
    };
    body["@type"] = Value::String(format!("type.googleapis.com/{name}"));
    Some(body)
}

/// The `ErrorInfo` reason among ProtoJSON details, if any.
pub fn reason_of(details: &[Value]) -> Option<String> {
    details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo")
        .and_then(|d| d["reason"].as_str())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;
    use tonic_types::{ErrorDetails, StatusExt};

    #[test]
    fn reason_retry_and_bad_field_come_out_as_protojson() {
        let mut details = ErrorDetails::with_error_info("OVERLOADED", "federation", []);
        details.set_retry_info(Some(std::time::Duration::from_millis(1500)));
        details.add_bad_request_violation("goal", "empty");
        let status = Status::with_error_details(Code::Unavailable, "busy", details);
        let json = status_details_json(&status);
        assert_eq!(reason_of(&json).as_deref(), Some("OVERLOADED"));
        assert!(json.iter().any(|d| d["retryDelay"] == "1.5s"), "{json:?}");
        assert!(
            json.iter()
                .any(|d| d["fieldViolations"][0]["field"] == "goal"),
            "{json:?}"
        );
        assert!(status_details_json(&Status::internal("no details")).is_empty());
    }
}
