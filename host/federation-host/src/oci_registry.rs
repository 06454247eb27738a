//! The OCI registry client: adapters as OCI artifacts, in the layout `wkg` and wasmCloud use: a manifest whose
//! config has media type [`WASM_CONFIG`] and whose first layer is the component
//! ([`WASM_LAYER`]), so the layer digest is the component's sha256 — the host's
//! `adapter_digest`. An adapter's policy manifest travels as a second, typed layer
//! ([`POLICY_LAYER`]); tools that only know the wasm layout ignore it.
//!
//! Used by `agent-federation adapters push` and by the host's registry adapter
//! sources (`lifecycle::registry_sources`). Registries are reached over https with the
//! system's roots plus `--registry-ca-file`; plain http only for registries listed in
//! `--insecure-registry` (e.g. a loopback test registry). Credentials come from a file
//! or the environment and never appear in logs or `Debug` output.

use std::{collections::BTreeMap, path::PathBuf, sync::Once, time::Duration};

use clap::Args;
use oci_client::{
    Client, Reference,
    client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol, Config, ImageLayer},
    manifest::{OciDescriptor, OciImageManifest},
    secrets::RegistryAuth,
};

use federation_runtime::digest_of;

/// Config media type of a Wasm component artifact (CNCF TAG Runtime layout).
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";
/// Media type of the component layer.
pub const WASM_LAYER: &str = "application/wasm";
/// Media type of the policy manifest layer (the adapter's `NAME.toml`).
pub const POLICY_LAYER: &str = "application/vnd.agent-federation.policy.v1+toml";
/// The scheme of an adapter reference.
pub const SCHEME: &str = "oci://";

/// Why a registry operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error(
        "{0:?} is not an adapter reference: expected oci://REGISTRY/REPO:TAG or oci://REGISTRY/REPO@sha256:HEX"
    )]
    BadReference(String),
    #[error("registry {registry}: {source}")]
    Registry {
        registry: String,
        #[source]
        source: oci_client::errors::OciDistributionError,
    },
    #[error("{reference} is not a Wasm component artifact: {reason}")]
    NotAComponent { reference: String, reason: String },
    #[error("{reference}: the component layer is {size} bytes, over the limit of {limit}")]
    TooLarge {
        reference: String,
        size: i64,
        limit: usize,
    },
    #[error("{what} {path}: {source}")]
    File {
        what: &'static str,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the registry credentials {0} are not USERNAME:PASSWORD")]
    BadCredentials(String),
    #[error("the registry CA file {0} holds no PEM certificate")]
    BadCa(String),
    #[error("setting up the registry client: {0}")]
    Setup(#[source] oci_client::errors::OciDistributionError),
}

impl OciError {
    /// Whether the registry refused the credentials (or their absence).
    pub fn is_denied(&self) -> bool {
        use oci_client::errors::OciDistributionError as E;
        match self {
            OciError::Registry { source, .. } => match source {
                E::AuthenticationFailure(_) | E::UnauthorizedError { .. } => true,
                E::ServerError { code, .. } => matches!(code, 401 | 403),
                _ => false,
            },
            _ => false,
        }
    }
}

/// How to reach registries: flags shared by `serve` and `adapters push`.
#[derive(Args, Debug, Clone, Default)]
pub struct RegistryArgs {
    /// Registry (HOST:PORT) reached over plain http instead of https, e.g. a loopback
    /// test registry (repeatable). Every other registry is https only.
    #[arg(
        long = "insecure-registry",
        env = "FEDERATION_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,
    /// PEM file of CA certificates trusted for registries, besides the system's roots
    /// (`serve`: --outbound-ca-file when not given).
    #[arg(long, env = "FEDERATION_REGISTRY_CA_FILE")]
    pub registry_ca_file: Option<PathBuf>,
    /// File holding registry credentials as `USERNAME:PASSWORD` on its first line
    /// (e.g. a mounted secret). Anonymous when neither it nor
    /// FEDERATION_REGISTRY_USERNAME/FEDERATION_REGISTRY_PASSWORD are set.
    #[arg(long, env = "FEDERATION_REGISTRY_CREDENTIALS_FILE")]
    pub registry_credentials_file: Option<PathBuf>,
}

/// An adapter's place in a registry: a tag to follow, or a pinned manifest digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdapterRef {
    reference: Reference,
}

