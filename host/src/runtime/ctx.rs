//! `AdapterCtx`: the per-task state of one adapter instance (its wasmtime `Store` data),
//! and the host side of the world's imports.
//!
//! WASI is present only because Rust's std links against it, and grants nothing by
//! default: no preopened directories, no sockets or name lookups, no stdin, and only
//! the environment variables the adapter's policy lists. stdout and stderr are captured
//! (capped) and written to the host's log under the adapter's name when the task ends.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::component::{Resource, ResourceTable};
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_log;
use crate::interaction::{InteractionState, TaskInteraction};
use crate::outbound_http::{OutboundHttp, ResponseStream};
use crate::policy::SandboxPolicy;
use crate::progress::{ProgressSink, ProgressState};
use crate::runtime::bindings::federation::agent_backend::{
    interaction, log, outbound_http, outbound_stream, progress, types,
};
use crate::runtime::bindings::{HttpError, Level, ProgressEvent, Request, Response};
use crate::runtime::guest_stdio::CappedPipe;

/// Bytes of guest stdout and of stderr kept per task (panic messages land on stderr).
const STDIO_CAPACITY: usize = 16 * 1024;

/// What one task did, for its span and the adapter's metrics.
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
}

/// The data of one task's `Store`.
pub struct AdapterCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: PeakTrackingLimits,
    stdout: CappedPipe,
    stderr: CappedPipe,
    outbound: Arc<OutboundHttp>,
    policy: Arc<SandboxPolicy>,
    adapter: Arc<str>,
    progress: ProgressState,
    interaction: InteractionState,
    /// When the task must be done; bounds guest CPU time and every outbound call.
    pub deadline: Instant,
    pub usage: Usage,
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
        let stdout = CappedPipe::new(STDIO_CAPACITY);
        let stderr = CappedPipe::new(STDIO_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(&policy.env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(policy.max_memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        AdapterCtx {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits: PeakTrackingLimits {
                inner: limits,
                peak: 0,
                max: policy.max_memory_bytes,
            },
            stdout,
            stderr,
            outbound,
            policy,
            adapter,
            progress: ProgressState::new(progress),
            interaction: InteractionState::new(interaction),
            deadline,
            usage: Usage::default(),
        }
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
            memory_peak: self.limits.peak,
            progress_dropped: self.progress.dropped,
            ..self.usage
        }
    }

    /// Counts one more outbound request against the policy's per-task budget.
    fn take_request_budget(&mut self) -> Result<(), HttpError> {
        let budget = self.policy.outbound.max_requests_per_task;
        if self.usage.outbound_requests >= budget {
            self.usage.outbound_denied += 1;
            return Err(HttpError::Denied(format!(
                "this adapter may send {budget} requests per task; it sent them all"
            )));
        }
        self.usage.outbound_requests += 1;
        Ok(())
    }

    /// Books an outbound exchange's wait and (when denied) its refusal.
    fn account<T>(&mut self, started: Instant, result: &Result<T, HttpError>) {
        self.usage.outbound_time += started.elapsed();
        if let Err(HttpError::Denied(_)) = result {
            self.usage.outbound_denied += 1;
        }
    }

    /// What the run asked (JSON as the guest reported it), if it stopped to ask for
    /// input.
    pub fn interrupt(&self) -> Option<String> {
        self.interaction.interrupt().map(str::to_string)
    }

    /// What the guest wrote to stderr (lossy UTF-8, capped).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Writes what the guest printed to the host's log, tagged with its name.
    pub fn flush_stdio(&self) {
        for (pipe, level) in [(&self.stdout, Level::Info), (&self.stderr, Level::Warn)] {
            let text = pipe.text();
            if !text.is_empty() {
                guest_log::emit(&self.adapter, level, &text);
            }
        }
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

impl WasiView for AdapterCtx {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl types::Host for AdapterCtx {}

impl outbound_http::Host for AdapterCtx {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        self.take_request_budget()?;
        let started = Instant::now();
        let result = self
            .outbound
            .send(&self.policy.outbound, request, self.deadline)
            .await;
        self.account(started, &result);
        result
    }
}

impl outbound_stream::Host for AdapterCtx {
    async fn send(&mut self, request: Request) -> Result<Resource<ResponseStream>, HttpError> {
        self.take_request_budget()?;
        let started = Instant::now();
        let result = self
            .outbound
            .send_streaming(&self.policy.outbound, request, self.deadline)
            .await;
        self.account(started, &result);
        let stream = result?;
        self.table
            .push(stream)
            .map_err(|e| HttpError::Transport(format!("no room for another response: {e}")))
    }
}

impl outbound_stream::HostResponseStream for AdapterCtx {
    async fn status(&mut self, stream: Resource<ResponseStream>) -> u16 {
        self.table.get(&stream).map_or(0, |s| s.status)
    }

    async fn headers(&mut self, stream: Resource<ResponseStream>) -> Vec<(String, String)> {
        self.table
            .get(&stream)
            .map_or_else(|_| Vec::new(), |s| s.headers.clone())
    }

    async fn read_line(
        &mut self,
        stream: Resource<ResponseStream>,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        let started = Instant::now();
        let stream = self
            .table
            .get_mut(&stream)
            .map_err(|e| HttpError::InvalidRequest(format!("unknown response stream: {e}")))?;
        let result = stream.read_line().await;
        self.account(started, &result);
        result
    }

    async fn drop(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<()> {
        self.table.delete(stream)?;
        Ok(())
    }
}

impl progress::Host for AdapterCtx {
    async fn watched(&mut self) -> bool {
        self.progress.watched()
    }

    async fn emit(&mut self, event: ProgressEvent) {
        self.progress.emit(event).await;
    }
}

impl interaction::Host for AdapterCtx {
    async fn agent(&mut self) -> String {
        self.interaction.agent()
    }

    async fn resume_json(&mut self) -> Option<String> {
        self.interaction.resume_json()
    }

    async fn input_required(&mut self, value_json: String) {
        self.interaction.input_required(value_json);
    }
}

impl log::Host for AdapterCtx {
    async fn log(&mut self, level: Level, message: String) {
        guest_log::emit(&self.adapter, level, &message);
    }
}
