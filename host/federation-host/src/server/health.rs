//! gRPC health kept from the lifecycle: one health service per backend
//! (`backend/NAME`) and per registry source (`source/NAME`).

use futures::future::BoxFuture;
use tonic_health::{ServingStatus, server::HealthReporter};

use crate::lifecycle::{LifecycleEvent, LifecycleEvents};

/// Health-check service name of one backend (`grpc.health.v1`), e.g. `backend/crewai`.
pub fn backend_health_name(backend: &str) -> String {
    format!("backend/{backend}")
}

/// Health-check service name of one registry source, e.g. `source/crewai`: SERVING
/// while its registry answers polls (the backend serves either way).
pub fn source_health_name(adapter: &str) -> String {
    format!("source/{adapter}")
}

/// Keeps each backend's gRPC health from the lifecycle's events.
pub(super) struct BackendHealth(pub(super) HealthReporter);

impl LifecycleEvents for BackendHealth {
    fn changed(&self, event: LifecycleEvent) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            match event {
                LifecycleEvent::Serving(name) => {
                    self.0
                        .set_service_status(backend_health_name(&name), ServingStatus::Serving)
                        .await;
                }
                LifecycleEvent::Unloaded(name) => {
                    self.0
                        .clone()
                        .clear_service_status(&backend_health_name(&name))
                        .await;
                }
                LifecycleEvent::SourceReachable { name, reachable } => {
                    let status = if reachable {
                        ServingStatus::Serving
                    } else {
                        ServingStatus::NotServing
                    };
                    self.0
                        .set_service_status(source_health_name(&name), status)
                        .await;
                }
            }
        })
    }
}
