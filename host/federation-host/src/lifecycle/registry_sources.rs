//! Adapters that follow an OCI registry (`--adapter-source NAME=oci://REGISTRY/REPO:TAG`
//! or `...@sha256:HEX`).
//!
//! Each source is polled on an interval: a HEAD of the tag's manifest (a pinned digest
//! needs no poll once applied). A manifest digest not seen before is pulled once and
//! handed to [`AdapterLifecycle::load_pulled`], the same validation, self-test, atomic
//! swap and rollback path a new file takes (the compile cache is keyed by the
//! component's digest, so a replica that restarts does not recompile). A manifest that
//! was rejected is remembered and not pulled again until the tag moves. A registry
//! that cannot be reached changes nothing that serves: the poll error is kept for the
//! admin API, the `source/NAME` health service turns NOT_SERVING and the
//! `federation.adapter.source.up` gauge reads 0.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use federation_runtime::digest_of;

use crate::lifecycle::{AdapterLifecycle, LifecycleError, LifecycleEvent};
use crate::oci_registry::{AdapterRef, OciError, Registry};

/// `NAME=oci://...`: the adapter name a registry reference serves.
#[derive(Clone, Debug)]
pub struct SourceSpec {
    pub name: String,
    pub reference: AdapterRef,
}

impl std::str::FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<SourceSpec, String> {
        let (name, reference) = text
            .split_once('=')
            .filter(|(name, _)| !name.is_empty())
            .ok_or_else(|| format!("{text:?} is not NAME=oci://REGISTRY/REPO:TAG"))?;
        Ok(SourceSpec {
            name: name.to_string(),
            reference: AdapterRef::parse(reference).map_err(|e| e.to_string())?,
        })
    }
}

/// What one source wants and has, for the admin API.
#[derive(Clone, Debug, Default)]
pub struct SourceStatus {
    pub name: String,
    /// The `oci://` reference as configured.
    pub reference: String,
    pub pinned: bool,
    /// Manifest digest the reference named at the last successful poll.
    pub manifest_digest: String,
    /// sha256 (hex) of the component that manifest holds (empty until pulled).
    pub desired_digest: String,
    /// When the adapter last started serving `desired_digest` (None: not converged).
    pub converged_at: Option<SystemTime>,
    /// Whether the last poll reached the registry.
    pub reachable: bool,
    /// Why the last poll, pull or load failed (empty if it did not).
    pub last_error: String,
    pub last_poll_at: Option<SystemTime>,
}

struct Source {
    spec: SourceSpec,
    status: Mutex<SourceStatus>,
    /// The manifest last handed to the lifecycle (accepted or rejected): not pulled again.
    applied: Mutex<Option<String>>,
}

/// Every registry source of a host.
pub struct RegistrySources {
    lifecycle: Arc<AdapterLifecycle>,
    registry: Registry,
    sources: Vec<Source>,
    max_component_bytes: usize,
}

impl RegistrySources {
    pub fn new(
        lifecycle: Arc<AdapterLifecycle>,
        registry: Registry,
        specs: Vec<SourceSpec>,
        max_component_bytes: usize,
    ) -> RegistrySources {
        let sources = specs
            .into_iter()
            .map(|spec| Source {
                status: Mutex::new(SourceStatus {
                    name: spec.name.clone(),
                    reference: spec.reference.to_string(),
                    pinned: spec.reference.pinned().is_some(),
                    ..SourceStatus::default()
                }),
                applied: Mutex::new(None),
                spec,
            })
            .collect();
        RegistrySources {
            lifecycle,
            registry,
            sources,
            max_component_bytes,
        }
    }

    /// Every source's status, in configuration order.
    pub fn statuses(&self) -> Vec<SourceStatus> {
        self.sources
            .iter()
            .map(|source| source.status.lock().expect("status lock").clone())
            .collect()
    }

    /// Polls every source once, concurrently.
    pub async fn poll_all(&self) {
        futures::future::join_all(self.sources.iter().map(|source| self.poll(source))).await;
    }

