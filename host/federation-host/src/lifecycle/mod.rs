//! Adapter lifecycle: what the host serves follows its adapters directory (and admin
//! uploads) while it runs.
//!
//! Every change goes through [`AdapterLifecycle`], one at a time: read the bytes,
//! reuse a build already in memory with the same digest or compile (cache first), link,
//! describe and self-test it off the request path, then swap it in. A file that fails
//! any step never replaces a working build: the rejection is logged, counted and kept
//! for the admin API. Swaps and rejections are also telemetry events (on the
//! `adapter.lifecycle` span). Before a file is read, its size (from its metadata) must
//! be within the upload limit and, if it is a symlink, it must resolve inside the
//! directory ([`confine`]); the read itself is bounded too (a file that grows after the
//! check is still refused). What starts and stops serving is told to a
//! [`LifecycleEvents`] listener (the server keeps gRPC health from it). The directory
//! watcher that triggers reconciles lives in [`watcher`]; adapters that follow an OCI
//! registry are polled and pulled by [`registry_sources`] and go through the same
//! [`AdapterLifecycle`] path.
//!
//! Status reads (the admin listing) never take the lock that serializes changes: they
//! read snapshots published after each change, so a build whose describe or self-test
//! spins for its whole budget delays no listing.

pub mod registry_sources;
pub mod watcher;

use std::{
    collections::{BTreeMap, VecDeque},
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use futures::future::BoxFuture;
use tracing::Instrument;

use federation_runtime::{Adapter, AdapterRuntime, digest_of};
use federation_runtime::{AdapterRegistry, Installed, RollbackError};
use federation_runtime::{PolicyDefaults, SandboxPolicy, manifest_path};

/// Rejections kept for the admin API.
const REJECTIONS_KEPT: usize = 32;

/// The `source` of adapters uploaded through the admin API.
pub const UPLOAD_SOURCE: &str = "upload";

/// What changed in what the host serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LifecycleEvent {
    /// An adapter of this name serves (loaded, swapped, or unchanged after a reload).
    Serving(String),
    /// The adapter of this name no longer serves (its file is gone).
    Unloaded(String),
    /// The registry source of this adapter name answered its last poll (or not).
    SourceReachable { name: String, reachable: bool },
}

/// Listens to the lifecycle; told before the change's caller is answered.
pub trait LifecycleEvents: Send + Sync + 'static {
    fn changed(&self, event: LifecycleEvent) -> BoxFuture<'_, ()>;
}

/// A load that did not happen, and why.
#[derive(Clone, Debug)]
pub struct Rejection {
    /// File path, [`UPLOAD_SOURCE`], or an `oci://` reference.
    pub source: String,
    /// sha256 of the bytes (empty if they could not be read).
    pub digest: String,
    pub reason: String,
    pub at: SystemTime,
}

/// What one reconcile of the directory changed.
#[derive(Default)]
pub struct ReloadReport {
    pub loaded: Vec<Arc<Adapter>>,
    pub rejected: Vec<Rejection>,
    pub unloaded: Vec<String>,
}

/// Why an admin operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Rollback(#[from] RollbackError),
    #[error("adapter rejected: {}", .0.reason)]
    Rejected(Rejection),
    #[error("reading the adapters directory {dir}: {source}")]
    Directory { dir: String, source: std::io::Error },
}

/// What the directory looked like at the last reconcile, per file.
#[derive(Default)]
struct DirState {
    files: BTreeMap<PathBuf, FileState>,
}

struct FileState {
    stamp: FileStamp,
    digest: String,
    /// sha256 of its policy manifest (empty: none, host defaults).
    policy_digest: String,
    /// The adapter name this file serves (kept when a later version was rejected).
    serves: Option<String>,
    /// Whether `digest` is the build that serves (false: it was rejected).
    accepted: bool,
}

/// Cheap change detection: a file whose size, mtime and inode are unchanged is not
/// read again (an atomic rename changes the inode even when size and mtime match).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// An adapter file's stamp and its manifest's (if it has one).
type FileStamp = (Stamp, Option<Stamp>);

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode: metadata.ino(),
        }
    }
}

