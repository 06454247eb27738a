//! WASI for adapters, granting nothing: present only because Rust's std links against
//! it. No preopened directories, no sockets or name lookups, no stdin, and only the
//! environment variables the adapter's policy lists. stdout and stderr are captured,
//! kept up to a cap ([`CappedPipe`]) and written to the host's log under the adapter's
//! name when the task ends. Its view is wasmtime-wasi's `WasiView`.
//!
//! wasmtime's `MemoryOutputPipe` fails writes once full, and Rust's `println!` panics
//! on a failed write, so a chatty adapter would trap. [`CappedPipe`] keeps the first
//! `capacity` bytes for the host's log and accepts (and counts) everything after.

use std::{
    io,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll},
};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWrite;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiView};

use crate::bindings::Level;

/// Bytes of guest stdout and of stderr kept per task (panic messages land on stderr).
pub const CAPACITY: usize = 16 * 1024;

/// Per-task WASI state: an empty sandbox with captured stdout and stderr.
pub struct StdioCtx {
    wasi: WasiCtx,
    stdout: CappedPipe,
    stderr: CappedPipe,
}

impl StdioCtx {
    /// WASI that grants nothing but the environment variables `env`.
    pub fn new(env: &[(String, String)]) -> Self {
        let stdout = CappedPipe::new(CAPACITY);
        let stderr = CappedPipe::new(CAPACITY);
        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(stdout.clone())
            .stderr(stderr.clone())
            .envs(env)
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false);
        StdioCtx {
            wasi: wasi.build(),
            stdout,
            stderr,
        }
    }

    pub fn wasi(&mut self) -> &mut WasiCtx {
        &mut self.wasi
    }

    /// What the guest wrote to stderr (lossy UTF-8, capped).
    pub fn stderr(&self) -> String {
        self.stderr.text()
    }

    /// Writes what the guest printed to the host's log, tagged with `adapter`.
    pub fn flush(&self, adapter: &str) {
        for (pipe, level) in [(&self.stdout, Level::Info), (&self.stderr, Level::Warn)] {
            let text = pipe.text();
            if !text.is_empty() {
                crate::log::emit(adapter, level, &text);
            }
        }
    }
}

/// Links WASI (preview 2) for a store whose data is a `WasiView`.
pub fn add_to_linker<T: WasiView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)
}

#[derive(Clone)]
pub struct CappedPipe {
    capacity: usize,
    state: Arc<Mutex<Captured>>,
}

#[derive(Default)]
struct Captured {
    kept: BytesMut,
    dropped: usize,
}

impl CappedPipe {
    pub fn new(capacity: usize) -> Self {
        CappedPipe {
            capacity,
            state: Arc::default(),
        }
    }

    /// What was kept (lossy UTF-8), led by a note of how much was dropped (leading, so
    /// it survives the log's own line cap).
    pub fn text(&self) -> String {
        let state = self.state.lock().expect("pipe lock poisoned");
        let kept = String::from_utf8_lossy(&state.kept);
        match state.dropped {
            0 => kept.trim().to_string(),
            dropped => format!(
                "[{dropped} bytes after the first {} dropped] {}",
                self.capacity,
                kept.trim()
            ),
        }
    }

    fn take(&self, bytes: &[u8]) {
        let mut state = self.state.lock().expect("pipe lock poisoned");
        let room = self.capacity.saturating_sub(state.kept.len());
        let kept = bytes.len().min(room);
        state.kept.extend_from_slice(&bytes[..kept]);
        state.dropped += bytes.len() - kept;
    }
}

impl IsTerminal for CappedPipe {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedPipe {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[wasmtime_wasi::async_trait]
impl OutputStream for CappedPipe {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.take(&bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(64 * 1024)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for CappedPipe {
    async fn ready(&mut self) {}
}

impl AsyncWrite for CappedPipe {
    fn poll_write(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.take(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_first_bytes_and_counts_the_rest() {
        let mut pipe = CappedPipe::new(4);
        pipe.write(Bytes::from_static(b"abc")).unwrap();
        pipe.write(Bytes::from_static(b"defgh")).unwrap();
        assert_eq!(pipe.text(), "[4 bytes after the first 4 dropped] abcd");
    }
}
