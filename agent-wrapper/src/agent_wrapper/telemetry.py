"""OpenTelemetry setup: OTLP/HTTP export, FastAPI server spans, OpenInference spans.

The standard ``OTEL_*`` variables configure the exporter (endpoint, headers,
``OTEL_SERVICE_NAME``, ``OTEL_TRACES_EXPORTER=none`` to export nothing). Tests
inject an exporter (e.g. ``InMemorySpanExporter``) instead. The framework
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
        service = os.environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME
        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service}))
        if span_exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(span_exporter))
        elif os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() != "none":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            # OTLPSpanExporter reads OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT/HEADERS itself.
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _instrument_frameworks(provider)
        _provider = provider
        return provider


def _instrument_frameworks(provider: TracerProvider) -> None:
    from openinference.instrumentation.crewai import CrewAIInstrumentor
    from openinference.instrumentation.langchain import LangChainInstrumentor

    # The event-listener mode yields agent, task, LLM and tool spans.
    CrewAIInstrumentor().instrument(tracer_provider=provider, use_event_listener=True)
    LangChainInstrumentor().instrument(tracer_provider=provider)


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
