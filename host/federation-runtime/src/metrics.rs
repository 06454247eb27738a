//! Per-adapter metrics, exported over OTLP with the host's traces: tasks, errors by
//! kind, traps, guest CPU time, memory high-water mark, outbound calls sent and denied.
//!
//! Every point carries `adapter.name` and `adapter.version`; errors also carry
//! `error.type` (the gRPC code name). `OTEL_METRICS_EXPORTER=none` turns export off;
//! `OTEL_METRIC_EXPORT_INTERVAL` (ms) sets how often points are sent.

use std::sync::{Arc, OnceLock};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Histogram};

use crate::bindings::AdapterInfo;
use crate::usage::Usage;

pub struct AdapterMetrics {
    tasks: Counter<u64>,
    errors: Counter<u64>,
    traps: Counter<u64>,
    cpu_time: Histogram<f64>,
    memory_peak: Histogram<u64>,
    outbound_requests: Counter<u64>,
    outbound_denied: Counter<u64>,
}

impl AdapterMetrics {
    /// The instruments, on the global meter provider (a no-op until telemetry is set up).
    pub fn get() -> &'static AdapterMetrics {
        static METRICS: OnceLock<AdapterMetrics> = OnceLock::new();
        METRICS.get_or_init(|| {
            let meter = opentelemetry::global::meter("agent-federation");
            AdapterMetrics {
                tasks: meter
                    .u64_counter("federation.adapter.tasks")
                    .with_description("Tasks run by an adapter, finished or not")
                    .build(),
                errors: meter
                    .u64_counter("federation.adapter.errors")
                    .with_description("Tasks that ended in an error, by gRPC code")
                    .build(),
                traps: meter
                    .u64_counter("federation.adapter.traps")
                    .with_description("Tasks whose adapter instance trapped")
                    .build(),
                cpu_time: meter
                    .f64_histogram("federation.adapter.cpu_time")
                    .with_unit("s")
                    .with_description("Guest CPU time per task (epoch ticks while the guest ran)")
                    .build(),
                memory_peak: meter
                    .u64_histogram("federation.adapter.memory_peak")
                    .with_unit("By")
                    .with_description("Largest linear memory a task's instance asked for")
                    .build(),
                outbound_requests: meter
                    .u64_counter("federation.adapter.outbound_requests")
                    .with_description("Outbound HTTP requests an adapter attempted")
                    .build(),
                outbound_denied: meter
                    .u64_counter("federation.adapter.outbound_denied")
                    .with_description("Outbound requests refused by the adapter's policy")
                    .build(),
            }
        })
    }

    /// Records one finished task of the adapter `attributes` name; `error` is its gRPC
    /// code name when it failed. Allocates nothing: the adapter's attributes were built
    /// when it was loaded.
    pub fn record(
        &self,
        attributes: &MetricAttributes,
        usage: &Usage,
        error: Option<&'static str>,
        trapped: bool,
    ) {
        let attributes = &attributes.0;
        self.tasks.add(1, attributes);
        if let Some(code) = error {
            let [name, version] = attributes;
            let with_kind = [
                name.clone(),
                version.clone(),
                KeyValue::new("error.type", code),
            ];
            self.errors.add(1, &with_kind);
        }
        if trapped {
            self.traps.add(1, attributes);
        }
        self.cpu_time
            .record(usage.cpu_time.as_secs_f64(), attributes);
        self.memory_peak
            .record(usage.memory_peak as u64, attributes);
        self.outbound_requests
            .add(u64::from(usage.outbound_requests), attributes);
        if usage.outbound_denied > 0 {
            self.outbound_denied
                .add(u64::from(usage.outbound_denied), attributes);
        }
    }
}

/// `adapter.name` and `adapter.version` of one adapter build, with the strings shared
/// (`Arc<str>`), so that recording a task copies no string.
#[derive(Clone, Debug)]
pub struct MetricAttributes([KeyValue; 2]);

impl MetricAttributes {
    pub fn of(info: &AdapterInfo) -> MetricAttributes {
        MetricAttributes([
            KeyValue::new("adapter.name", Arc::<str>::from(info.name.as_str())),
            KeyValue::new("adapter.version", Arc::<str>::from(info.version.as_str())),
        ])
    }
}
