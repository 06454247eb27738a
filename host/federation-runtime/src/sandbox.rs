//! Per-adapter sandbox policy: what one adapter may reach and use.
//!
//! An adapter file `NAME.wasm` may have a manifest `NAME.toml` beside it; whatever the
//! manifest leaves out comes from the host-wide defaults (flags). Everything is denied
//! unless granted: outbound destinations are exact `scheme://host:port` origins (the
//! word `wrapper` means the configured wrapper URL), there are no filesystem preopens
//! or sockets, and the environment holds only the variables the manifest lists.
//!
//! ```toml
//! [outbound]
//! allow = ["wrapper", "https://api.example.com"]
//! timeout_ms = 60000
//! max_response_bytes = 1048576
//! max_requests_per_task = 16
//! max_concurrent_requests = 32
//!
//! [[outbound.headers]]           # added by the host; the guest never sees the value
//! origin = "https://api.example.com"
//! name = "authorization"
//! value_env = "FEDERATION_SECRET_EXAMPLE" # or value_file = "example", or value = "..."
//!
//! [limits]
//! max_memory_mib = 32
//! cpu_budget_ms = 2000
//! max_concurrent_tasks = 64
//!
//! [wasi]
//! env = { LOG_FORMAT = "json" }
//! ```
//!
//! Secret headers come from where the operator said ([`SecretSources`]): `value_file`
//! only from a file inside `--secrets-dir` (relative names resolve there; `..` and
//! symlinks that leave it are refused), `value_env` only from a variable named with
//! `--secret-env-prefix` (default `FEDERATION_SECRET_`); never the admin token or the
//! wrapper credential, whatever their source. A manifest that breaks one of these is
//! rejected with the adapter, naming the field.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use url::Url;

use crate::outbound::credential::is_host_identity_header;
use crate::outbound::{Origin, OutboundPolicy};

/// The prefix `value_env` variables need unless the operator sets another.
pub const DEFAULT_SECRET_ENV_PREFIX: &str = "FEDERATION_SECRET_";

/// Host variables no manifest may read, whatever the prefix.
const HOST_ONLY_VARIABLES: &[&str] = &[
    "FEDERATION_ADMIN_TOKEN",
    "FEDERATION_ADMIN_TOKEN_FILE",
    "FEDERATION_WRAPPER_CREDENTIAL_FILE",
];

/// Where manifests may take their secret headers' values from.
#[derive(Clone, Debug)]
pub struct SecretSources {
    /// `value_file` must resolve inside this directory; unset: `value_file` is refused.
    pub dir: Option<PathBuf>,
    /// `value_env` must name a variable starting with this (never empty).
    pub env_prefix: String,
    /// sha256 of secrets no manifest may hand out: the admin token, the wrapper
    /// credential.
    pub forbidden: Vec<[u8; 32]>,
}

impl Default for SecretSources {
    fn default() -> Self {
        SecretSources {
            dir: None,
            env_prefix: DEFAULT_SECRET_ENV_PREFIX.into(),
            forbidden: Vec::new(),
        }
    }
}

impl SecretSources {
    /// Also refuse `secret` as a header value.
    pub fn forbid(&mut self, secret: impl AsRef<[u8]>) {
        self.forbidden
            .push(Sha256::digest(secret.as_ref().trim_ascii()).into());
    }

    /// The value of `value_env = var`, if the operator lets manifests read it.
    fn env(&self, var: &str) -> Result<String, String> {
        if self.env_prefix.is_empty() || !var.starts_with(&self.env_prefix) {
            return Err(format!(
                "value_env {var:?} does not start with the secret prefix {:?} \
                 (--secret-env-prefix)",
                self.env_prefix
            ));
        }
        if HOST_ONLY_VARIABLES.contains(&var) {
            return Err(format!("value_env {var:?} is the host's own secret"));
        }
        std::env::var(var).map_err(|_| format!("environment variable {var} is not set"))
    }

