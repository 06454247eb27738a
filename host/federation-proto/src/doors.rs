//! What the HTTP doors (A2A, MCP) share: a call authenticated exactly as the host's
//! gRPC API authenticates one (the [`Authenticator`] the host gives each door), and the
//! agents a door offers (those the host can run), and which ids a door passes on as
//! they are.

use tonic::metadata::MetadataMap;

use crate::AgentInfo;

/// Authenticates a call as the host's gRPC API does: the request's metadata (the
/// HTTP headers) in, the request with what the host's handlers need in its extensions
/// (the caller) and the principal's name out, or the status the gRPC API would answer.
pub trait Authenticator: Send + Sync + 'static {
    #[allow(clippy::result_large_err)] // tonic's own interceptor signature
    fn authenticate(
        &self,
        request: tonic::Request<()>,
    ) -> Result<(tonic::Request<()>, String), tonic::Status>;
}

/// One authenticated call: the principal and what the host's own requests carry
/// (metadata and the authenticator's extensions).
#[derive(Clone)]
pub struct Caller {
    pub principal: String,
    pub metadata: MetadataMap,
    pub extensions: http::Extensions,
}

impl Caller {
    /// A host request carrying this call's credentials, trace and deadline.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        tonic::Request::from_parts(self.metadata.clone(), self.extensions.clone(), message)
    }
}

/// The caller of an HTTP request, authenticated from its headers as the gRPC API would
/// authenticate it (the headers are the metadata), or the status the gRPC API answers.
#[allow(clippy::result_large_err)] // the authenticator's status, as tonic's
pub fn authenticate(
    auth: &dyn Authenticator,
    headers: &http::HeaderMap,
    extensions: http::Extensions,
) -> Result<Caller, tonic::Status> {
    let mut metadata = MetadataMap::from_headers(headers.clone());
    // A deadline in milliseconds, as the host's gRPC deadline (`grpc-timeout`).
    if let Some(ms) = headers
        .get("x-federation-deadline-ms")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .filter(|ms| *ms > 0 && *ms < 100_000_000)
        && let Ok(value) = format!("{ms}m").parse()
    {
        metadata.insert("grpc-timeout", value);
    }
    let probe = tonic::Request::from_parts(metadata, extensions, ());
    let (request, principal) = auth.authenticate(probe)?;
    let (metadata, extensions, ()) = request.into_parts();
    Ok(Caller {
        principal,
        metadata,
        extensions,
    })
}

/// The agents a door offers, of those `ListAgents` lists: the ones with a loaded
/// backend (the host can run them).
pub fn runnable(agents: Vec<AgentInfo>) -> Vec<AgentInfo> {
    agents
        .into_iter()
        .filter(|a| !a.backends.is_empty())
        .collect()
}

/// The longest session or request id (the wrapper applies the same bound).
pub const MAX_ID_CHARS: usize = 128;

/// Whether `id` is a valid session or request id: 1 to [`MAX_ID_CHARS`] of
/// `[A-Za-z0-9._:-]`, not starting with '.', without '..' (ids are storage keys
/// downstream). The one rule of the host's own check (`validate`) and of the doors,
/// so an id a door passes on is never refused behind it.
pub fn id_is_valid(id: &str) -> bool {
    (1..=MAX_ID_CHARS).contains(&id.len())
        && !id.starts_with('.')
        && !id.contains("..")
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._:-".contains(&b))
}
