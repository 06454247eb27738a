//! Who calls: the auth file (principals, each known by bearer tokens and/or mTLS
//! client identities, each optionally limited to some backends and agents) and the
//! interceptor that authenticates every `FederationService` call, leaving the
//! [`Caller`] in the request's extensions for the handlers.
//!
//! Without an auth file and without a client CA every caller is [`LOCAL_PRINCIPAL`]
//! (the host then listens on loopback only, see `config`). With a client CA but no auth
//! file, a caller is the identity its (CA-verified) certificate names, unlimited.
//!
//! The auth file (TOML):
//!
//! ```toml
//! [[principal]]
//! name = "orchestrator"                 # sent to the wrapper as x-federation-principal
//! token_sha256 = ["<hex sha256 of the token>"]   # printf %s "$TOKEN" | sha256sum
//! token = ["<plain token>"]             # accepted, but the file is then a secret
//! client_identity = ["orchestrator.internal", "spiffe://corp/orchestrator"]
//! backends = ["crewai"]                 # absent: every backend
//! agents = ["trip_planner"]             # absent: every agent
//! ```

use std::{path::Path, sync::Arc};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::{Request, Status, service::Interceptor};

use crate::error::AuthError;

/// The principal of every call when the host has no caller authentication.
pub const LOCAL_PRINCIPAL: &str = "local";

/// Who a call comes from, and what it may use.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    pub principal: Arc<str>,
    /// Backends it may use; `None`: all.
    backends: Option<Arc<[String]>>,
    /// Agents it may run; `None`: all.
    agents: Option<Arc<[String]>>,
}

impl Caller {
    /// The caller of a host without authentication.
    pub fn local() -> Caller {
        Caller::unlimited(LOCAL_PRINCIPAL)
    }

    fn unlimited(principal: &str) -> Caller {
        Caller {
            principal: principal.into(),
            backends: None,
            agents: None,
        }
    }

    /// The caller the interceptor authenticated (local when there was none, e.g. a
    /// service used without the interceptor).
    pub fn of<T>(request: &Request<T>) -> Caller {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_else(Caller::local)
    }

    pub fn may_use_backend(&self, backend: &str) -> bool {
        self.backends
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|b| b == backend))
    }

    /// An empty `agent` (the backend's default) is allowed only to an unlimited caller:
    /// the host cannot know which agent the wrapper would pick.
    pub fn may_run_agent(&self, agent: &str) -> bool {
        self.agents
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|a| a == agent))
    }

    /// Whether the caller is limited to some agents.
    pub fn limits_agents(&self) -> bool {
        self.agents.is_some()
    }
}

/// Why the auth file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    #[error("reading the auth file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the auth file {path} is not valid: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuthFile {
    #[serde(default)]
    principal: Vec<PrincipalEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalEntry {
    name: String,
    #[serde(default)]
    token_sha256: Vec<String>,
    #[serde(default)]
    token: Vec<String>,
    #[serde(default)]
    client_identity: Vec<String>,
    backends: Option<Vec<String>>,
    agents: Option<Vec<String>>,
}

/// The callers a host knows, by credential.
#[derive(Debug, Default)]
pub struct Principals {
    /// sha256 of each token, and its caller.
    tokens: Vec<([u8; 32], Caller)>,
    /// mTLS client identity (subject CN, SAN DNS name or URI), and its caller.
    identities: Vec<(String, Caller)>,
}

impl Principals {
    /// Reads and checks the auth file at `path`.
    pub fn load(path: &Path) -> Result<Principals, AuthFileError> {
        let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parsed = Principals::parse(&text).map_err(|message| AuthFileError::Invalid {
            path: path.display().to_string(),
            message,
        })?;
        if parsed.1 {
            warn_if_readable_by_others(path);
        }
        Ok(parsed.0)
    }

