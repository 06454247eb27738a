//! Logs, traces and metrics: `tracing` to stderr and, through `tracing-opentelemetry`,
//! to an OTLP collector configured by the standard `OTEL_*` variables; the adapter
//! metrics of `federation_runtime::AdapterMetrics` go to the same collector.
//!
//! `OTEL_EXPORTER_OTLP_PROTOCOL` (`grpc`, the default, or `http/protobuf`; per signal
//! `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `..._METRICS_PROTOCOL`; anything else stops
//! start-up with an error), `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4317` for gRPC, `http://localhost:4318` for HTTP, where
//! `/v1/traces` and `/v1/metrics` are appended), `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` /
//! `..._METRICS_ENDPOINT` (used as given), `OTEL_SERVICE_NAME` (default
//! `agent-federation`), `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_BSP_*` for batching, and
//! `OTEL_TRACES_EXPORTER=none` to keep trace ids and propagation without exporting;
//! `OTEL_METRICS_EXPORTER=none` and `OTEL_METRIC_EXPORT_INTERVAL` likewise for metrics.
//! A collector that is down costs dropped spans, never a failed task.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::trace::TraceContextExt;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
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
            let points = opentelemetry_otlp::MetricExporter::builder();
            let exporter = match OtlpProtocol::from_env(Signal::Metrics)? {
                OtlpProtocol::Grpc => points.with_tonic().build(),
                OtlpProtocol::HttpProtobuf => points
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_http_client(RuntimeHttpClient::new(Signal::Metrics)?)
                    .build(),
            }
            .context("building the OTLP metric exporter")?;
            meters = meters.with_reader(PeriodicReader::builder(exporter).build());
        }
        let meters = meters.build();
        opentelemetry::global::set_meter_provider(meters.clone());

        let mut builder = SdkTracerProvider::builder().with_resource(resource);
        let exporter_off =
            !export || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none");
        if !exporter_off {
            let spans = opentelemetry_otlp::SpanExporter::builder();
            let exporter = match OtlpProtocol::from_env(Signal::Traces)? {
                OtlpProtocol::Grpc => spans.with_tonic().build(),
                OtlpProtocol::HttpProtobuf => spans
                    .with_http()
                    .with_protocol(Protocol::HttpBinary)
                    .with_http_client(RuntimeHttpClient::new(Signal::Traces)?)
                    .build(),
            }
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

/// One OTLP signal, naming its per-signal environment variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Signal {
    Traces,
    Metrics,
}

impl Signal {
    fn variable(self, suffix: &str) -> String {
        match self {
            Signal::Traces => format!("OTEL_EXPORTER_OTLP_TRACES_{suffix}"),
            Signal::Metrics => format!("OTEL_EXPORTER_OTLP_METRICS_{suffix}"),
        }
    }

    /// The per-signal variable if set and not empty, else the general one (as the OTel
    /// spec orders them): `(variable, value)`.
    fn setting(self, suffix: &str) -> Option<(String, String)> {
        [
            self.variable(suffix),
            format!("OTEL_EXPORTER_OTLP_{suffix}"),
        ]
        .into_iter()
        .find_map(|name| {
            let value = std::env::var(&name).ok()?;
            let value = value.trim().to_string();
            (!value.is_empty()).then_some((name, value))
        })
    }
}

/// The OTLP transports the host speaks. The SDK would fall back to a default on a value
/// it does not know; a typo must not silently send telemetry nowhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OtlpProtocol {
    Grpc,
    HttpProtobuf,
}

/// An `OTEL_EXPORTER_OTLP_*PROTOCOL` value the host does not speak.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable}={value:?} is not a supported OTLP protocol: use \"grpc\" or \"http/protobuf\"")]
pub struct UnsupportedProtocol {
    variable: String,
    value: String,
}

impl OtlpProtocol {
    fn from_env(signal: Signal) -> Result<OtlpProtocol, UnsupportedProtocol> {
        match signal.setting("PROTOCOL") {
            None => Ok(OtlpProtocol::Grpc),
            Some((variable, value)) => Self::parse(variable, value),
        }
    }

    fn parse(variable: String, value: String) -> Result<OtlpProtocol, UnsupportedProtocol> {
        match value.to_ascii_lowercase().as_str() {
            "grpc" => Ok(OtlpProtocol::Grpc),
            "http/protobuf" => Ok(OtlpProtocol::HttpProtobuf),
            _ => Err(UnsupportedProtocol { variable, value }),
        }
    }
}

/// The default of `OTEL_EXPORTER_OTLP_TIMEOUT`.
const DEFAULT_EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The host's reqwest as the OTLP/HTTP exporters' transport. The SDK's batch span
/// processor and periodic metric reader export from threads of their own, outside
/// tokio, where reqwest cannot run, so each request is spawned on the runtime that
/// built the exporter.
#[derive(Debug)]
struct RuntimeHttpClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

impl RuntimeHttpClient {
    /// Applies the signal's `OTEL_EXPORTER_OTLP_*TIMEOUT` (milliseconds) to each request,
    /// which the SDK leaves to the client.
    fn new(signal: Signal) -> anyhow::Result<RuntimeHttpClient> {
        let timeout = match signal.setting("TIMEOUT") {
            None => DEFAULT_EXPORT_TIMEOUT,
            Some((variable, value)) => value
                .parse()
                .map(Duration::from_millis)
                .with_context(|| format!("{variable}={value:?} is not a number of milliseconds"))?,
        };
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("building the OTLP/HTTP client")?;
        let runtime = tokio::runtime::Handle::try_current()
            .context("the OTLP/HTTP exporter needs a tokio runtime")?;
        Ok(RuntimeHttpClient { client, runtime })
    }
}

#[async_trait::async_trait]
impl HttpClient for RuntimeHttpClient {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let sent = self.runtime.spawn(async move {
            let response = client.execute(reqwest::Request::try_from(request)?).await?;
            let mut reply = Response::builder().status(response.status());
            if let Some(headers) = reply.headers_mut() {
                *headers = response.headers().clone();
            }
            Ok::<_, HttpError>(reply.body(response.bytes().await?)?)
        });
        sent.await?
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_parse_as_the_spec_spells_them_and_others_are_refused() {
        let parse = |value: &str| OtlpProtocol::parse("V".into(), value.into());
        assert_eq!(parse("grpc"), Ok(OtlpProtocol::Grpc));
        assert_eq!(parse("http/protobuf"), Ok(OtlpProtocol::HttpProtobuf));
        assert_eq!(parse("HTTP/Protobuf"), Ok(OtlpProtocol::HttpProtobuf));
        let refused = parse("http/json").unwrap_err();
        assert_eq!(
            refused.to_string(),
            "V=\"http/json\" is not a supported OTLP protocol: use \"grpc\" or \"http/protobuf\""
        );
        assert!(parse("http").is_err());
    }
}
