"""OpenTelemetry metrics: the signals an autoscaler and an operator read.

Exported over OTLP like the traces and configured by the same standard variables
(``OTEL_METRICS_EXPORTER=none`` exports nothing; ``OTEL_EXPORTER_OTLP_(METRICS_)
PROTOCOL/ENDPOINT/HEADERS``; ``OTEL_METRIC_EXPORT_INTERVAL``, default 60 s). Each worker
process exports its own series under its own ``service.instance.id``. Tests pass a
reader (``InMemoryMetricReader``) instead.

Instruments (the README's table is the reference):

* ``agent_wrapper.runs.in_flight`` (up-down counter, ``{run}``): runs executing in this
  worker; ``agent_wrapper.runs.slots`` (gauge): its ``AGENT_WRAPPER_MAX_RUNS``;
* ``agent_wrapper.queue.depth`` (gauge, ``{run}``): runs waiting in the store's queue
  (store-wide: every worker reports the same value; scale on its max);
  ``agent_wrapper.queue.oldest_wait`` (gauge, ``s``): how long the oldest has waited;
* ``agent_wrapper.queue.wait.duration`` (histogram, ``s``): enqueue (or hand-back) to
  claim, per claimed run; ``agent_wrapper.queue.claim.duration``: one claim's round trip;
* ``agent_wrapper.run.duration``, ``agent_wrapper.run.step.duration`` (histograms, ``s``);
* ``gen_ai.client.operation.duration`` (histogram, ``s``; the GenAI semantic convention);
* ``agent_wrapper.store.errors`` (counter, ``{error}``): store operations that failed.

Instruments come from the global meter provider, so code that records before
``setup_metrics`` (or without it) records nothing and costs nothing.
"""

import os
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource

from agent_wrapper import telemetry
from agent_wrapper.store.run_queue import RunQueue

METER_NAME = "agent_wrapper"
# The GenAI convention's advice for operation durations.
GENAI_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48,
                 40.96, 81.92)
# Seconds: from a fast store claim to a long crew.
DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
                    120, 300, 600)
# The queue gauges read the store at most this often, whatever the readers ask.
QUEUE_PROBE_MIN_S = 1.0

_lock = threading.Lock()
_provider: MeterProvider | None = None
_meter = metrics.get_meter(METER_NAME)

RUNS_IN_FLIGHT = _meter.create_up_down_counter(
    "agent_wrapper.runs.in_flight", unit="{run}",
    description="Runs executing in this worker process")
