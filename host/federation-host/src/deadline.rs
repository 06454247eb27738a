//! How long a task may take: when its request arrived, the caller's gRPC deadline,
//! and the margin the host keeps back so that its own answer arrives in time.

use std::time::{Duration, Instant};

use tonic::Request;

/// When a request reached the service stack. Deadlines count from here, so the host's
/// own DEADLINE_EXCEEDED answer beats tonic's generic timeout (which says CANCELLED).
#[derive(Clone, Copy, Debug)]
pub struct Arrival(pub Instant);

/// Stamps a request with its [`Arrival`] (a layer in front of every service).
pub fn stamp_arrival<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// Time kept back from the caller's deadline so our own DEADLINE_EXCEEDED answer
/// (with the trace id and the cause) reaches the caller before its own timer fires
/// (which reports a bare CANCELLED). Covers timer resolution, unwinding the guest and
/// a loaded machine: a tenth of the deadline, at least 15 ms and at most 250 ms.
pub fn margin(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(15), Duration::from_millis(250))
}

/// When `request` arrived and the time its task gets: the caller's deadline less the
/// margin, capped by `default` (also the budget when the caller set no deadline).
pub fn arrival_and_budget<T>(request: &Request<T>, default: Duration) -> (Instant, Duration) {
    let received = request
        .extensions()
        .get::<Arrival>()
        .map_or_else(Instant::now, |arrival| arrival.0);
    let budget = request
        .metadata()
        .get("grpc-timeout")
        .and_then(|v| v.to_str().ok())
        .and_then(grpc_timeout)
        .map_or(default, |t| t.saturating_sub(margin(t)).min(default));
    (received, budget)
}

/// The caller's deadline from the `grpc-timeout` header (`<digits><unit>`, gRPC spec).
pub fn grpc_timeout(value: &str) -> Option<Duration> {
    if value.len() < 2 || value.len() > 9 {
        return None;
    }
    let (digits, unit) = value.split_at(value.len() - 1);
    let amount: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(amount.checked_mul(3600)?),
        "M" => Duration::from_secs(amount.checked_mul(60)?),
        "S" => Duration::from_secs(amount),
        "m" => Duration::from_millis(amount),
        "u" => Duration::from_micros(amount),
        "n" => Duration::from_nanos(amount),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeout() {
        assert_eq!(grpc_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(grpc_timeout("3S"), Some(Duration::from_secs(3)));
        assert_eq!(grpc_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(grpc_timeout("12x"), None);
        assert_eq!(grpc_timeout("m"), None);
    }
}