    /// Polls every `interval` until `shutdown` resolves.
    pub async fn run(self: Arc<Self>, interval: Duration, shutdown: impl Future<Output = ()>) {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate and start-up already polled.
        ticker.tick().await;
        let mut shutdown = std::pin::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => return,
                _ = ticker.tick() => self.poll_all().await,
            }
        }
    }

    async fn poll(&self, source: &Source) {
        let reference = &source.spec.reference;
        let manifest = match reference.pinned() {
            Some(digest) => Ok(digest.to_string()),
            None => self.registry.manifest_digest(reference).await,
        };
        let outcome = match manifest {
            Ok(manifest) if source.applied.lock().expect("lock").as_deref() == Some(&manifest) => {
                Ok(())
            }
            Ok(manifest) => self.pull_and_load(source, manifest).await,
            Err(error) => Err(PollError::Registry(error)),
        };
        let (reachable, error) = match outcome {
            Ok(()) => (true, String::new()),
            Err(PollError::Registry(error)) => {
                let reachable = !unreachable(&error);
                tracing::warn!(adapter = %source.spec.name, source = %reference, %error, "polling the adapter's registry failed; the current version keeps serving");
                (reachable, error.to_string())
            }
            Err(PollError::Rejected(reason)) => (true, reason),
        };
        {
            let mut status = source.status.lock().expect("status lock");
            status.reachable = reachable;
            status.last_error = error;
            status.last_poll_at = Some(SystemTime::now());
            // Converged only while the serving build is the one the registry names.
            let serving = self.lifecycle.registry().get(&source.spec.name);
            if serving.is_none_or(|adapter| adapter.digest != status.desired_digest) {
                status.converged_at = None;
            }
        }
        self.lifecycle
            .tell(LifecycleEvent::SourceReachable {
                name: source.spec.name.clone(),
                reachable,
            })
            .await;
    }

    async fn pull_and_load(&self, source: &Source, manifest: String) -> Result<(), PollError> {
        let name = &source.spec.name;
        let pulled = match self
            .registry
            .pull(&source.spec.reference, &manifest, self.max_component_bytes)
            .await
        {
            Ok(pulled) => pulled,
            Err(error @ (OciError::NotAComponent { .. } | OciError::TooLarge { .. })) => {
                let label = format!("{}@{manifest}", source.spec.reference);
                {
                    let mut status = source.status.lock().expect("status lock");
                    status.manifest_digest = manifest.clone();
                    status.desired_digest = String::new();
                }
                self.lifecycle
                    .reject_pulled(label, String::new(), error.to_string(), name);
                *source.applied.lock().expect("lock") = Some(manifest);
                return Err(PollError::Rejected(error.to_string()));
            }
            Err(error) => return Err(PollError::Registry(error)),
        };
        let digest = digest_of(&pulled.component);
        {
            let mut status = source.status.lock().expect("status lock");
            status.manifest_digest = pulled.manifest_digest.clone();
            status.desired_digest = digest.clone();
        }
        let label = format!("{}@{}", source.spec.reference, pulled.manifest_digest);
        let result = self
            .lifecycle
            .load_pulled(pulled.component, pulled.policy.as_deref(), label, name)
            .await;
        *source.applied.lock().expect("lock") = Some(manifest);
        match result {
            Ok(adapter) => {
                tracing::info!(adapter = %name, digest = %adapter.digest, manifest = %pulled.manifest_digest, "registry source converged");
                source.status.lock().expect("status lock").converged_at = Some(SystemTime::now());
                Ok(())
            }
            Err(LifecycleError::Rejected(rejection)) => Err(PollError::Rejected(rejection.reason)),
            Err(other) => Err(PollError::Rejected(other.to_string())),
        }
    }
}

enum PollError {
    Registry(OciError),
    Rejected(String),
}

/// Whether `error` means the registry could not be reached (rather than answered no).
fn unreachable(error: &OciError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    match error {
        OciError::Registry { source, .. } => match source {
            E::RequestError(_) | E::IoError(_) => true,
            E::ServerError { code, .. } => *code >= 500,
            _ => false,
        },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_source_is_a_name_and_a_reference() {
        let spec: SourceSpec = "crewai=oci://127.0.0.1:5000/adapters/crewai:v1"
            .parse()
            .unwrap();
        assert_eq!(spec.name, "crewai");
        assert_eq!(
            spec.reference.to_string(),
            "oci://127.0.0.1:5000/adapters/crewai:v1"
        );
        assert!(
            "oci://127.0.0.1:5000/crewai:v1"
                .parse::<SourceSpec>()
                .is_err()
        );
        assert!(
            "=oci://127.0.0.1:5000/crewai:v1"
                .parse::<SourceSpec>()
                .is_err()
        );
    }
}
