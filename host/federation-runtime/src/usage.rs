//! What one task used, for its span and its adapter's metrics.

use std::time::Duration;

/// What one task did: guest CPU and memory, outbound calls, dropped progress events.
#[derive(Clone, Copy, Debug, Default)]
pub struct Usage {
    /// Time waiting on outbound HTTP.
    pub outbound_time: Duration,
    /// Guest CPU time, counted in epoch ticks while the guest runs.
    pub cpu_time: Duration,
    /// Largest linear memory the guest asked for, bytes.
    pub memory_peak: usize,
    pub outbound_requests: u32,
    pub outbound_denied: u32,
    /// Progress events dropped because the task reported too many.
    pub progress_dropped: u32,
    /// Log lines dropped because the task logged too much.
    pub log_dropped: u32,
}