impl AdapterRef {
    /// Parses `oci://REGISTRY/REPO:TAG` or `oci://REGISTRY/REPO@sha256:HEX`. The
    /// registry must be explicit (no Docker Hub default).
    pub fn parse(text: &str) -> Result<AdapterRef, OciError> {
        let bad = || OciError::BadReference(text.to_string());
        let rest = text.strip_prefix(SCHEME).ok_or_else(bad)?;
        let (registry, path) = rest.split_once('/').ok_or_else(bad)?;
        // The parser would default a missing tag to "latest": require one.
        let last = path.rsplit('/').next().unwrap_or_default();
        if !last.contains(':') && !last.contains('@') {
            return Err(bad());
        }
        // Without a dot, a colon or "localhost", the parser would read it as a Docker
        // Hub namespace.
        if !(registry.contains('.') || registry.contains(':') || registry == "localhost") {
            return Err(bad());
        }
        let reference: Reference = rest.parse().map_err(|_| bad())?;
        if reference.tag().is_none() && reference.digest().is_none() {
            return Err(bad());
        }
        if reference.tag().is_some() && reference.digest().is_some() {
            return Err(bad());
        }
        Ok(AdapterRef { reference })
    }

    /// The manifest digest it is pinned to (`sha256:...`), if any.
    pub fn pinned(&self) -> Option<&str> {
        self.reference.digest()
    }

    pub fn registry(&self) -> &str {
        self.reference.registry()
    }

    /// The same repository at manifest `digest`.
    fn at(&self, digest: &str) -> Reference {
        Reference::with_digest(
            self.reference.registry().to_string(),
            self.reference.repository().to_string(),
            digest.to_string(),
        )
    }
}

impl std::fmt::Display for AdapterRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{SCHEME}{}", self.reference.whole())
    }
}

/// Registry credentials; `Debug` never shows the secret.
#[derive(Clone)]
pub struct Credentials(RegistryAuth);

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            RegistryAuth::Anonymous => f.write_str("Credentials(anonymous)"),
            _ => f.write_str("Credentials(<redacted>)"),
        }
    }
}

/// A registry client with its credentials.
pub struct Registry {
    client: Client,
    auth: Credentials,
}

/// A component pulled from a registry.
pub struct Pulled {
    /// Digest of the manifest (`sha256:...`).
    pub manifest_digest: String,
    pub component: Vec<u8>,
    /// The policy manifest layer's text, if the artifact has one.
    pub policy: Option<String>,
}

/// What a push published.
pub struct Pushed {
    pub manifest_digest: String,
    /// sha256 of the component, hex (the host's `adapter_digest`).
    pub component_digest: String,
}

