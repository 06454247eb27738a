//! How a client subcommand reaches the host: a channel (TLS for `https://`, with the
//! given CA or the public web roots, and a client certificate for mTLS) and the caller's
//! bearer token added to every call.

use std::path::Path;

use anyhow::Context;
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::{Interceptor, interceptor::InterceptedService};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::cli::HostAddress;

/// Adds `authorization: Bearer <token>` to every call when a token is set.
#[derive(Clone)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Bearer {
    /// Adds `value` (`Bearer <token>`) to every call.
    pub fn new(value: AsciiMetadataValue) -> Bearer {
        Bearer(Some(value))
    }
}

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A channel with the caller's token on every call.
pub type Authed = InterceptedService<Channel, Bearer>;

impl HostAddress {
    /// The endpoint of `--addr`, with TLS set up for an `https://` address.
    pub fn endpoint(&self) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(self.addr.clone())
            .with_context(|| format!("--addr {:?} is not a URL", self.addr))?;
        if !self.addr.starts_with("https://") {
            if self.tls_ca.is_some() || self.tls_cert.is_some() {
                anyhow::bail!("--tls-ca and --tls-cert need an https:// --addr");
            }
            return Ok(endpoint);
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let read = |path: &Path| {
            std::fs::read(path).with_context(|| format!("reading {}", path.display()))
        };
        let mut tls = ClientTlsConfig::new();
        tls = match &self.tls_ca {
            Some(ca) => tls.ca_certificate(Certificate::from_pem(read(ca)?)),
            None => tls.with_webpki_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        endpoint.tls_config(tls).context("configuring TLS")
    }

    /// The `authorization` value of `--token` (or `--token-file`), if any.
    pub fn bearer(&self) -> anyhow::Result<Bearer> {
        let token = match (&self.token, &self.token_file) {
            (Some(token), _) => token.trim().to_string(),
            (None, Some(file)) => std::fs::read_to_string(file)
                .with_context(|| format!("reading the token file {}", file.display()))?
                .trim()
                .to_string(),
            (None, None) => return Ok(Bearer(None)),
        };
        if token.is_empty() {
            anyhow::bail!("the token is empty");
        }
        let value: AsciiMetadataValue = MetadataValue::try_from(format!("Bearer {token}"))
            .context("the token is not a valid header value")?;
        Ok(Bearer(Some(value)))
    }

    /// A connected channel with the caller's token on every call.
    pub async fn connect(&self) -> anyhow::Result<Authed> {
        let bearer = self.bearer()?;
        let channel = self.endpoint()?.connect().await?;
        Ok(InterceptedService::new(channel, bearer))
    }
}