    /// The value of `value_file = file`, if it lies inside the secrets directory.
    fn file(&self, file: &Path) -> Result<String, String> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let Some(dir) = &self.dir else {
            return Err(format!(
                "value_file {} is refused: no secrets directory is configured (--secrets-dir)",
                file.display()
            ));
        };
        if file
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(format!(
                "value_file {} must not contain '..'",
                file.display()
            ));
        }
        let outside = || {
            format!(
                "value_file {} is outside the secrets directory {} (--secrets-dir)",
                file.display(),
                dir.display()
            )
        };
        let root = dir
            .canonicalize()
            .map_err(|e| format!("secrets directory {}: {e}", dir.display()))?;
        // Relative names resolve in the directory; symlinks are resolved before the
        // containment check, so one cannot lead out of it.
        let resolved = dir
            .join(file)
            .canonicalize()
            .map_err(|e| format!("value_file {}: {e}", file.display()))?;
        if !resolved.starts_with(&root) {
            return Err(outside());
        }
        let opened = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&resolved)
            .map_err(|e| format!("value_file {}: {e}", file.display()))?;
        if !opened.metadata().map_err(|e| e.to_string())?.is_file() {
            return Err(format!(
                "value_file {} is not a regular file",
                file.display()
            ));
        }
        let mut text = String::new();
        opened
            .take(64 * 1024)
            .read_to_string(&mut text)
            .map_err(|e| format!("value_file {}: {e}", file.display()))?;
        Ok(text.trim_end().to_string())
    }

    fn is_forbidden(&self, value: &str) -> bool {
        let digest: [u8; 32] = Sha256::digest(value.as_bytes().trim_ascii()).into();
        self.forbidden.contains(&digest)
    }
}

/// Host-wide defaults and ceilings, from the host's flags.
#[derive(Clone, Debug)]
pub struct PolicyDefaults {
    /// The configured wrapper's origin (`wrapper` in a manifest).
    pub wrapper: Origin,
    pub outbound_timeout: Duration,
    pub max_response_bytes: u64,
    pub max_requests_per_task: u32,
    pub max_concurrent_requests: usize,
    /// Also the ceiling: the engine cannot give an instance more.
    pub max_memory_bytes: usize,
    pub cpu_budget: Duration,
    pub max_concurrent_tasks: usize,
    /// Where manifests may take secret header values from.
    pub secrets: SecretSources,
}

/// The resolved policy of one adapter build.
#[derive(Debug)]
pub struct SandboxPolicy {
    pub outbound: Arc<OutboundPolicy>,
    pub max_memory_bytes: usize,
    /// Guest CPU time one task may use (time waiting on outbound calls not counted).
    pub cpu_budget: Duration,
    pub max_concurrent_tasks: usize,
    /// Environment variables the guest sees (none unless granted).
    pub env: Vec<(String, String)>,
    /// Where it came from: a manifest path, or `defaults`.
    pub source: String,
    /// sha256 of the manifest text (empty for the defaults): a changed manifest is a
    /// new build of the adapter.
    pub digest: String,
}

