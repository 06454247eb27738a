"""OpenTelemetry GenAI semantic conventions on the spans the wrapper exports.

OpenInference's instrumentors (what records the crews' and graphs' LLM and tool spans)
write ``llm.*`` / ``tool.*`` attributes; GenAI dashboards read ``gen_ai.*``. An
exporter wrapper adds the ``gen_ai.*`` attributes beside the OpenInference ones to every
LLM and tool span on its way out, whichever exporter is configured, so both kinds of
backend understand the same trace.
"""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

OFFLINE_MODEL = "offline-deterministic"


def _provider(attributes: Mapping[str, Any], model: str | None) -> str | None:
    if model == OFFLINE_MODEL:
        return "offline"  # OpenInference names it after the class ("offlinechatmodel")
    provider = attributes.get("llm.provider") or attributes.get("llm.system")
    if provider:
        return str(provider)
    if model and "/" in model:  # litellm-style "openai/gpt-4o"
        return model.split("/", 1)[0]
    return None


def _tool_call_id(attributes: Mapping[str, Any]) -> str | None:
    for key in ("tool_call.id", "tool.id"):
        if attributes.get(key):
            return str(attributes[key])
    # LangChain's tool spans carry the ToolMessage (with its call id) as their output.
    try:
        output = json.loads(str(attributes.get("output.value", "")))
    except ValueError:
        return None
    data = output.get("data") if isinstance(output, dict) else None
    call_id = data.get("tool_call_id") if isinstance(data, dict) else None
    return str(call_id) if call_id else None


def genai_attributes(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """The ``gen_ai.*`` attributes an OpenInference LLM or tool span implies."""
    kind = attributes.get("openinference.span.kind")
    extra: dict[str, Any] = {}
    if kind == "LLM":
        model = attributes.get("llm.model_name") or attributes.get("llm.request.model_name")
        extra["gen_ai.operation.name"] = "chat"
        if model:
            extra["gen_ai.request.model"] = str(model)
        if provider := _provider(attributes, model):
            extra["gen_ai.provider.name"] = provider
            extra["gen_ai.system"] = provider  # the attribute's name before semconv 1.37
        for source, target in (("llm.token_count.prompt", "gen_ai.usage.input_tokens"),
                               ("llm.token_count.completion", "gen_ai.usage.output_tokens")):
            if attributes.get(source) is not None:
                extra[target] = int(attributes[source])
    elif kind == "TOOL":
        extra["gen_ai.operation.name"] = "execute_tool"
        extra["gen_ai.tool.type"] = "function"
        if attributes.get("tool.name"):
            extra["gen_ai.tool.name"] = str(attributes["tool.name"])
        if call_id := _tool_call_id(attributes):
            extra["gen_ai.tool.call.id"] = call_id
    return extra


def with_genai(span: ReadableSpan) -> ReadableSpan:
    extra = genai_attributes(span.attributes or {})
    if not extra:
        return span
    return ReadableSpan(
        name=span.name, context=span.context, parent=span.parent, resource=span.resource,
        attributes={**(span.attributes or {}), **extra}, events=span.events,
        links=span.links, kind=span.kind, status=span.status, start_time=span.start_time,
        end_time=span.end_time, instrumentation_scope=span.instrumentation_scope)


class GenAISemconvExporter(SpanExporter):
    """Adds the GenAI conventions, then hands the spans to ``inner``."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.inner.export([with_genai(span) for span in spans])

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.inner.force_flush(timeout_millis)
