"""OpenTelemetry setup: OTLP export, FastAPI server spans, OpenInference spans with the
GenAI conventions added (``semconv.py``).

The standard ``OTEL_*`` variables configure the exporter: endpoint, headers,
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER=none`` to export nothing, and
``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``: ``http/protobuf`` (the default) or ``grpc``,
so the wrapper and the host can share one collector endpoint (metrics: ``metrics.py``).
HTTP server spans use the stable HTTP conventions (``http.request.method``,
``url.path``, ...), as the host does.
Tests inject an exporter (e.g. ``InMemorySpanExporter``) instead. The framework
instrumentors patch process-wide state, so they are installed once per process.
"""

import logging
import os
import threading

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
)

from agent_wrapper.semconv import GenAISemconvExporter

log = logging.getLogger(__name__)

DEFAULT_SERVICE_NAME = "agent-wrapper"
TRACER_NAME = "agent_wrapper"

_lock = threading.Lock()
_provider: TracerProvider | None = None


def setup_telemetry(span_exporter: SpanExporter | None = None) -> TracerProvider:
    """Create (once) the process tracer provider and instrument the frameworks.

    ``span_exporter`` replaces the OTLP exporter and is exported synchronously,
    which is what tests want. Later calls return the first provider unchanged.
    """
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        # Stable HTTP conventions (http.request.method, url.path, client.address, ...),
        # the generation the host's spans use. Read once, by the first instrumentor.
        os.environ.setdefault("OTEL_SEMCONV_STABILITY_OPT_IN", "http")
        service = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        if span_exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(GenAISemconvExporter(span_exporter)))
        elif os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none":
            provider.add_span_processor(
                BatchSpanProcessor(GenAISemconvExporter(otlp_exporter())))
        trace.set_tracer_provider(provider)
        _instrument_frameworks(provider)
        _provider = provider
        return provider


def check_configuration() -> None:
    """Raise ``ValueError`` for OTEL_* settings the providers would refuse (so a
    supervisor can refuse them once, before starting workers)."""
    for signal in ("TRACES", "METRICS"):
        if os.environ.get(f"OTEL_{signal}_EXPORTER", "otlp").strip().lower() != "none":
            otlp_protocol(signal)


def otlp_protocol(signal: str = "TRACES") -> str:
    """``OTEL_EXPORTER_OTLP_<SIGNAL>_PROTOCOL``, else ``OTEL_EXPORTER_OTLP_PROTOCOL``,
    else ``http/protobuf``. Anything else is refused at start (a silent fallback would
    send spans or metrics where no one listens)."""
    specific = f"OTEL_EXPORTER_OTLP_{signal}_PROTOCOL"
    name = specific if os.environ.get(specific) else "OTEL_EXPORTER_OTLP_PROTOCOL"
    value = (os.environ.get(name) or "http/protobuf").strip().lower()
    if value not in ("grpc", "http/protobuf"):
        raise ValueError(f"{name}={value!r} is not supported: use 'grpc' or 'http/protobuf'")
    return value


def otlp_exporter() -> SpanExporter:
    """The OTLP exporter for the configured protocol; each reads
    ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS`` itself."""
    if otlp_protocol() == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def _instrument_frameworks(provider: TracerProvider) -> None:
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.langchain import LangChainInstrumentor

    # The event-listener mode yields agent, task, LLM and tool spans.
    CrewAIInstrumentor().instrument(tracer_provider=provider, use_event_listener=True)
    LangChainInstrumentor().instrument(tracer_provider=provider)
    # Agent code's HTTP clients (the openai SDK under ChatOpenAI, crewai's LLMs) send
    # the trace and its baggage: the model gateway (llm/gateway.py) continues both.
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    HTTPXClientInstrumentor().instrument(tracer_provider=provider)


def instrument_app(app, provider: TracerProvider) -> None:
    """Server spans for the app, continuing incoming ``traceparent``/``tracestate``."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    # No span per ASGI send/receive message: a streamed run sends one message per
    # progress event, which would bury the run's own spans.
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider,
                                       excluded_urls="healthz,readyz",
                                       exclude_spans=["receive", "send"])


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def current_trace_id() -> str:
    """The current trace id as 32 lowercase hex characters."""
    return format(trace.get_current_span().get_span_context().trace_id, "032x")


def shutdown() -> None:
    """Flush pending spans (BatchSpanProcessor) at process exit."""
    if _provider is not None:
        _provider.force_flush()