    /// The principals of an auth file's text, and whether it holds plain tokens.
    fn parse(text: &str) -> Result<(Principals, bool), String> {
        let file: AuthFile = toml::from_str(text).map_err(|e| e.to_string())?;
        if file.principal.is_empty() {
            return Err("it names no [[principal]]".into());
        }
        let mut principals = Principals::default();
        let mut plain = false;
        let mut names = std::collections::HashSet::new();
        for entry in file.principal {
            if !principal_name_is_valid(&entry.name) {
                return Err(format!(
                    "principal name {:?} must be 1..128 of [A-Za-z0-9._@:/-]",
                    entry.name
                ));
            }
            if !names.insert(entry.name.clone()) {
                return Err(format!("principal {:?} is named twice", entry.name));
            }
            if entry.token_sha256.is_empty()
                && entry.token.is_empty()
                && entry.client_identity.is_empty()
            {
                return Err(format!(
                    "principal {:?} has no token_sha256, token or client_identity",
                    entry.name
                ));
            }
            let caller = Caller {
                principal: entry.name.as_str().into(),
                backends: entry.backends.map(Into::into),
                agents: entry.agents.map(Into::into),
            };
            for hex_digest in &entry.token_sha256 {
                let mut digest = [0u8; 32];
                hex::decode_to_slice(hex_digest.trim(), &mut digest).map_err(|_| {
                    format!(
                        "principal {:?}: token_sha256 {hex_digest:?} is not 64 hex digits",
                        entry.name
                    )
                })?;
                principals.add_token(digest, &caller)?;
            }
            for token in &entry.token {
                if token.trim().is_empty() {
                    return Err(format!("principal {:?} has an empty token", entry.name));
                }
                plain = true;
                principals.add_token(sha256(token.trim()), &caller)?;
            }
            for identity in entry.client_identity {
                if principals.identities.iter().any(|(i, _)| *i == identity) {
                    return Err(format!("client identity {identity:?} is given twice"));
                }
                principals.identities.push((identity, caller.clone()));
            }
        }
        Ok((principals, plain))
    }

    fn add_token(&mut self, digest: [u8; 32], caller: &Caller) -> Result<(), String> {
        if self.tokens.iter().any(|(d, _)| *d == digest) {
            return Err(format!(
                "principal {:?} shares a token with another entry",
                caller.principal
            ));
        }
        self.tokens.push((digest, caller.clone()));
        Ok(())
    }

    /// The caller a bearer token names. Every known digest is compared, in constant
    /// time, so the answer's timing tells nothing about which one (nearly) matched.
    fn by_token(&self, token: &str) -> Option<Caller> {
        let presented = sha256(token);
        let mut found = None;
        for (digest, caller) in &self.tokens {
            let diff = digest
                .iter()
                .zip(&presented)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b));
            if diff == 0 {
                found = Some(caller.clone());
            }
        }
        found
    }

    /// Whether any principal is known by a bearer token.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    fn by_identity(&self, identities: &[String]) -> Option<Caller> {
        self.identities
            .iter()
            .find(|(identity, _)| identities.contains(identity))
            .map(|(_, caller)| caller.clone())
    }
}

fn sha256(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// A principal name travels in an HTTP header and in logs: a plain, short charset.
pub fn principal_name_is_valid(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._@:/-".contains(&b))
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(file = %path.display(), "the auth file holds plain tokens and is readable by other users; chmod 600 it or use token_sha256");
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_: &Path) {}

/// How the host authenticates callers.
#[derive(Clone, Debug)]
pub enum Authentication {
    /// No auth file, no client CA: every call is [`LOCAL_PRINCIPAL`].
    None,
    /// Client certificates verified against a CA, no auth file: a caller is the
    /// identity its certificate names.
    CertificateOnly,
    /// The auth file's principals (by token, or by certificate identity under mTLS).
    Principals(Arc<Principals>),
}

impl Authentication {
    pub fn is_configured(&self) -> bool {
        !matches!(self, Authentication::None)
    }
}

/// The interceptor authenticating every `FederationService` call.
#[derive(Clone, Debug)]
pub struct Authenticate(pub Authentication);

impl Interceptor for Authenticate {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let caller = authenticate(&self.0, &request).map_err(crate::error::auth_status)?;
        request.extensions_mut().insert(caller);
        Ok(request)
    }
}

fn authenticate<T>(auth: &Authentication, request: &Request<T>) -> Result<Caller, AuthError> {
    let principals = match auth {
        Authentication::None => return Ok(Caller::local()),
        Authentication::CertificateOnly => {
            let identities = certificate_identities(request);
            // The TLS layer already required a CA-signed certificate.
            let name = identities.first().ok_or(AuthError::Missing)?;
            if !principal_name_is_valid(name) {
                return Err(AuthError::UnusableIdentity(name.clone()));
            }
            return Ok(Caller::unlimited(name));
        }
        Authentication::Principals(principals) => principals,
    };
    let by_token = match bearer_token(request)? {
        Some(token) => Some(principals.by_token(token).ok_or(AuthError::BadToken)?),
        None => None,
    };
    let identities = certificate_identities(request);
    let by_certificate = principals.by_identity(&identities);
    match (by_token, by_certificate) {
        (Some(a), Some(b)) if a.principal != b.principal => Err(AuthError::Conflict),
        (Some(caller), _) | (None, Some(caller)) => Ok(caller),
        (None, None) if !identities.is_empty() => {
            Err(AuthError::UnknownCertificate(identities.join(", ")))
        }
        (None, None) => Err(AuthError::Missing),
    }
}