pub struct AdapterLifecycle {
    runtime: Arc<AdapterRuntime>,
    registry: Arc<AdapterRegistry>,
    dir: PathBuf,
    policy_defaults: PolicyDefaults,
    events: Arc<dyn LifecycleEvents>,
    /// Largest adapter file (and manifest) read, bytes: the upload limit.
    max_file_bytes: u64,
    /// Held for the whole of every change (validation included), so changes apply one
    /// at a time. Status calls never take it: they read `desired`.
    state: tokio::sync::Mutex<DirState>,
    /// What `state` says the directory wants served (name → digest), republished after
    /// every change to `state`.
    desired: RwLock<Arc<BTreeMap<String, String>>>,
    rejections: Mutex<VecDeque<Rejection>>,
    rejected_total: AtomicU64,
}

impl AdapterLifecycle {
    pub fn new(
        runtime: Arc<AdapterRuntime>,
        registry: Arc<AdapterRegistry>,
        dir: PathBuf,
        policy_defaults: PolicyDefaults,
        events: Arc<dyn LifecycleEvents>,
        max_file_bytes: u64,
    ) -> Self {
        AdapterLifecycle {
            runtime,
            registry,
            dir,
            policy_defaults,
            events,
            max_file_bytes,
            state: tokio::sync::Mutex::default(),
            desired: RwLock::default(),
            rejections: Mutex::default(),
            rejected_total: AtomicU64::new(0),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn registry(&self) -> &AdapterRegistry {
        &self.registry
    }

    /// The digest of the bytes the directory holds for each adapter name it serves,
    /// accepted or not (what the directory wants served), as of the last change the
    /// lifecycle finished: never waits on a change (a validation) in progress.
    pub fn desired_digests(&self) -> Arc<BTreeMap<String, String>> {
        self.desired
            .read()
            .expect("desired digests lock poisoned")
            .clone()
    }

    /// Tells the listener (e.g. gRPC health) about `event`.
    pub(crate) async fn tell(&self, event: LifecycleEvent) {
        self.events.changed(event).await;
    }

    /// Rejections so far (most recent first) and their total count.
    pub fn rejections(&self) -> (Vec<Rejection>, u64) {
        let kept = self.rejections.lock().expect("rejections lock poisoned");
        (
            kept.iter().cloned().collect(),
            self.rejected_total.load(Ordering::Relaxed),
        )
    }

    /// Brings the served adapters in line with the directory: loads new and changed
    /// `*.wasm` files, unloads adapters whose file is gone. `force` re-reads files whose
    /// size, mtime and inode did not change.
    pub async fn reconcile(&self, force: bool) -> Result<ReloadReport, LifecycleError> {
        let mut state = self.state.lock().await;
        let listing = list_wasm_files(&self.dir).map_err(|source| LifecycleError::Directory {
            dir: self.dir.display().to_string(),
            source,
        })?;
        let mut report = ReloadReport::default();
        self.forget_gone_files(&mut state, &listing, &mut report)
            .await;
        for (path, stamp) in listing {
            let known = state.files.get(&path);
            if !force && known.is_some_and(|file| file.stamp == stamp) {
                continue;
            }
            if let Some(file) = self
                .reconcile_file(known, &path, stamp, force, &mut report)
                .await
            {
                state.files.insert(path, file);
                self.publish_desired(&state);
            }
        }
        Ok(report)
    }

    /// Forgets the files no longer listed and unloads what they served.
    async fn forget_gone_files(
        &self,
        state: &mut DirState,
        listing: &BTreeMap<PathBuf, FileStamp>,
        report: &mut ReloadReport,
    ) {
        let gone: Vec<PathBuf> = state
            .files
            .keys()
            .filter(|path| !listing.contains_key(*path))
            .cloned()
            .collect();
        for path in gone {
            let file = state.files.remove(&path).expect("listed above");
            self.publish_desired(state);
            if let Some(name) = file.serves
                && self.unload_if_from(&name, &path).await
            {
                report.unloaded.push(name);
            }
        }
    }

    /// Reads one listed file and loads it if its bytes or manifest changed (or `force`
    /// retries its rejection). What to remember of it, or None when it could not be
    /// read (the next reconcile tries again).
    async fn reconcile_file(
        &self,
        known: Option<&FileState>,
        path: &Path,
        stamp: FileStamp,
        force: bool,
        report: &mut ReloadReport,
    ) -> Option<FileState> {
        let serves = known.and_then(|file| file.serves.clone());
        let source = path.display().to_string();
        let bytes = match self.read_confined(path).await {
            Ok(bytes) => bytes,
            Err(FileRefused::Gone(error)) => {
                // Gone between listing and reading: the next reconcile unloads it.
                report
                    .rejected
                    .push(self.reject(source, String::new(), error, &serves));
                return None;
            }
            Err(FileRefused::Refused(reason)) => {
                report
                    .rejected
                    .push(self.reject(source, String::new(), reason, &serves));
                // Remembered, so the rescan does not refuse (and log) it again until it
                // changes.
                return Some(FileState {
                    stamp,
                    digest: String::new(),
                    policy_digest: String::new(),
                    serves,
                    accepted: false,
                });
            }
        };
        let digest = digest_of(&bytes);
        let policy = self.policy_for(path);
        let policy_digest = policy
            .as_ref()
            .map(|p| p.digest.clone())
            .unwrap_or_default();
        // Same bytes and manifest as last time (e.g. touched): nothing to do, except
        // that a forced reload retries a rejected file (its rejection may have been
        // transient, such as a name conflict since resolved).
        let unchanged = known
            .filter(|file| {
                file.digest == digest
                    && file.policy_digest == policy_digest
                    && policy.is_ok()
                    && (file.accepted || !force)
            })
            .map(|file| file.accepted);
        let (serves, accepted) = match unchanged {
            Some(accepted) => (serves, accepted),
            None => {
                self.load_file(bytes, digest.clone(), path, policy, serves, report)
                    .await
            }
        };
        Some(FileState {
            stamp,
            digest,
            policy_digest,
            serves,
            accepted,
        })
    }

    /// Loads the changed file `path` under its `policy` (or rejects it for a broken
    /// manifest). The name it serves afterwards and whether it was accepted.
    async fn load_file(
        &self,
        bytes: Vec<u8>,
        digest: String,
        path: &Path,
        policy: Result<SandboxPolicy, String>,
        serves: Option<String>,
        report: &mut ReloadReport,
    ) -> (Option<String>, bool) {
        let source = path.display().to_string();
        let outcome = match policy {
            Ok(policy) => {
                self.apply(
                    bytes,
                    digest,
                    source,
                    Arc::new(policy),
                    Some(path),
                    &serves,
                    None,
                )
                .await
            }
            Err(error) => Err(self.reject(source, digest, error, &serves)),
        };
        match outcome {
            Ok((adapter, installed)) => {
                let name = adapter.info.name.clone();
                if !matches!(installed, Installed::Unchanged) {
                    report.loaded.push(adapter);
                }
                // The file now describes another name: the old name's build goes.
                if let Some(old) = serves.filter(|old| *old != name)
                    && self.unload_if_from(&old, path).await
                {
                    report.unloaded.push(old);
                }
                (Some(name), true)
            }
            Err(rejection) => {
                report.rejected.push(rejection);
                (serves, false)
            }
        }
    }

    /// Publishes what the directory wants served (from `state`) for status calls.
    fn publish_desired(&self, state: &DirState) {
        let desired = state
            .files
            .values()
            .filter_map(|file| Some((file.serves.clone()?, file.digest.clone())))
            .collect();
        *self.desired.write().expect("desired digests lock poisoned") = Arc::new(desired);
    }

    /// The bytes of the adapter file `path`, read only if it lies in the directory and
    /// is within the size limit.
    async fn read_confined(&self, path: &Path) -> Result<Vec<u8>, FileRefused> {
        let (dir, path, max) = (self.dir.clone(), path.to_path_buf(), self.max_file_bytes);
        tokio::task::spawn_blocking(move || {
            let real = confine(&dir, &path)?;
            read_bounded(&real, &path, max, "--max-upload-mib")
        })
        .await
        .unwrap_or_else(|e| Err(FileRefused::Gone(e.to_string())))
    }

    /// The policy of the adapter file `wasm`: its manifest (confined and bounded like
    /// the adapter file) or the defaults.
    fn policy_for(&self, wasm: &Path) -> Result<SandboxPolicy, String> {
        let manifest = manifest_path(wasm);
        if std::fs::symlink_metadata(&manifest).is_err() {
            return SandboxPolicy::for_file(wasm, &self.policy_defaults).map_err(|e| e.to_string());
        }
        let refused = |error: FileRefused| match error {
            FileRefused::Gone(reason) | FileRefused::Refused(reason) => reason,
        };
        let real = confine(&self.dir, &manifest).map_err(refused)?;
        let bytes = read_bounded(&real, &manifest, MAX_MANIFEST_BYTES, "the manifest limit")
            .map_err(refused)?;
        let text = String::from_utf8(bytes)
            .map_err(|_| format!("policy manifest {}: not UTF-8", manifest.display()))?;
        SandboxPolicy::from_manifest(
            &text,
            &manifest.display().to_string(),
            &self.policy_defaults,
        )
        .map_err(|e| e.to_string())
    }

    /// Validates an uploaded component (with its policy manifest's text, if any) and
    /// swaps it in, whatever file served its name.
    pub async fn load_upload(
        &self,
        bytes: Vec<u8>,
        manifest: Option<&str>,
    ) -> Result<Arc<Adapter>, LifecycleError> {
        self.load_sent(
            bytes,
            manifest,
            UPLOAD_SOURCE.to_string(),
            "uploaded manifest",
            None,
        )
        .await
    }

    /// Validates a component pulled from `source` (a registry reference) that must
    /// describe itself as `name`, and swaps it in as an upload would be.
    pub async fn load_pulled(
        &self,
        bytes: Vec<u8>,
        manifest: Option<&str>,
        source: String,
        name: &str,
    ) -> Result<Arc<Adapter>, LifecycleError> {
        let policy_source = format!("{source} policy layer");
        self.load_sent(bytes, manifest, source, &policy_source, Some(name))
            .await
    }

    /// Records that bytes from `source` could not even be handed to the lifecycle
    /// (e.g. the artifact is not a component); the build serving `name` stays.
    pub fn reject_pulled(&self, source: String, digest: String, reason: String, name: &str) {
        self.reject(source, digest, reason, &Some(name.to_string()));
    }

    async fn load_sent(
        &self,
        bytes: Vec<u8>,
        manifest: Option<&str>,
        source: String,
        policy_source: &str,
        name: Option<&str>,
    ) -> Result<Arc<Adapter>, LifecycleError> {
        let _serialized = self.state.lock().await;
        let digest = digest_of(&bytes);
        let serves = name.map(str::to_string);
        let policy = match manifest {
            None => SandboxPolicy::defaults(&self.policy_defaults),
            Some(text) => SandboxPolicy::from_manifest(text, policy_source, &self.policy_defaults)
                .map_err(|e| {
                    LifecycleError::Rejected(self.reject(
                        source.clone(),
                        digest.clone(),
                        e.to_string(),
                        &serves,
                    ))
                })?,
        };
        self.apply(bytes, digest, source, Arc::new(policy), None, &serves, name)
            .await
            .map(|(adapter, _)| adapter)
            .map_err(LifecycleError::Rejected)
    }

    /// Makes the previous build of `name` current again.
    pub async fn rollback(&self, name: &str) -> Result<Arc<Adapter>, LifecycleError> {
        let _serialized = self.state.lock().await;
        let adapter = self.registry.rollback(name)?;
        let span = lifecycle_span("rollback", &adapter.source);
        span.in_scope(|| {
            tracing::info!(
                adapter = %adapter.info.name,
                version = %adapter.info.version,
                digest = %adapter.digest,
                "adapter rolled back"
            );
        });
        Ok(adapter)
    }

    /// Loads `bytes` (or reuses the in-memory build with that digest) and installs it;
    /// `expected`: the name it must describe (a registry source's adapter).
    #[allow(clippy::too_many_arguments)]
    async fn apply(
        &self,
        bytes: Vec<u8>,
        digest: String,
        source: String,
        policy: Arc<SandboxPolicy>,
        file: Option<&Path>,
        serves: &Option<String>,
        expected: Option<&str>,
    ) -> Result<(Arc<Adapter>, Installed), Rejection> {
        let span = lifecycle_span("load", &source);
        let load = async {
            let adapter = match self.registry.find_by_digest(&digest) {
                Some(known) if known.is_build(&digest, &policy) => known,
                // Same component, new manifest: rewrap, no compile.
                Some(known) => Arc::new(known.with_policy(policy)),
                None => {
                    // Marks the start of what can take seconds (compile, describe,
                    // self-test); status calls meanwhile answer from snapshots.
                    tracing::info!(source = %source, digest = %digest, "validating adapter");
                    match self.runtime.load_bytes(bytes, source.clone(), policy).await {
                        Ok(adapter) => Arc::new(adapter),
                        Err(error) => {
                            return Err(self.reject(source, digest, error.to_string(), serves));
                        }
                    }
                }
            };
            let name = adapter.info.name.clone();
            if let Some(expected) = expected.filter(|expected| *expected != name) {
                let reason = format!(
                    "the component describes itself as {name:?}, but its source serves {expected:?}"
                );
                return Err(self.reject(source, digest, reason, serves));
            }
            // A registry source owns its name: a file of that name does not replace it.
            if file.is_some()
                && let Some(current) = self.registry.get(&name)
                && current.source != source
                && current.source != UPLOAD_SOURCE
                && (Path::new(&current.source).exists()
                    || current.source.starts_with(crate::oci_registry::SCHEME))
            {
                let reason = format!(
                    "adapter name {name:?} is already served from {}; rename or remove one",
                    current.source
                );
                return Err(self.reject(source, digest, reason, serves));
            }
            let installed = self.registry.install(adapter.clone());
            log_installed(&adapter, &installed, &source);
            self.events.changed(LifecycleEvent::Serving(name)).await;
            Ok((adapter, installed))
        };
        let result = load.instrument(span.clone()).await;
        if result.is_err() {
            span.record("otel.status_code", "ERROR");
        }
        result
    }

    /// Records a rejected load; the build serving `serves` (if any) stays.
    fn reject(
        &self,
        source: String,
        digest: String,
        reason: String,
        serves: &Option<String>,
    ) -> Rejection {
        tracing::error!(source = %source, digest = %digest, reason = %reason, "adapter rejected; the current version keeps serving");
        if let Some(name) = serves {
            self.registry.set_last_error(name, reason.clone());
        }
        let rejection = Rejection {
            source,
            digest,
            reason,
            at: SystemTime::now(),
        };
        self.rejected_total.fetch_add(1, Ordering::Relaxed);
        let mut kept = self.rejections.lock().expect("rejections lock poisoned");
        kept.push_front(rejection.clone());
        kept.truncate(REJECTIONS_KEPT);
        rejection
    }

    /// Unloads `name` if its current build came from `path` (an upload that replaced
    /// the file's build stays). Returns whether it unloaded.
    async fn unload_if_from(&self, name: &str, path: &Path) -> bool {
        let from_file = self
            .registry
            .get(name)
            .is_some_and(|current| Path::new(&current.source) == path);
        if !from_file {
            return false;
        }
        self.registry.remove(name);
        self.events
            .changed(LifecycleEvent::Unloaded(name.to_string()))
            .await;
        let span = lifecycle_span("unload", &path.display().to_string());
        span.in_scope(|| tracing::info!(adapter = %name, "adapter unloaded: its file is gone"));
        true
    }
}

/// Logs what installing `adapter` (from `source`) did.
fn log_installed(adapter: &Adapter, installed: &Installed, source: &str) {
    let name = &adapter.info.name;
    match installed {
        Installed::Added => tracing::info!(
            adapter = %name,
            version = %adapter.info.version,
            framework = %adapter.info.framework,
            digest = %adapter.digest,
            source = %source,
            load_ms = adapter.load_time.as_secs_f64() * 1e3,
            from_cache = adapter.from_cache,
            "adapter loaded"
        ),
        Installed::Swapped { old } => tracing::info!(
            adapter = %name,
            version = %adapter.info.version,
            digest = %adapter.digest,
            old_version = %old.info.version,
            old_digest = %old.digest,
            source = %source,
            load_ms = adapter.load_time.as_secs_f64() * 1e3,
            from_cache = adapter.from_cache,
            "adapter swapped"
        ),
        Installed::Unchanged => {
            tracing::debug!(adapter = %name, digest = %adapter.digest, "adapter unchanged");
        }
    }
}

fn lifecycle_span(operation: &'static str, source: &str) -> tracing::Span {
    tracing::info_span!(
        "adapter.lifecycle",
        otel.name = %format!("adapter {operation}"),
        otel.kind = "internal",
        otel.status_code = tracing::field::Empty,
        adapter.operation = operation,
        adapter.source = %source,
    )
}

/// The `*.wasm` regular files in `dir` (hidden files skipped: editors and atomic
/// writers use them as temporaries) with their and their manifests' change stamps.
fn list_wasm_files(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, FileStamp>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let path = entry.path();
        let visible = !entry.file_name().to_string_lossy().starts_with('.');
        if !visible || path.extension().is_none_or(|ext| ext != "wasm") {
            continue;
        }
        // Follows symlinks, so a directory of links to versioned files works.
        match std::fs::metadata(&path) {
            Ok(metadata) if metadata.is_file() => {
                let manifest = std::fs::metadata(manifest_path(&path))
                    .ok()
                    .map(|m| Stamp::of(&m));
                files.insert(path, (Stamp::of(&metadata), manifest));
            }
            _ => {}
        }
    }
    Ok(files)
}

/// Largest policy manifest read, bytes.
const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// Why a file of the directory was not read.
enum FileRefused {
    /// It could not be read (e.g. removed meanwhile): not remembered.
    Gone(String),
    /// It breaks a rule (size, symlink out of the directory): remembered until it changes.
    Refused(String),
}

/// The real path of `path` if it lies inside `dir` once symlinks are resolved: a link
/// to a versioned file beside it works, a link to `/etc/shadow` is refused unread.
fn confine(dir: &Path, path: &Path) -> Result<PathBuf, FileRefused> {
    let root = dir
        .canonicalize()
        .map_err(|e| FileRefused::Gone(format!("{}: {e}", dir.display())))?;
    let real = path
        .canonicalize()
        .map_err(|e| FileRefused::Gone(format!("{}: {e}", path.display())))?;
    if real.starts_with(&root) {
        Ok(real)
    } else {
        Err(FileRefused::Refused(format!(
            "{} is a symlink to {}, outside the adapters directory {}; refused unread",
            path.display(),
            real.display(),
            root.display()
        )))
    }
}

/// Reads `real` (no symlink left to follow), refusing it from its metadata when it is
/// over `max` bytes, and refusing it again if it grew past `max` meanwhile.
fn read_bounded(real: &Path, shown: &Path, max: u64, limit: &str) -> Result<Vec<u8>, FileRefused> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let gone = |e: std::io::Error| FileRefused::Gone(format!("{}: {e}", shown.display()));
    let too_big = |len: u64| {
        FileRefused::Refused(format!(
            "{} is {len} bytes, over the {max}-byte limit ({limit}); refused unread",
            shown.display()
        ))
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(real)
        .map_err(gone)?;
    let metadata = file.metadata().map_err(gone)?;
    if !metadata.is_file() {
        return Err(FileRefused::Refused(format!(
            "{} is not a regular file",
            shown.display()
        )));
    }
    if metadata.len() > max {
        return Err(too_big(metadata.len()));
    }
    let mut bytes = Vec::with_capacity(metadata.len() as usize);
    file.take(max + 1).read_to_end(&mut bytes).map_err(gone)?;
    if bytes.len() as u64 > max {
        return Err(too_big(bytes.len() as u64));
    }
    Ok(bytes)
}
