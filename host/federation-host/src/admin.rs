//! `federation.v1.AdminService`: list, reload, roll back and upload adapters on a
//! running host, behind a bearer token. Served only when a token is configured.

use std::sync::Arc;

use tonic::{Request, Response, Status, metadata::MetadataMap};

use federation_proto::admin_service_server::AdminService;
use federation_proto::{
    AdapterStatus, AdapterVersion, ListAdaptersRequest, ListAdaptersResponse, LoadAdapterRequest,
    ReloadAdaptersRequest, ReloadAdaptersResponse, RollbackAdapterRequest, adapter_status,
};

use std::collections::BTreeMap;

use crate::error::AdminError;
use crate::lifecycle::registry_sources::{RegistrySources, SourceStatus};
use crate::lifecycle::{AdapterLifecycle, Rejection, UPLOAD_SOURCE};
use federation_runtime::{Adapter, Slot};

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone)]
pub struct AdminToken(String);

impl AdminToken {
    pub fn new(token: String) -> Option<AdminToken> {
        let token = token.trim().to_string();
        (!token.is_empty()).then_some(AdminToken(token))
    }

    /// The token itself, for the host's own checks (manifests must not name it).
    pub fn secret(&self) -> &str {
        &self.0
    }

    /// The `authorization` metadata value a client sends.
    pub fn bearer(&self) -> String {
        format!("Bearer {}", self.0)
    }

