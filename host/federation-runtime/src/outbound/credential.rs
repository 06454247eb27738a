//! The host's identity towards the wrapper: the task's principal
//! ([`PRINCIPAL_HEADER`], whom the host authenticated) and the host's credential, a
//! secret read from a file
//! (`--wrapper-credential-file`) that the host adds as [`HOST_CREDENTIAL_HEADER`] to
//! every request it sends to the wrapper's origin, its own and its adapters'. The
//! wrapper answers only requests that carry it, so a local process (or an adapter
//! sending to another origin) cannot drive the wrapper.
//!
//! Adapters never hold it: it is added after the guest's headers are checked (a guest
//! header of that name is refused as [`Denied`](crate::bindings::HttpError::Denied)),
//! a response header of that name is dropped before the guest sees the response, it
//! is sent to the wrapper's exact origin only, and its value is marked sensitive and
//! redacted from `Debug`, so it is never logged.

use std::path::Path;

use http::{HeaderMap, HeaderValue};

use super::policy::Origin;

/// The header that carries the host's credential to the wrapper.
pub const HOST_CREDENTIAL_HEADER: &str = "x-federation-host-credential";

/// The principal a task runs for, sent by the host to the wrapper (and only there).
pub const PRINCIPAL_HEADER: &str = "x-federation-principal";

/// Headers only the host may set: a guest that sets one is refused, a manifest that
/// names one is rejected, and a response header of that name never reaches the guest.
pub const HOST_IDENTITY_HEADERS: &[&str] = &[HOST_CREDENTIAL_HEADER, PRINCIPAL_HEADER];

/// The credential and the one origin it goes to.
#[derive(Clone)]
pub struct HostCredential {
    origin: Origin,
    value: HeaderValue,
}

impl std::fmt::Debug for HostCredential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "HostCredential({} => [redacted])", self.origin)
    }
}

/// Why the credential file was refused.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("reading the wrapper credential file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "the wrapper credential file {path} is readable by group or others (mode {mode:o}); \
         chmod 600 it"
    )]
    Exposed { path: String, mode: u32 },
    #[error("the wrapper credential file {path} is empty or not a valid header value")]
    Invalid { path: String },
}

impl HostCredential {
    /// `value` for requests to `origin` (tests and callers that hold the secret).
    pub fn new(origin: Origin, value: &str) -> Option<HostCredential> {
        let mut value = HeaderValue::from_str(value.trim()).ok()?;
        if value.is_empty() {
            return None;
        }
        value.set_sensitive(true);
        Some(HostCredential { origin, value })
    }

    /// Reads the credential from `path` (trailing whitespace trimmed), refusing a file
    /// that group or others may read.
    pub fn from_file(path: &Path, origin: Origin) -> Result<HostCredential, CredentialError> {
        use std::os::unix::fs::PermissionsExt;
        let shown = path.display().to_string();
        let read_error = |source| CredentialError::Read {
            path: shown.clone(),
            source,
        };
        let mode = std::fs::metadata(path)
            .map_err(read_error)?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(CredentialError::Exposed {
                path: shown,
                mode: mode & 0o777,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        HostCredential::new(origin, &text).ok_or(CredentialError::Invalid { path: shown })
    }

    /// Whether `secret` is this credential.
    pub fn is(&self, secret: &str) -> bool {
        self.value.as_bytes() == secret.trim().as_bytes()
    }

    /// The secret's bytes, for the host's own checks (a manifest must not name it);
    /// never for logs or replies.
    pub fn secret_bytes(&self) -> &[u8] {
        self.value.as_bytes()
    }
}

/// Sets the host's identity headers of a request for `origin`: whatever of them is
/// there already is removed (not even a manifest sets them); then, when `origin` is
/// the wrapper's, the task's `principal` and the credential go in. The one place
/// they are added.
pub fn inject_host_headers(
    headers: &mut HeaderMap,
    origin: &Origin,
    wrapper: Option<&Origin>,
    credential: Option<&HostCredential>,
    principal: Option<&HeaderValue>,
) {
    for name in HOST_IDENTITY_HEADERS {
        headers.remove(*name);
    }
    if wrapper != Some(origin) {
        return;
    }
    if let Some(principal) = principal {
        headers.insert(PRINCIPAL_HEADER, principal.clone());
    }
    if let Some(credential) = credential
        && credential.origin == *origin
    {
        headers.insert(HOST_CREDENTIAL_HEADER, credential.value.clone());
    }
}

/// Whether a header name is one only the host sets.
pub fn is_host_identity_header(name: &str) -> bool {
    HOST_IDENTITY_HEADERS
        .iter()
        .any(|reserved| name.eq_ignore_ascii_case(reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(url: &str) -> Origin {
        Origin::of(&url::Url::parse(url).unwrap()).unwrap()
    }

    #[test]
    fn added_for_the_wrapper_origin_only_and_never_shown() {
        let wrapper = origin("https://wrapper:8443");
        let credential = HostCredential::new(wrapper.clone(), "s3cret\n").unwrap();
        let alice = HeaderValue::from_static("alice");
        let mut to_wrapper = HeaderMap::new();
        to_wrapper.insert(PRINCIPAL_HEADER, HeaderValue::from_static("mallory"));
        inject_host_headers(
            &mut to_wrapper,
            &origin("https://wrapper:8443/"),
            Some(&wrapper),
            Some(&credential),
            Some(&alice),
        );
        assert_eq!(to_wrapper[HOST_CREDENTIAL_HEADER], "s3cret");
        assert_eq!(to_wrapper[PRINCIPAL_HEADER], "alice");
        assert!(to_wrapper[HOST_CREDENTIAL_HEADER].is_sensitive());
        for other in [
            "http://wrapper:8443",
            "https://wrapper:8444",
            "https://api.example",
        ] {
            let mut headers = HeaderMap::new();
            headers.insert(PRINCIPAL_HEADER, HeaderValue::from_static("mallory"));
            inject_host_headers(
                &mut headers,
                &origin(other),
                Some(&wrapper),
                Some(&credential),
                Some(&alice),
            );
            assert!(headers.is_empty(), "{other}");
        }
        assert!(!format!("{credential:?}").contains("s3cret"));
        assert!(!format!("{to_wrapper:?}").contains("s3cret"));
    }

    #[test]
    fn a_file_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credential");
        std::fs::write(&path, "s3cret").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let error = HostCredential::from_file(&path, origin("http://w:1")).unwrap_err();
        assert!(
            error.to_string().contains("readable by group or others"),
            "{error}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(
            HostCredential::from_file(&path, origin("http://w:1"))
                .unwrap()
                .is("s3cret")
        );
    }
}
