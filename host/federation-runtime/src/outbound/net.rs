//! How the host's HTTP clients reach the network: TLS by rustls (ring provider) trusting
//! the operating system's roots plus an optional CA bundle (`--outbound-ca-file`), and
//! proxies only when one is configured (`--outbound-proxy`): `HTTP_PROXY` and friends in
//! the host's environment are ignored, so whoever sets the host's environment cannot
//! route adapter or wrapper traffic (and the wrapper credential) through a proxy of
//! their choice.
//!
//! Every client of the host that carries adapter or wrapper traffic is built here: the
//! adapters' [`Reqwest`](super::Reqwest) transport and the host's own calls to the
//! wrapper's run API.

use std::{path::PathBuf, time::Duration};

use url::Url;

/// What the host's HTTP clients trust and go through.
#[derive(Clone, Debug, Default)]
pub struct NetSettings {
    /// PEM file of extra CA certificates trusted beside the system's roots.
    pub ca_file: Option<PathBuf>,
    /// Proxy for every outbound request (`http://` or `https://`); none when unset.
    pub proxy: Option<Url>,
}

/// Why the host's HTTP client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("reading the outbound CA file {path}: {source}")]
    CaRead {
        path: String,
        source: std::io::Error,
    },
    #[error("the outbound CA file {path} holds no PEM certificate: {message}")]
    CaInvalid { path: String, message: String },
    #[error("outbound proxy {url}: {message}")]
    Proxy { url: String, message: String },
    #[error("building the HTTP client: {0}")]
    Build(String),
}

impl NetSettings {
    /// A client builder with TLS roots and proxy settled; redirects are not followed
    /// (one could lead past an adapter's allow-list).
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, NetError> {
        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .tls_built_in_native_certs(true)
            .redirect(reqwest::redirect::Policy::none());
        if let Some(path) = &self.ca_file {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| NetError::CaRead {
                path: shown.clone(),
                source,
            })?;
            let certificates =
                reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| NetError::CaInvalid {
                    path: shown.clone(),
                    message: e.to_string(),
                })?;
            if certificates.is_empty() {
                return Err(NetError::CaInvalid {
                    path: shown,
                    message: "no certificate found".into(),
                });
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        // reqwest reads HTTP_PROXY/HTTPS_PROXY/ALL_PROXY unless told not to.
        builder = builder.no_proxy();
        if let Some(url) = &self.proxy {
            let proxy = reqwest::Proxy::all(url.as_str()).map_err(|e| NetError::Proxy {
                url: url.to_string(),
                message: e.to_string(),
            })?;
            builder = builder.proxy(proxy);
        }
        Ok(builder)
    }

    /// A client for the host's own short calls (`timeout` per call).
    pub fn client(&self, timeout: Duration) -> Result<reqwest::Client, NetError> {
        self.client_builder()?
            .timeout(timeout)
            .build()
            .map_err(|e| NetError::Build(e.to_string()))
    }
}