    /// Whether `metadata` carries `authorization: Bearer <token>` (constant-time).
    fn admits(&self, metadata: &MetadataMap) -> bool {
        let Some(presented) = metadata
            .get("authorization")
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.strip_prefix("Bearer "))
        else {
            return false;
        };
        let (a, b) = (presented.as_bytes(), self.0.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

/// The interceptor guarding every admin call.
pub fn require_token(
    token: AdminToken,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone {
    move |request: Request<()>| {
        if token.admits(request.metadata()) {
            Ok(request)
        } else {
            Err(AdminError::Unauthenticated.into())
        }
    }
}

pub struct Admin {
    lifecycle: Arc<AdapterLifecycle>,
    sources: Option<Arc<RegistrySources>>,
    max_upload_bytes: usize,
}

impl Admin {
    pub fn new(
        lifecycle: Arc<AdapterLifecycle>,
        sources: Option<Arc<RegistrySources>>,
        max_upload_bytes: usize,
    ) -> Self {
        Admin {
            lifecycle,
            sources,
            max_upload_bytes,
        }
    }

    fn source_statuses(&self) -> Vec<SourceStatus> {
        self.sources
            .as_ref()
            .map(|sources| sources.statuses())
            .unwrap_or_default()
    }

    /// What the gRPC layer may decode for this service: room above the upload limit,
    /// so an upload just over it gets our RESOURCE_EXHAUSTED rather than tonic's
    /// OUT_OF_RANGE (which far larger messages still get).
    pub fn max_message_bytes(&self) -> usize {
        self.max_upload_bytes.saturating_mul(2).max(1 << 20)
    }

    fn status_of(&self, name: &str) -> Result<AdapterStatus, AdminError> {
        self.lifecycle
            .registry()
            .snapshot()
            .into_iter()
            .find(|(slot_name, _)| slot_name == name)
            .map(|(name, slot)| adapter_status(name, &slot))
            .ok_or_else(|| AdminError::NotLoaded(name.to_string()))
    }
}

#[tonic::async_trait]
impl AdminService for Admin {
    async fn list_adapters(
        &self,
        _request: Request<ListAdaptersRequest>,
    ) -> Result<Response<ListAdaptersResponse>, Status> {
        let sources = self.source_statuses();
        // Snapshots only: a listing never waits behind a load being validated.
        let files = self.lifecycle.desired_digests();
        let snapshot = self.lifecycle.registry().snapshot();
        let serving: BTreeMap<&str, &str> = snapshot
            .iter()
            .map(|(name, slot)| (name.as_str(), slot.current.digest.as_str()))
            .collect();
        let adapters = snapshot
            .iter()
            .map(|(name, slot)| {
                let mut status = adapter_status(name.clone(), slot);
                let source = sources.iter().find(|s| s.name == *name);
                let (origin, desired, converged) = match source {
                    Some(source) => (
                        source.reference.clone(),
                        source.desired_digest.clone(),
                        source.converged_at,
                    ),
                    None if slot.current.source == UPLOAD_SOURCE => (
                        UPLOAD_SOURCE.to_string(),
                        slot.current.digest.clone(),
                        Some(slot.current_since),
                    ),
                    None => (
                        slot.current.source.clone(),
                        files.get(name).cloned().unwrap_or_default(),
                        Some(slot.current_since),
                    ),
                };
                status.converged_at = converged
                    .filter(|_| desired == slot.current.digest)
                    .map(Into::into);
                status.source = origin;
                status.desired_digest = desired;
                status
            })
            .collect();
        let (rejections, rejected_total) = self.lifecycle.rejections();
        Ok(Response::new(ListAdaptersResponse {
            adapters,
            rejections: rejections.iter().map(rejection).collect(),
            rejected_total,
            sources: sources
                .iter()
                .map(|source| source_status(source, serving.get(source.name.as_str())))
                .collect(),
        }))
    }

    async fn reload_adapters(
        &self,
        _request: Request<ReloadAdaptersRequest>,
    ) -> Result<Response<ReloadAdaptersResponse>, Status> {
        let report = self
            .lifecycle
            .reconcile(true)
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(ReloadAdaptersResponse {
            loaded: report.loaded.iter().map(|a| version(a)).collect(),
            rejected: report.rejected.iter().map(rejection).collect(),
            unloaded: report.unloaded,
        }))
    }

    async fn rollback_adapter(
        &self,
        request: Request<RollbackAdapterRequest>,
    ) -> Result<Response<AdapterStatus>, Status> {
        let name = request.into_inner().name;
        self.lifecycle
            .rollback(&name)
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(self.status_of(&name)?))
    }

    async fn load_adapter(
        &self,
        request: Request<LoadAdapterRequest>,
    ) -> Result<Response<AdapterStatus>, Status> {
        let LoadAdapterRequest { component, policy } = request.into_inner();
        if component.is_empty() {
            return Err(AdminError::EmptyComponent.into());
        }
        if component.len() > self.max_upload_bytes {
            return Err(AdminError::ComponentTooLarge {
                size: component.len(),
                limit: self.max_upload_bytes,
            }
            .into());
        }
        let manifest = (!policy.trim().is_empty()).then_some(policy.as_str());
        let adapter = self
            .lifecycle
            .load_upload(component, manifest)
            .await
            .map_err(AdminError::from)?;
        Ok(Response::new(self.status_of(&adapter.info.name)?))
    }
}

fn adapter_status(name: String, slot: &Slot) -> AdapterStatus {
    let state = match slot.last_error {
        None => adapter_status::State::Serving,
        Some(_) => adapter_status::State::ServingUpdateRejected,
    };
    AdapterStatus {
        name,
        state: state as i32,
        current: Some(version(&slot.current)),
        previous: slot.previous.as_deref().map(version),
        last_error: slot.last_error.clone().unwrap_or_default(),
        current_since: Some(slot.current_since.into()),
        source: slot.current.source.clone(),
        desired_digest: slot.current.digest.clone(),
        converged_at: Some(slot.current_since.into()),
    }
}

fn source_status(source: &SourceStatus, serving: Option<&&str>) -> federation_proto::AdapterSource {
    federation_proto::AdapterSource {
        name: source.name.clone(),
        reference: source.reference.clone(),
        pinned: source.pinned,
        manifest_digest: source.manifest_digest.clone(),
        desired_digest: source.desired_digest.clone(),
        serving_digest: serving.map(|d| d.to_string()).unwrap_or_default(),
        converged_at: source.converged_at.map(Into::into),
        registry_reachable: source.reachable,
        last_error: source.last_error.clone(),
        last_poll_at: source.last_poll_at.map(Into::into),
    }
}

fn version(adapter: &Adapter) -> AdapterVersion {
    AdapterVersion {
        name: adapter.info.name.clone(),
        version: adapter.info.version.clone(),
        digest: adapter.digest.clone(),
        framework: adapter.info.framework.clone(),
        source: adapter.source.clone(),
        loaded_at: Some(adapter.loaded_at.into()),
        tasks_served: adapter.tasks_started(),
        load_us: u64::try_from(adapter.load_time.as_micros()).unwrap_or(u64::MAX),
        from_cache: adapter.from_cache,
        policy_source: adapter.policy.source.clone(),
    }
}

fn rejection(rejection: &Rejection) -> federation_proto::Rejection {
    federation_proto::Rejection {
        source: rejection.source.clone(),
        digest: rejection.digest.clone(),
        reason: rejection.reason.clone(),
        at: Some(rejection.at.into()),
    }
}
