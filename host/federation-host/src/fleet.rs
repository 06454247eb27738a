//! Fleet metrics: what each replica serves, so a dashboard summing over replicas
//! counts how many serve each digest.
//!
//! - `federation.adapter.serving` (gauge, 1 per adapter): `adapter.name`,
//!   `adapter.digest`, `adapter.version` of the current build. Summed by
//!   `adapter.digest` across replicas it is the number of replicas on each digest
//!   (Prometheus: `sum by (adapter_digest) (federation_adapter_serving)`).
//! - `federation.adapter.source.up` (gauge, per registry source): 1 while its
//!   registry answers polls, 0 while it does not (the current build keeps serving).
//! - `federation.adapter.source.converged` (gauge, per registry source): 1 while the
//!   serving build is the one the registry names.

use std::sync::Arc;

use opentelemetry::KeyValue;
use opentelemetry::metrics::ObservableGauge;

use federation_runtime::AdapterRegistry;

use crate::lifecycle::registry_sources::RegistrySources;

/// The registered gauges; they report for as long as this is kept.
pub struct FleetMetrics {
    _gauges: Vec<ObservableGauge<u64>>,
}

impl FleetMetrics {
    /// Registers the gauges on the global meter provider (observed at each export).
    pub fn register(
        registry: Arc<AdapterRegistry>,
        sources: Option<Arc<RegistrySources>>,
    ) -> FleetMetrics {
        let meter = opentelemetry::global::meter("agent-federation");
        let serving = meter
            .u64_observable_gauge("federation.adapter.serving")
            .with_description("1 per adapter build this replica serves, by digest")
            .with_callback(move |observer| {
                for (name, slot) in registry.snapshot() {
                    observer.observe(
                        1,
                        &[
                            KeyValue::new("adapter.name", name),
                            KeyValue::new("adapter.digest", slot.current.digest.clone()),
                            KeyValue::new("adapter.version", slot.current.info.version.clone()),
                        ],
                    );
                }
            })
            .build();
        let mut gauges = vec![serving];
        if let Some(sources) = sources {
            let up_sources = sources.clone();
            gauges.push(
                meter
                    .u64_observable_gauge("federation.adapter.source.up")
                    .with_description("1 while the adapter's registry answers polls")
                    .with_callback(move |observer| {
                        for status in up_sources.statuses() {
                            observer.observe(
                                u64::from(status.reachable),
                                &[
                                    KeyValue::new("adapter.name", status.name),
                                    KeyValue::new("adapter.source", status.reference),
                                ],
                            );
                        }
                    })
                    .build(),
            );
            gauges.push(
                meter
                    .u64_observable_gauge("federation.adapter.source.converged")
                    .with_description("1 while the serving build is the one the registry names")
                    .with_callback(move |observer| {
                        for status in sources.statuses() {
                            observer.observe(
                                u64::from(status.converged_at.is_some()),
                                &[
                                    KeyValue::new("adapter.name", status.name),
                                    KeyValue::new("adapter.source", status.reference),
                                ],
                            );
                        }
                    })
                    .build(),
            );
        }
        FleetMetrics { _gauges: gauges }
    }
}
