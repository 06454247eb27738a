//! Logs, traces and metrics: `tracing` to stderr and, through `tracing-opentelemetry`,
//! to an OTLP/gRPC collector configured by the standard `OTEL_*` variables; the
//! adapter metrics of `federation_runtime::AdapterMetrics` go to the same collector.
//!
//! `OTEL_EXPORTER_OTLP_ENDPOINT` (default `http://localhost:4317`), `OTEL_SERVICE_NAME`
//! (default `agent-federation`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` for batching,
//! and `OTEL_TRACES_EXPORTER=none` to keep trace ids and propagation without exporting;
//! `OTEL_METRICS_EXPORTER=none` and `OTEL_METRIC_EXPORT_INTERVAL` likewise for metrics.
//! A collector that is down costs dropped spans, never a failed task.

use anyhow::Context;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::{EnvFilter, Layer, layer::SubscriberExt, util::SubscriberInitExt};

const DEFAULT_SERVICE_NAME: &str = "agent-federation";
const DEFAULT_LOG_FILTER: &str =
    "info,wasmtime=warn,cranelift=warn,h2=warn,hyper=warn,tower=warn,opentelemetry_sdk=warn";

/// Keeps the providers alive; `shutdown` flushes spans and metrics not yet sent.
pub struct Telemetry {
    provider: SdkTracerProvider,
    meters: SdkMeterProvider,
}

impl Telemetry {
    /// Installs the global subscriber and propagator. Call once, inside a tokio runtime.
    pub fn init() -> anyhow::Result<Telemetry> {
        Self::init_with(true, DEFAULT_LOG_FILTER)
    }

    /// Trace ids and propagation without exporting anything, warnings only on stderr
    /// (for local tools such as `adapter check`).
    pub fn init_local() -> anyhow::Result<Telemetry> {
        Self::init_with(false, "warn,wasmtime=error,cranelift=error")
    }

    fn init_with(export: bool, default_filter: &str) -> anyhow::Result<Telemetry> {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());

        let mut resource = Resource::builder();
        if std::env::var_os("OTEL_SERVICE_NAME").is_none() {
            resource = resource.with_service_name(DEFAULT_SERVICE_NAME);
        }
        let resource = resource
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let mut meters = SdkMeterProvider::builder().with_resource(resource.clone());
        if export && !std::env::var("OTEL_METRICS_EXPORTER").is_ok_and(|v| v == "none") {
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_tonic()
                .build()
                .context("building the OTLP metric exporter")?;
            meters = meters.with_reader(PeriodicReader::builder(exporter).build());
        }
        let meters = meters.build();
        opentelemetry::global::set_meter_provider(meters.clone());

        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        let exporter_off =
            !export || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
        if !exporter_off {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .build()
                .context("building the OTLP span exporter")?;
            builder = builder.with_batch_exporter(exporter);
        }
        let provider = builder.build();
        let tracer = provider.tracer(DEFAULT_SERVICE_NAME);
        opentelemetry::global::set_tracer_provider(provider.clone());

        // The log and the spans are filtered apart: quiet logs (a local tool) must not
        // disable the spans that carry the trace context into outbound requests.
        let log_filter =
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
        let span_filter = EnvFilter::new(DEFAULT_LOG_FILTER);
        tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
                    .with_filter(log_filter),
            )
            .with(
                tracing_opentelemetry::layer()
                    .with_tracer(tracer)
                    .with_filter(span_filter),
            )
            .try_init()
            .context("installing the tracing subscriber")?;
        Ok(Telemetry { provider, meters })
    }

    /// Flushes and stops the exporter.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            eprintln!("telemetry shutdown (traces): {error}");
        }
        if let Err(error) = self.meters.shutdown() {
            eprintln!("telemetry shutdown (metrics): {error}");
        }
    }
}

/// The current trace id as 32 lowercase hex digits.
pub fn current_trace_id() -> String {
    tracing::Span::current()
        .context()
        .span()
        .span_context()
        .trace_id()
        .to_string()
}
