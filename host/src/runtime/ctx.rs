//! `AdapterCtx`: the per-task state of one adapter instance (its wasmtime `Store` data),
//! and the host side of the world's imports.
//!
//! WASI is present only because Rust's std links against it: no preopened directories,
//! no environment, no sockets, no stdin; stdout is discarded and stderr is kept (capped)
//! so a panic message can be reported.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits, StoreLimitsBuilder};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::guest_log;
use crate::outbound_http::{OutboundHttp, OutboundPolicy};
use crate::runtime::bindings::federation::agent_backend::{log, outbound_http, types};
use crate::runtime::bindings::{HttpError, Level, Request, Response};

/// Bytes of guest stderr kept per task (panic messages land there).
const STDERR_CAPACITY: usize = 16 * 1024;

/// What a task's adapter instance may use.
#[derive(Clone)]
pub struct Capabilities {
    pub outbound: Arc<OutboundHttp>,
    pub policy: Arc<OutboundPolicy>,
    pub max_memory_bytes: usize,
}

/// The data of one task's `Store`.
pub struct AdapterCtx {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    stderr: MemoryOutputPipe,
    capabilities: Capabilities,
    adapter: Arc<str>,
    /// When the task must be done; bounds guest CPU time and every outbound call.
    pub deadline: Instant,
    /// Time spent waiting on outbound HTTP in this task.
    pub outbound_time: Duration,
}

impl AdapterCtx {
    pub fn new(adapter: Arc<str>, capabilities: Capabilities, deadline: Instant) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        let limits = StoreLimitsBuilder::new()
            .memory_size(capabilities.max_memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        AdapterCtx {
            wasi: wasi.build(),
            table: ResourceTable::new(),
            limits,
            stderr,
            capabilities,
            adapter,
            deadline,
            outbound_time: Duration::ZERO,
        }
    }

    pub fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limits
    }

    /// What the guest wrote to stderr (lossy UTF-8, capped).
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents())
            .trim()
            .to_string()
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
        let started = Instant::now();
        let result = self
            .capabilities
            .outbound
            .send(&self.capabilities.policy, request, self.deadline)
            .await;
        self.outbound_time += started.elapsed();
        result
    }
}

impl log::Host for AdapterCtx {
    async fn log(&mut self, level: Level, message: String) {
        guest_log::emit(&self.adapter, level, &message);
    }
}
