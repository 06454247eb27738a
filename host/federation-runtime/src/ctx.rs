//! `AdapterCtx`: the data of one task's wasmtime `Store`, composed of one state per
//! capability ([`crate::outbound`], [`crate::progress`], [`crate::interaction`],
//! [`crate::upstream`], [`crate::log`], [`crate::stdio`]), plus the sandbox's own bookkeeping: the memory
//! limiter, the deadline and the guest CPU time the epoch callback counts.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::component::{HasData, Linker, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::bindings::federation::agent_backend::types;
use crate::interaction::{InteractionCtx, InteractionView, TaskInteraction};
use crate::log::{LogCtx, LogView};
use crate::outbound::{Outbound, OutboundCtx, OutboundHttp, OutboundView};
use crate::progress::{ProgressCtx, ProgressSink, ProgressView};
use crate::sandbox::SandboxPolicy;
use crate::stdio::StdioCtx;
use crate::upstream::{UpstreamCtx, UpstreamView};
use crate::usage::Usage;

/// The data of one task's `Store`.
pub struct AdapterCtx {
    table: ResourceTable,
    limits: PeakTrackingLimits,
    stdio: StdioCtx,
    outbound: OutboundCtx,
    progress: ProgressCtx,
    interaction: InteractionCtx,
    upstream: UpstreamCtx,
    log: LogCtx,
    policy: Arc<SandboxPolicy>,
    /// When the task must be done; bounds guest CPU time and every outbound call.
    pub deadline: Instant,
    /// Guest CPU time so far, counted in epoch ticks while the guest runs.
    pub cpu_time: Duration,
}

impl AdapterCtx {
    pub fn new(
        adapter: Arc<str>,
        outbound: Arc<OutboundHttp>,
        policy: Arc<SandboxPolicy>,
        deadline: Instant,
        progress: Option<ProgressSink>,
        interaction: TaskInteraction,
    ) -> Self {
        let limits = StoreLimitsBuilder::new()
            .memory_size(policy.max_memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        AdapterCtx {
            table: ResourceTable::new(),
            limits: PeakTrackingLimits {
                inner: limits,
                peak: 0,
                max: policy.max_memory_bytes,
            },
            stdio: StdioCtx::new(&policy.env),
            outbound: OutboundCtx::new(outbound, policy.outbound.clone(), deadline)
                .with_principal(interaction.principal.as_deref()),
            progress: ProgressCtx::new(progress),
            interaction: InteractionCtx::new(interaction),
            upstream: UpstreamCtx::default(),
            log: LogCtx::new(adapter),
            policy,
            deadline,
            cpu_time: Duration::ZERO,
        }
    }

    /// Links every import of the `agent-backend` world (and WASI) for this data.
    pub fn add_to_linker(linker: &mut Linker<AdapterCtx>) -> wasmtime::Result<()> {
        crate::stdio::add_to_linker(linker)?;
        types::add_to_linker::<_, HasTypes>(linker, |_| Types)?;
        crate::log::add_to_linker(linker)?;
        crate::outbound::add_to_linker(linker)?;
        crate::progress::add_to_linker(linker)?;
        crate::interaction::add_to_linker(linker)?;
        crate::upstream::add_to_linker(linker)
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// What the task used so far.
    pub fn usage(&self) -> Usage {
        Usage {
            outbound_time: self.outbound.waited,
            cpu_time: self.cpu_time,
            memory_peak: self.limits.peak,
            outbound_requests: self.outbound.requests,
            outbound_denied: self.outbound.denied,
            progress_dropped: self.progress.dropped,
            log_dropped: self.log.dropped_lines as u32,
        }
    }

    /// What the run asked (JSON as the guest reported it), if it stopped to ask for
    /// input.
    pub fn interrupt(&self) -> Option<String> {
        self.interaction.interrupt().map(str::to_string)
    }

    /// What the guest reported of the wrapper's error through `upstream`, if anything.
    pub fn take_upstream_report(
        &mut self,
    ) -> Option<crate::bindings::federation::agent_backend::upstream::WrapperError> {
        self.upstream.take_report()
    }

    /// What the guest wrote to stderr (lossy UTF-8, capped).
    pub fn stderr(&self) -> String {
        self.stdio.stderr()
    }

    /// Writes what the guest printed to the host's log, tagged with its name, and what
    /// the log caps dropped.
    pub fn flush_stdio(&self) {
        self.stdio.flush(self.log.adapter());
        self.log.flush();
    }
}

/// The world's shared `types` interface: types only, nothing to serve.
struct Types;

impl types::Host for Types {}

struct HasTypes;

impl HasData for HasTypes {
    type Data<'a> = Types;
}

impl WasiView for AdapterCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: self.stdio.wasi(),
            table: &mut self.table,
        }
    }
}

impl OutboundView for AdapterCtx {
    fn outbound(&mut self) -> Outbound<'_> {
        Outbound {
            ctx: &mut self.outbound,
            table: &mut self.table,
        }
    }
}

impl ProgressView for AdapterCtx {
    fn progress(&mut self) -> &mut ProgressCtx {
        &mut self.progress
    }
}

impl InteractionView for AdapterCtx {
    fn interaction(&mut self) -> &mut InteractionCtx {
        &mut self.interaction
    }
}

impl UpstreamView for AdapterCtx {
    fn upstream(&mut self) -> &mut UpstreamCtx {
        &mut self.upstream
    }
}

impl LogView for AdapterCtx {
    fn log(&mut self) -> &mut LogCtx {
        &mut self.log
    }
}

/// `StoreLimits` plus the largest memory the guest asked for, and a typed trap when
/// the guest asks for more than its policy allows.
struct PeakTrackingLimits {
    inner: StoreLimits,
    peak: usize,
    max: usize,
}

/// The trap raised when a guest grows its memory past its policy's limit.
#[derive(Debug, thiserror::Error)]
#[error("the adapter asked for {desired} bytes of memory; its limit is {limit}")]
pub struct MemoryLimitReached {
    pub desired: usize,
    pub limit: usize,
}

impl ResourceLimiter for PeakTrackingLimits {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max {
            return Err(wasmtime::Error::new(MemoryLimitReached {
                desired,
                limit: self.max,
            }));
        }
        let granted = self.inner.memory_growing(current, desired, maximum)?;
        if granted {
            self.peak = self.peak.max(desired);
        }
        Ok(granted)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.inner.table_growing(current, desired, maximum)
    }
}
