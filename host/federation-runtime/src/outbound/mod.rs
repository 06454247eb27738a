//! Outbound HTTP, the adapters' one way out: the `outbound-http` and `outbound-stream`
//! imports.
//!
//! [`client`] is the host's client (checks, limits, trace headers) over a swappable
//! [`Transport`]; [`net`] its TLS roots and proxy; [`credential`] the host's secret
//! towards the wrapper; [`policy`] what one adapter may reach; [`stream`] a response
//! read line by line. [`OutboundCtx`] is one task's state: the shared client, the adapter's
//! policy, the task's deadline and what the task sent.

pub mod client;
pub mod credential;
pub mod net;
pub mod policy;
mod span;
pub mod stream;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use wasmtime::component::{HasData, Linker, Resource, ResourceTable};

pub use client::{
    DEADLINE_HEADER, OutboundHttp, OutboundLimits, Reqwest, Transport, TransportRequest,
    TransportResponse,
};
pub use credential::{
    CredentialError, HOST_CREDENTIAL_HEADER, HostCredential, PRINCIPAL_HEADER, inject_host_headers,
};
pub use net::{NetError, NetSettings};
pub use policy::{Origin, OutboundPolicy};
pub use stream::{BodyStream, LineStream};

use crate::bindings::federation::agent_backend::outbound_stream::ResponseStream;
use crate::bindings::federation::agent_backend::{outbound_http, outbound_stream};
use crate::bindings::{HttpError, Request, Response};

/// Per-task state of the outbound imports.
pub struct OutboundCtx {
    http: Arc<OutboundHttp>,
    policy: Arc<OutboundPolicy>,
    /// When the task must be done; bounds every outbound call.
    deadline: Instant,
    /// Requests sent (or refused for the per-task budget).
    pub requests: u32,
    /// Requests the policy refused.
    pub denied: u32,
    /// Time spent waiting on outbound exchanges.
    pub waited: Duration,
    /// Who the task runs for: sent to the wrapper as [`PRINCIPAL_HEADER`].
    principal: Option<http::HeaderValue>,
}

impl OutboundCtx {
    pub fn new(http: Arc<OutboundHttp>, policy: Arc<OutboundPolicy>, deadline: Instant) -> Self {
        OutboundCtx {
            http,
            policy,
            deadline,
            requests: 0,
            denied: 0,
            waited: Duration::ZERO,
            principal: None,
        }
    }

    /// The task runs for `principal` (the host's authenticated caller); a name that
    /// cannot be a header value is not sent.
    pub fn with_principal(mut self, principal: Option<&str>) -> Self {
        self.principal = principal.and_then(|p| http::HeaderValue::from_str(p).ok());
        self
    }

    /// Counts one more outbound request against the policy's per-task budget.
    fn take_request_budget(&mut self) -> Result<(), HttpError> {
        let budget = self.policy.max_requests_per_task;
        if self.requests >= budget {
            self.denied += 1;
            return Err(HttpError::Denied(format!(
                "this adapter may send {budget} requests per task; it sent them all"
            )));
        }
        self.requests += 1;
        Ok(())
    }

    /// Books an outbound exchange's wait and (when denied) its refusal.
    fn account<T>(&mut self, started: Instant, result: &Result<T, HttpError>) {
        self.waited += started.elapsed();
        if let Err(HttpError::Denied(_)) = result {
            self.denied += 1;
        }
    }
}

/// The outbound imports' view of a store's data: the task's state and the resource
/// table that holds its open line streams.
pub struct Outbound<'a> {
    pub ctx: &'a mut OutboundCtx,
    pub table: &'a mut ResourceTable,
}

/// A store's data that serves the outbound imports.
pub trait OutboundView: Send {
    fn outbound(&mut self) -> Outbound<'_>;
}

struct HasOutbound;

impl HasData for HasOutbound {
    type Data<'a> = Outbound<'a>;
}

/// Links `outbound-http` and `outbound-stream`.
pub fn add_to_linker<T: OutboundView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    outbound_http::add_to_linker::<T, HasOutbound>(linker, |t| t.outbound())?;
    outbound_stream::add_to_linker::<T, HasOutbound>(linker, |t| t.outbound())
}

/// The line stream behind a guest's `response-stream` handle (bindings name the
/// resource only; the table holds the [`LineStream`] under the same handle).
fn line_stream(handle: &Resource<ResponseStream>) -> Resource<LineStream> {
    Resource::new_borrow(handle.rep())
}

impl outbound_http::Host for Outbound<'_> {
    async fn send(&mut self, request: Request) -> Result<Response, HttpError> {
        self.ctx.take_request_budget()?;
        let started = Instant::now();
        let result = self
            .ctx
            .http
            .send(
                &self.ctx.policy,
                request,
                self.ctx.deadline,
                self.ctx.principal.as_ref(),
            )
            .await;
        self.ctx.account(started, &result);
        result
    }
}

impl outbound_stream::Host for Outbound<'_> {
    async fn send(&mut self, request: Request) -> Result<Resource<ResponseStream>, HttpError> {
        self.ctx.take_request_budget()?;
        let started = Instant::now();
        let result = self
            .ctx
            .http
            .send_streaming(
                &self.ctx.policy,
                request,
                self.ctx.deadline,
                self.ctx.principal.as_ref(),
            )
            .await;
        self.ctx.account(started, &result);
        let stream = result?;
        let handle = self
            .table
            .push(stream)
            .map_err(|e| HttpError::Transport(format!("no room for another response: {e}")))?;
        Ok(Resource::new_own(handle.rep()))
    }
}

impl outbound_stream::HostResponseStream for Outbound<'_> {
    async fn status(&mut self, stream: Resource<ResponseStream>) -> u16 {
        self.table
            .get(&line_stream(&stream))
            .map_or(0, |s| s.status)
    }

    async fn headers(&mut self, stream: Resource<ResponseStream>) -> Vec<(String, String)> {
        self.table
            .get(&line_stream(&stream))
            .map_or_else(|_| Vec::new(), |s| s.headers.clone())
    }

    async fn read_line(
        &mut self,
        stream: Resource<ResponseStream>,
    ) -> Result<Option<Vec<u8>>, HttpError> {
        let started = Instant::now();
        let stream = self
            .table
            .get_mut(&line_stream(&stream))
            .map_err(|e| HttpError::InvalidRequest(format!("unknown response stream: {e}")))?;
        let result = stream.read_line().await;
        self.ctx.account(started, &result);
        result
    }

    async fn drop(&mut self, stream: Resource<ResponseStream>) -> wasmtime::Result<()> {
        self.table
            .delete(Resource::<LineStream>::new_own(stream.rep()))?;
        Ok(())
    }
}