/// Why a manifest was refused.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("reading policy manifest {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("policy manifest {path}: {message}")]
    Invalid { path: String, message: String },
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Manifest {
    #[serde(default)]
    outbound: OutboundSection,
    #[serde(default)]
    limits: LimitsSection,
    #[serde(default)]
    wasi: WasiSection,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct OutboundSection {
    allow: Option<Vec<String>>,
    timeout_ms: Option<u64>,
    max_response_bytes: Option<u64>,
    max_requests_per_task: Option<u32>,
    max_concurrent_requests: Option<usize>,
    #[serde(default)]
    headers: Vec<InjectedHeader>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InjectedHeader {
    origin: String,
    name: String,
    value: Option<String>,
    value_env: Option<String>,
    value_file: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct LimitsSection {
    max_memory_mib: Option<usize>,
    cpu_budget_ms: Option<u64>,
    max_concurrent_tasks: Option<usize>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct WasiSection {
    #[serde(default)]
    env: BTreeMap<String, String>,
}

/// The manifest that goes with an adapter file (`crewai.wasm` → `crewai.toml`).
pub fn manifest_path(wasm: &Path) -> PathBuf {
    wasm.with_extension("toml")
}

impl SandboxPolicy {
    /// The policy of an adapter without a manifest.
    pub fn defaults(defaults: &PolicyDefaults) -> SandboxPolicy {
        SandboxPolicy {
            outbound: Arc::new(OutboundPolicy::new(
                vec![defaults.wrapper.clone()],
                Vec::new(),
                defaults.outbound_timeout,
                defaults.max_response_bytes,
                defaults.max_requests_per_task,
                defaults.max_concurrent_requests,
            )),
            max_memory_bytes: defaults.max_memory_bytes,
            cpu_budget: defaults.cpu_budget,
            max_concurrent_tasks: defaults.max_concurrent_tasks,
            env: Vec::new(),
            source: "defaults".into(),
            digest: String::new(),
        }
    }

    /// The policy for the adapter file `wasm`: its manifest if present, else defaults.
    pub fn for_file(wasm: &Path, defaults: &PolicyDefaults) -> Result<SandboxPolicy, PolicyError> {
        let path = manifest_path(wasm);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::from_manifest(&text, &path.display().to_string(), defaults),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                Ok(Self::defaults(defaults))
            }
            Err(source) => Err(PolicyError::Read {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// Parses and resolves a manifest (`path` names it in errors).
    pub fn from_manifest(
        text: &str,
        path: &str,
        defaults: &PolicyDefaults,
    ) -> Result<SandboxPolicy, PolicyError> {
        let reader = ManifestReader { path, defaults };
        let manifest: Manifest =
            toml::from_str(text).map_err(|e| reader.invalid(e.message().to_string()))?;
        let out = &manifest.outbound;
        let allowed = reader.allowed(out)?;
        let headers = out
            .headers
            .iter()
            .map(|header| reader.header(header, &allowed))
            .collect::<Result<Vec<_>, _>>()?;
        let limits = &manifest.limits;
        let max_memory_bytes = reader.max_memory_bytes(limits)?;
        let timeout = reader
            .positive(out.timeout_ms, "outbound.timeout_ms")?
            .map_or(defaults.outbound_timeout, Duration::from_millis);
        let cpu_budget = reader
            .positive(limits.cpu_budget_ms, "limits.cpu_budget_ms")?
            .map_or(defaults.cpu_budget, Duration::from_millis);
        let max_concurrent_tasks = reader
            .positive(
                limits.max_concurrent_tasks.map(|n| n as u64),
                "limits.max_concurrent_tasks",
            )?
            .map_or(defaults.max_concurrent_tasks, |n| n as usize);
        let max_concurrent_requests = reader
            .positive(
                out.max_concurrent_requests.map(|n| n as u64),
                "outbound.max_concurrent_requests",
            )?
            .map_or(defaults.max_concurrent_requests, |n| n as usize);
        reader.check_env_names(&manifest.wasi)?;

        Ok(SandboxPolicy {
            outbound: Arc::new(OutboundPolicy::new(
                allowed,
                headers,
                timeout,
                out.max_response_bytes
                    .unwrap_or(defaults.max_response_bytes),
                out.max_requests_per_task
                    .unwrap_or(defaults.max_requests_per_task),
                max_concurrent_requests,
            )),
            max_memory_bytes,
            cpu_budget,
            max_concurrent_tasks,
            env: manifest.wasi.env.into_iter().collect(),
            source: path.to_string(),
            digest: hex::encode(Sha256::digest(text.as_bytes())),
        })
    }
}

/// Reads a manifest's sections against the host's defaults; every mistake is a
/// [`PolicyError::Invalid`] naming the manifest (`path`).
struct ManifestReader<'a> {
    path: &'a str,
    defaults: &'a PolicyDefaults,
}

impl ManifestReader<'_> {
    fn invalid(&self, message: String) -> PolicyError {
        PolicyError::Invalid {
            path: self.path.to_string(),
            message,
        }
    }

    /// An origin entry: `wrapper` (the wrapper's origin) or `scheme://host[:port]`.
    fn origin(&self, entry: &str) -> Result<Origin, PolicyError> {
        if entry == "wrapper" {
            return Ok(self.defaults.wrapper.clone());
        }
        let url = Url::parse(entry).map_err(|e| self.invalid(format!("origin {entry:?}: {e}")))?;
        if url.path() != "/" || url.query().is_some() || !url.username().is_empty() {
            return Err(self.invalid(format!(
                "origin {entry:?} must be scheme://host[:port] only"
            )));
        }
        Origin::of(&url).ok_or_else(|| self.invalid(format!("origin {entry:?} is not http(s)")))
    }

    /// The origins the adapter may reach: `allow`, else the wrapper only.
    fn allowed(&self, out: &OutboundSection) -> Result<Vec<Origin>, PolicyError> {
        match &out.allow {
            Some(entries) => entries.iter().map(|e| self.origin(e)).collect(),
            None => Ok(vec![self.defaults.wrapper.clone()]),
        }
    }

    /// A header the host adds to the adapter's requests to one of the `allowed`
    /// origins: never one of the host's identity headers, never a host secret.
    fn header(
        &self,
        header: &InjectedHeader,
        allowed: &[Origin],
    ) -> Result<(Origin, HeaderName, HeaderValue), PolicyError> {
        let to = self.origin(&header.origin)?;
        if !allowed.contains(&to) {
            return Err(self.invalid(format!(
                "header {:?} is for {to}, which `allow` does not list",
                header.name
            )));
        }
        let name = HeaderName::from_bytes(header.name.as_bytes())
            .map_err(|_| self.invalid(format!("bad header name {:?}", header.name)))?;
        if is_host_identity_header(name.as_str()) {
            return Err(self.invalid(format!("header {name} is set by the host only")));
        }
        let raw = self.header_value(&name, header)?;
        let mut value = HeaderValue::from_str(&raw)
            .map_err(|_| self.invalid(format!("header {name}: value is not a valid header")))?;
        value.set_sensitive(true);
        Ok((to, name, value))
    }

    /// The value of header `name`: given, or read from the environment or a file.
    fn header_value(
        &self,
        name: &HeaderName,
        header: &InjectedHeader,
    ) -> Result<String, PolicyError> {
        let secrets = &self.defaults.secrets;
        let raw = match (&header.value, &header.value_env, &header.value_file) {
            (Some(value), None, None) => value.clone(),
            (None, Some(var), None) => secrets
                .env(var)
                .map_err(|e| self.invalid(format!("header {name}: {e}")))?,
            (None, None, Some(file)) => secrets
                .file(file)
                .map_err(|e| self.invalid(format!("header {name}: {e}")))?,
            _ => {
                return Err(self.invalid(format!(
                    "header {name}: give exactly one of value, value_env, value_file"
                )));
            }
        };
        if secrets.is_forbidden(&raw) {
            return Err(self.invalid(format!(
                "header {name}: its value is the host's admin token or wrapper \
                 credential, which no adapter may send"
            )));
        }
        Ok(raw)
    }

    /// The memory limit: at least 1 MiB, at most the host's ceiling.
    fn max_memory_bytes(&self, limits: &LimitsSection) -> Result<usize, PolicyError> {
        match limits.max_memory_mib {
            Some(mib) if mib << 20 > self.defaults.max_memory_bytes => Err(self.invalid(format!(
                "max_memory_mib {mib} is above the host's ceiling of {} MiB",
                self.defaults.max_memory_bytes >> 20
            ))),
            Some(0) => Err(self.invalid("max_memory_mib must be at least 1".into())),
            Some(mib) => Ok(mib << 20),
            None => Ok(self.defaults.max_memory_bytes),
        }
    }

    /// `value` (the setting `what`), which must not be 0 when given.
    fn positive(&self, value: Option<u64>, what: &str) -> Result<Option<u64>, PolicyError> {
        match value {
            Some(0) => Err(self.invalid(format!("{what} must be positive"))),
            other => Ok(other),
        }
    }

    /// The adapter's environment variables have names a process can be given.
    fn check_env_names(&self, wasi: &WasiSection) -> Result<(), PolicyError> {
        for name in wasi.env.keys() {
            if name.is_empty() || name.contains('=') {
                return Err(self.invalid(format!("bad environment variable name {name:?}")));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> PolicyDefaults {
        PolicyDefaults {
            wrapper: Origin::of(&Url::parse("http://127.0.0.1:8080").unwrap()).unwrap(),
            outbound_timeout: Duration::from_secs(300),
            max_response_bytes: 8 << 20,
            max_requests_per_task: 64,
            max_concurrent_requests: 256,
            max_memory_bytes: 64 << 20,
            cpu_budget: Duration::from_secs(10),
            max_concurrent_tasks: 512,
            secrets: SecretSources::default(),
        }
    }

    fn parse(text: &str) -> Result<SandboxPolicy, PolicyError> {
        SandboxPolicy::from_manifest(text, "test.toml", &defaults())
    }

    #[test]
    fn an_empty_manifest_means_the_defaults() {
        let policy = parse("").unwrap();
        assert_eq!(policy.max_memory_bytes, 64 << 20);
        assert_eq!(policy.cpu_budget, Duration::from_secs(10));
        assert!(policy.env.is_empty());
        let url = Url::parse("http://127.0.0.1:8080/v1/run_crew").unwrap();
        assert!(policy.outbound.check(&url).is_ok());
    }

    #[test]
    fn a_full_manifest_resolves() {
        let policy = parse(
            r#"
            [outbound]
            allow = ["wrapper", "https://api.example.com"]
            timeout_ms = 1000
            max_requests_per_task = 3
            [[outbound.headers]]
            origin = "https://api.example.com"
            name = "x-api-key"
            value = "s3cret"
            [limits]
            max_memory_mib = 16
            cpu_budget_ms = 250
            max_concurrent_tasks = 2
            [wasi]
            env = { MODE = "strict" }
            "#,
        )
        .unwrap();
        assert_eq!(policy.max_memory_bytes, 16 << 20);
        assert_eq!(policy.cpu_budget, Duration::from_millis(250));
        assert_eq!(policy.max_concurrent_tasks, 2);
        assert_eq!(policy.env, vec![("MODE".into(), "strict".into())]);
        assert!(!policy.digest.is_empty());
        let api = Url::parse("https://api.example.com/v1").unwrap();
        assert!(policy.outbound.check(&api).is_ok());
        // The secret is not in the policy's Debug output.
        assert!(!format!("{policy:?}").contains("s3cret"));
    }

    #[test]
    fn bad_manifests_are_refused_with_the_reason() {
        for (text, needle) in [
            ("[outbound]\nallow = [\"ftp://x\"]", "not http(s)"),
            ("[outbound]\nallow = [\"http://x:1/path\"]", "scheme://host"),
            ("[limits]\nmax_memory_mib = 4096", "ceiling"),
            ("[limits]\ncpu_budget_ms = 0", "positive"),
            ("[oops]\nx = 1", "unknown field"),
            (
                "[[outbound.headers]]\norigin = \"http://other:1\"\nname = \"a\"\nvalue = \"b\"",
                "does not list",
            ),
            (
                "[[outbound.headers]]\norigin = \"wrapper\"\nname = \"a\"\nvalue_env = \"FEDERATION_SECRET_SURELY_UNSET\"",
                "not set",
            ),
            (
                "[[outbound.headers]]\norigin = \"wrapper\"\nname = \"x-federation-host-credential\"\nvalue = \"b\"",
                "host only",
            ),
        ] {
            let error = parse(text).unwrap_err().to_string();
            assert!(error.contains(needle), "{text:?}: {error}");
        }
    }

    fn header(source: &str) -> String {
        format!("[[outbound.headers]]\norigin = \"wrapper\"\nname = \"x-key\"\n{source}")
    }

    #[test]
    fn value_env_needs_the_prefix_and_never_reads_the_admin_token() {
        // SAFETY: test-only variables, each read by this test alone.
        unsafe {
            std::env::set_var("AF_TEST_UNPREFIXED_SECRET", "x");
            std::env::set_var("FEDERATION_SECRET_AF_TEST_OK", "granted");
            std::env::set_var("FEDERATION_SECRET_AF_TEST_ADMIN", "the-admin-token");
        }
        let error = parse(&header("value_env = \"AF_TEST_UNPREFIXED_SECRET\""))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("value_env") && error.contains("prefix"),
            "{error}"
        );
        let error = parse(&header("value_env = \"FEDERATION_ADMIN_TOKEN\""))
            .unwrap_err()
            .to_string();
        assert!(error.contains("value_env"), "{error}");
        assert!(parse(&header("value_env = \"FEDERATION_SECRET_AF_TEST_OK\"")).is_ok());

        // The admin token is refused under any name: its value is forbidden.
        let mut defaults = defaults();
        defaults.secrets.forbid("the-admin-token");
        let error = SandboxPolicy::from_manifest(
            &header("value_env = \"FEDERATION_SECRET_AF_TEST_ADMIN\""),
            "test.toml",
            &defaults,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("admin token"), "{error}");
        let error = SandboxPolicy::from_manifest(
            &header("value = \"the-admin-token\""),
            "test.toml",
            &defaults,
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("admin token"), "{error}");
    }

    #[test]
    fn value_file_must_stay_inside_the_secrets_dir() {
        let root = tempfile::tempdir().unwrap();
        let secrets = root.path().join("secrets");
        std::fs::create_dir(&secrets).unwrap();
        std::fs::write(secrets.join("api-key"), "k3y\n").unwrap();
        std::fs::write(root.path().join("outside"), "host-only").unwrap();
        std::os::unix::fs::symlink(root.path().join("outside"), secrets.join("link")).unwrap();
        let mut defaults = defaults();
        let parse_with = |source: &str, defaults: &PolicyDefaults| {
            SandboxPolicy::from_manifest(&header(source), "test.toml", defaults)
                .map_err(|e| e.to_string())
        };
        // No secrets directory: every value_file is refused.
        let error = parse_with("value_file = \"api-key\"", &defaults).unwrap_err();
        assert!(
            error.contains("value_file") && error.contains("--secrets-dir"),
            "{error}"
        );

        defaults.secrets.dir = Some(secrets.clone());
        assert!(parse_with("value_file = \"api-key\"", &defaults).is_ok());
        let inside = secrets.join("api-key").display().to_string();
        assert!(parse_with(&format!("value_file = {inside:?}"), &defaults).is_ok());
        for (source, needle) in [
            (
                format!(
                    "value_file = {:?}",
                    root.path().join("outside").display().to_string()
                ),
                "outside the secrets directory",
            ),
            (
                "value_file = \"/etc/passwd\"".to_string(),
                "outside the secrets directory",
            ),
            ("value_file = \"../outside\"".to_string(), "'..'"),
            (
                "value_file = \"link\"".to_string(),
                "outside the secrets directory",
            ),
        ] {
            let error = parse_with(&source, &defaults).unwrap_err();
            assert!(
                error.contains("value_file") && error.contains(needle),
                "{source}: {error}"
            );
        }
    }
}