impl Registry {
    /// A client per `args`: https with the system roots (plus the CA file), plain http
    /// for the listed insecure registries.
    pub fn new(args: &RegistryArgs, timeout: Duration) -> Result<Registry, OciError> {
        install_crypto_provider();
        let mut config = ClientConfig {
            protocol: if args.insecure_registries.is_empty() {
                ClientProtocol::Https
            } else {
                ClientProtocol::HttpsExcept(args.insecure_registries.clone())
            },
            connect_timeout: Some(timeout),
            read_timeout: Some(timeout),
            user_agent: concat!("agent-federation/", env!("CARGO_PKG_VERSION")),
            // Components are single-platform artifacts: an image index is refused.
            platform_resolver: None,
            ..ClientConfig::default()
        };
        if let Some(path) = &args.registry_ca_file {
            let data = std::fs::read(path).map_err(|source| OciError::File {
                what: "reading the registry CA file",
                path: path.display().to_string(),
                source,
            })?;
            if !String::from_utf8_lossy(&data).contains("-----BEGIN CERTIFICATE-----") {
                return Err(OciError::BadCa(path.display().to_string()));
            }
            config.extra_root_certificates.push(Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            });
        }
        // Not `Client::new`: on a bad config it falls back to defaults, silently
        // dropping the CA file and the insecure list.
        let client = Client::try_from(config).map_err(OciError::Setup)?;
        Ok(Registry {
            client,
            auth: credentials(args)?,
        })
    }

    /// The manifest digest `reference` names now (a HEAD request; cheap to poll).
    pub async fn manifest_digest(&self, reference: &AdapterRef) -> Result<String, OciError> {
        self.client
            .fetch_manifest_digest(&reference.reference, &self.auth.0)
            .await
            .map_err(|source| registry_error(reference, source))
    }

    /// Pulls the component (and policy) of manifest `manifest_digest` in `reference`'s
    /// repository, refusing a component layer over `limit` bytes before fetching it.
    pub async fn pull(
        &self,
        reference: &AdapterRef,
        manifest_digest: &str,
        limit: usize,
    ) -> Result<Pulled, OciError> {
        let at = reference.at(manifest_digest);
        let (manifest, digest) = self
            .client
            .pull_image_manifest(&at, &self.auth.0)
            .await
            .map_err(|source| registry_error(reference, source))?;
        let not_component = |reason: String| OciError::NotAComponent {
            reference: reference.to_string(),
            reason,
        };
        if manifest.config.media_type != WASM_CONFIG {
            return Err(not_component(format!(
                "config media type {:?}, expected {WASM_CONFIG:?}",
                manifest.config.media_type
            )));
        }
        let component_layer = find_layer(&manifest, WASM_LAYER)
            .ok_or_else(|| not_component(format!("no {WASM_LAYER:?} layer")))?;
        if usize::try_from(component_layer.size).map_or(true, |size| size > limit) {
            return Err(OciError::TooLarge {
                reference: reference.to_string(),
                size: component_layer.size,
                limit,
            });
        }
        // pull_blob checks the bytes against the layer digest.
        let mut component = Vec::with_capacity(component_layer.size as usize);
        self.client
            .pull_blob(&at, component_layer, &mut component)
            .await
            .map_err(|source| registry_error(reference, source))?;
        let policy =
            match find_layer(&manifest, POLICY_LAYER) {
                Some(layer) if usize::try_from(layer.size).is_ok_and(|size| size <= 1 << 20) => {
                    let mut text = Vec::new();
                    self.client
                        .pull_blob(&at, layer, &mut text)
                        .await
                        .map_err(|source| registry_error(reference, source))?;
                    Some(String::from_utf8(text).map_err(|_| {
                        not_component("the policy layer is not UTF-8 text".to_string())
                    })?)
                }
                Some(_) => return Err(not_component("the policy layer is over 1 MiB".into())),
                None => None,
            };
        Ok(Pulled {
            manifest_digest: digest,
            component,
            policy,
        })
    }

    /// Publishes `component` (and its policy manifest) at `reference`.
    pub async fn push(
        &self,
        reference: &AdapterRef,
        component: Vec<u8>,
        policy: Option<String>,
    ) -> Result<Pushed, OciError> {
        let component_digest = digest_of(&component);
        let mut layers = vec![ImageLayer::new(component, WASM_LAYER.to_string(), None)];
        if let Some(policy) = policy {
            layers.push(ImageLayer::new(
                policy.into_bytes(),
                POLICY_LAYER.to_string(),
                None,
            ));
        }
        // The wasm config: what `wkg` writes, minus what we do not know (the WIT).
        let config = serde_json::json!({
            "architecture": "wasm",
            "os": "wasip2",
            "layerDigests": [format!("sha256:{component_digest}")],
        });
        let config = Config::new(
            serde_json::to_vec(&config).expect("JSON"),
            WASM_CONFIG.to_string(),
            None,
        );
        let mut annotations = BTreeMap::new();
        annotations.insert(
            "org.opencontainers.image.created".to_string(),
            humantime_now(),
        );
        let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
        self.client
            .push(
                &reference.reference,
                &layers,
                config,
                &self.auth.0,
                Some(manifest),
            )
            .await
            .map_err(|source| registry_error(reference, source))?;
        // As the registry names it (its serialization is the one that counts).
        let manifest_digest = self.manifest_digest(reference).await?;
        Ok(Pushed {
            manifest_digest,
            component_digest,
        })
    }
}