RUN_DURATION = _meter.create_histogram(
    "agent_wrapper.run.duration", unit="s", description="Wall time of a run on a worker",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
STEP_DURATION = _meter.create_histogram(
    "agent_wrapper.run.step.duration", unit="s",
    description="Wall time of one step (crew task, graph node)",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
LLM_DURATION = _meter.create_histogram(
    "gen_ai.client.operation.duration", unit="s",
    description="GenAI operation duration (one LLM call)",
    explicit_bucket_boundaries_advisory=GENAI_BUCKETS)
QUEUE_WAIT = _meter.create_histogram(
    "agent_wrapper.queue.wait.duration", unit="s",
    description="How long a run waited in the queue before a worker claimed it",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
CLAIM_DURATION = _meter.create_histogram(
    "agent_wrapper.queue.claim.duration", unit="s",
    description="One claim of the next waiting run (store round trips)",
    explicit_bucket_boundaries_advisory=DURATION_BUCKETS)
STORE_ERRORS = _meter.create_counter(
    "agent_wrapper.store.errors", unit="{error}",
    description="State store operations that failed (the caller got store_unavailable)")


def setup_metrics(reader: MetricReader | None = None) -> MeterProvider:
    """Create (once) the process meter provider: ``reader`` (tests), else the OTLP
    exporter unless ``OTEL_METRICS_EXPORTER=none``. Later calls return the first."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        readers: list[MetricReader] = []
        if reader is not None:
            readers.append(reader)
        elif os.environ.get("OTEL_METRICS_EXPORTER", "otlp").strip().lower() != "none":
            readers.append(PeriodicExportingMetricReader(otlp_metric_exporter()))
        service = os.environ.get("OTEL_SERVICE_NAME") or telemetry.DEFAULT_SERVICE_NAME
        # Each worker process is its own series (OTEL_RESOURCE_ATTRIBUTES may name it).
        base = Resource.create({SERVICE_NAME: service})
        if SERVICE_INSTANCE_ID not in base.attributes:
            base = base.merge(Resource({SERVICE_INSTANCE_ID: f"{os.getpid()}-{uuid.uuid4()}"}))
        _provider = MeterProvider(resource=base, metric_readers=readers)
        metrics.set_meter_provider(_provider)
        return _provider


def otlp_metric_exporter() -> Any:
    """The OTLP metric exporter of ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`` (else the
    general protocol variable); each reads its endpoint and headers itself."""
    if telemetry.otlp_protocol("METRICS") == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter

        return OTLPMetricExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpExporter,
    )

    return HttpExporter()


def shutdown() -> None:
    """Export what is pending (at process exit)."""
    if _provider is not None:
        _provider.force_flush()


# -- what the wrapper records --------------------------------------------------------------
def store_error(kind: str, cause: BaseException | None = None) -> None:
    """A store operation failed (``cause``: what the backend raised, if anything)."""
    error_type = type(cause).__name__ if cause is not None else "StoreUnavailable"
    STORE_ERRORS.add(1, {"federation.store.kind": kind, "error.type": error_type})


def record_claim(kind: str, seconds: float, waited_ms: int | None) -> None:
    """One claim attempt; ``waited_ms``: how long the claimed run waited (None: no run)."""
    CLAIM_DURATION.record(seconds, {"federation.store.kind": kind,
                                    "federation.queue.claimed": waited_ms is not None})
    if waited_ms is not None:
        QUEUE_WAIT.record(waited_ms / 1000, {"federation.store.kind": kind})


class RunTimer:
    """A run on this worker: in flight from ``start`` to ``end``, which records its
    duration with how it ended (``completed``, ``input_required``, or the error code)."""

    def __init__(self, framework: str, agent: str) -> None:
        self.attributes = {"federation.framework": framework, "federation.agent": agent}
        self.started = time.monotonic()
        RUNS_IN_FLIGHT.add(1, {"federation.framework": framework})

    def end(self, status: str) -> None:
        RUNS_IN_FLIGHT.add(-1, {"federation.framework": self.attributes["federation.framework"]})
        RUN_DURATION.record(time.monotonic() - self.started,
                            {**self.attributes, "federation.run.status": status})


def record_step(framework: str, agent: str | None, step: str, seconds: float) -> None:
    STEP_DURATION.record(seconds, {"federation.framework": framework,
                                   "federation.agent": agent or "", "federation.step": step})


def record_llm_call(provider: str, model: str, seconds: float) -> None:
    LLM_DURATION.record(seconds, {"gen_ai.operation.name": "chat",
                                  "gen_ai.provider.name": provider,
                                  "gen_ai.request.model": model})


# -- the queue gauges: read from the store -------------------------------------------------
class _QueueProbe:
    """Reads the queue of the registered store (the app's) for the gauges: at most once a
    ``QUEUE_PROBE_MIN_S`` whatever asks; a failed read reports nothing (and is counted by
    the store as a store error)."""

    def __init__(self) -> None:
        self._store: Callable[[], Any] = lambda: None
        self._mutex = threading.Lock()
        self._read_at = float("-inf")
        self._stats: tuple[int, int | None] | None = None
        self._slots: int | None = None

    def watch(self, store: Any, slots: int) -> None:
        with self._mutex:
            self._store = weakref.ref(store)
            self._slots = slots
            self._read_at, self._stats = float("-inf"), None

    def forget(self, store: Any) -> None:
        with self._mutex:
            if self._store() is store:
                self._store, self._stats, self._slots = (lambda: None), None, None

    def stats(self) -> tuple[str, tuple[int, int | None]] | None:
        with self._mutex:
            store = self._store()
            if not isinstance(store, RunQueue):
                return None
            if time.monotonic() - self._read_at >= QUEUE_PROBE_MIN_S:
                self._read_at = time.monotonic()
                try:
                    self._stats = store.queue_stats()
                except Exception:  # StoreUnavailable: counted where it was raised
                    self._stats = None
            return None if self._stats is None else (store.kind, self._stats)

    def depth(self, _: CallbackOptions) -> Iterable[Observation]:
        if (read := self.stats()) is not None:
            kind, (waiting, _oldest) = read
            yield Observation(waiting, {"federation.store.kind": kind})

    def oldest_wait(self, _: CallbackOptions) -> Iterable[Observation]:
        if (read := self.stats()) is not None:
            kind, (_waiting, oldest) = read
            age = 0.0 if oldest is None else max(0.0, time.time() - oldest / 1000)
            yield Observation(age, {"federation.store.kind": kind})

    def slots(self, _: CallbackOptions) -> Iterable[Observation]:
        if self._slots is not None:
            yield Observation(self._slots)


_probe = _QueueProbe()
_meter.create_observable_gauge(
    "agent_wrapper.queue.depth", callbacks=[_probe.depth], unit="{run}",
    description="Runs waiting in the store's run queue (the same value on every worker)")
_meter.create_observable_gauge(
    "agent_wrapper.queue.oldest_wait", callbacks=[_probe.oldest_wait], unit="s",
    description="How long the oldest waiting run has waited")
_meter.create_observable_gauge(
    "agent_wrapper.runs.slots", callbacks=[_probe.slots], unit="{run}",
    description="Runs this worker process executes at once (AGENT_WRAPPER_MAX_RUNS)")


def watch_store(store: Any, slots: int) -> None:
    """Report the queue of ``store`` and this worker's ``slots`` (the app's, at start)."""
    _probe.watch(store, slots)


def forget_store(store: Any) -> None:
    _probe.forget(store)