/// The `authorization: Bearer` token, if one was sent; another scheme is refused.
fn bearer_token<T>(request: &Request<T>) -> Result<Option<&str>, AuthError> {
    let Some(value) = request.metadata().get("authorization") else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| AuthError::BadToken)?;
    match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => Ok(Some(token.trim())),
        _ => Err(AuthError::BadToken),
    }
}

/// The identities the (verified) client certificate names: its subject CNs, then its
/// SAN DNS names and URIs. Empty without a client certificate.
fn certificate_identities<T>(request: &Request<T>) -> Vec<String> {
    let Some(certs) = request.peer_certs() else {
        return Vec::new();
    };
    let Some(leaf) = certs.first() else {
        return Vec::new();
    };
    identities_of(leaf.as_ref())
}

/// The subject CNs, SAN DNS names and SAN URIs of a DER certificate.
pub fn identities_of(der: &[u8]) -> Vec<String> {
    use x509_parser::extensions::GeneralName;
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    let mut identities: Vec<String> = cert
        .subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok().map(str::to_string))
        .collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(dns) => identities.push(dns.to_string()),
                GeneralName::URI(uri) => identities.push(uri.to_string()),
                _ => {}
            }
        }
    }
    identities
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(authorization: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(value) = authorization {
            request
                .metadata_mut()
                .insert("authorization", value.parse().unwrap());
        }
        request
    }

    const FILE: &str = r#"
        [[principal]]
        name = "orchestrator"
        token_sha256 = ["2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]
        [[principal]]
        name = "analyst"
        token = ["s3cret"]
        backends = ["langgraph"]
        agents = ["trip_planner"]
    "#;

    #[test]
    fn tokens_name_their_principals() {
        let (principals, plain) = Principals::parse(FILE).unwrap();
        assert!(plain);
        let auth = Authentication::Principals(Arc::new(principals));
        // sha256("hello") is the first principal's digest.
        let caller = authenticate(&auth, &request(Some("Bearer hello"))).unwrap();
        assert_eq!(&*caller.principal, "orchestrator");
        assert!(caller.may_use_backend("crewai") && caller.may_run_agent(""));
        let caller = authenticate(&auth, &request(Some("bearer s3cret"))).unwrap();
        assert_eq!(&*caller.principal, "analyst");
        assert!(!caller.may_use_backend("crewai") && caller.may_use_backend("langgraph"));
        assert!(caller.may_run_agent("trip_planner") && !caller.may_run_agent(""));
        assert!(matches!(
            authenticate(&auth, &request(Some("Bearer nope"))),
            Err(AuthError::BadToken)
        ));
        assert!(matches!(
            authenticate(&auth, &request(Some("Basic aGVsbG8="))),
            Err(AuthError::BadToken)
        ));
        assert!(matches!(
            authenticate(&auth, &request(None)),
            Err(AuthError::Missing)
        ));
        assert_eq!(
            &*authenticate(&Authentication::None, &request(None))
                .unwrap()
                .principal,
            LOCAL_PRINCIPAL
        );
    }

    #[test]
    fn bad_files_are_refused() {
        for (text, says) in [
            ("", "no [[principal]]"),
            ("[[principal]]\nname = \"a b\"\ntoken = [\"t\"]", "must be"),
            ("[[principal]]\nname = \"a\"", "has no token"),
            (
                "[[principal]]\nname = \"a\"\ntoken_sha256 = [\"zz\"]",
                "64 hex",
            ),
            (
                "[[principal]]\nname = \"a\"\ntoken = [\"t\"]\n[[principal]]\nname = \"b\"\ntoken = [\"t\"]",
                "shares a token",
            ),
            (
                "[[principal]]\nname = \"a\"\ntokens = [\"t\"]",
                "unknown field",
            ),
        ] {
            let error = Principals::parse(text).err().unwrap();
            assert!(error.contains(says), "{text:?}: {error}");
        }
    }
}