fn find_layer<'a>(manifest: &'a OciImageManifest, media_type: &str) -> Option<&'a OciDescriptor> {
    manifest.layers.iter().find(|l| l.media_type == media_type)
}

fn registry_error(
    reference: &AdapterRef,
    source: oci_client::errors::OciDistributionError,
) -> OciError {
    OciError::Registry {
        registry: reference.registry().to_string(),
        source,
    }
}

/// RFC 3339 UTC time of now, for the `created` annotation.
fn humantime_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let prost_time = prost_types::Timestamp {
        seconds: secs as i64,
        nanos: 0,
    };
    prost_time.to_string()
}

/// Credentials from the file, else the environment, else anonymous.
fn credentials(args: &RegistryArgs) -> Result<Credentials, OciError> {
    if let Some(path) = &args.registry_credentials_file {
        let text = std::fs::read_to_string(path).map_err(|source| OciError::File {
            what: "reading the registry credentials",
            path: path.display().to_string(),
            source,
        })?;
        let line = text.lines().next().unwrap_or_default();
        return match line.split_once(':') {
            Some((user, password)) if !user.is_empty() => Ok(Credentials(RegistryAuth::Basic(
                user.to_string(),
                password.to_string(),
            ))),
            _ => Err(OciError::BadCredentials(path.display().to_string())),
        };
    }
    match (
        std::env::var("FEDERATION_REGISTRY_USERNAME"),
        std::env::var("FEDERATION_REGISTRY_PASSWORD"),
    ) {
        (Ok(user), Ok(password)) if !user.is_empty() => {
            Ok(Credentials(RegistryAuth::Basic(user, password)))
        }
        _ => Ok(Credentials(RegistryAuth::Anonymous)),
    }
}

/// reqwest is built without a default rustls provider (no aws-lc C build): use ring.
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // Err: another part of the process installed one first, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_need_the_scheme_a_registry_and_a_tag_or_digest() {
        let tag = AdapterRef::parse("oci://127.0.0.1:5000/adapters/crewai:v1").unwrap();
        assert_eq!(tag.pinned(), None);
        assert_eq!(tag.registry(), "127.0.0.1:5000");
        assert_eq!(tag.to_string(), "oci://127.0.0.1:5000/adapters/crewai:v1");
        let digest = format!("sha256:{}", "a".repeat(64));
        let pinned =
            AdapterRef::parse(&format!("oci://registry.example.com/crewai@{digest}")).unwrap();
        assert_eq!(pinned.pinned(), Some(digest.as_str()));
        for bad in [
            "127.0.0.1:5000/crewai:v1",
            "oci://crewai:v1",
            "oci://library/crewai:v1",
            "oci://127.0.0.1:5000/crewai",
            "oci://127.0.0.1:5000/Crewai:v1",
        ] {
            assert!(AdapterRef::parse(bad).is_err(), "{bad} parsed");
        }
    }

    #[test]
    fn credentials_never_show_in_debug_output() {
        let secret = Credentials(RegistryAuth::Basic("me".into(), "hunter2".into()));
        assert!(!format!("{secret:?}").contains("hunter2"));
    }
}
