"""Application factory: settings, store, LLM selection, telemetry, routes, errors."""

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from fastapi import FastAPI
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from agent_wrapper import __version__, metrics, telemetry
from agent_wrapper.agents import AgentRegistry, load_registry
from agent_wrapper.api.body_limit import BodyLimitMiddleware
from agent_wrapper.api.errors import install_error_handlers
from agent_wrapper.api.routes import router
from agent_wrapper.api.runs import router as runs_router
from agent_wrapper.core.config import Settings
from agent_wrapper.llm import LLMFactory
from agent_wrapper.llm import gateway as model_gateway
from agent_wrapper.runs import RunManager, RunRecords, StepHook
from agent_wrapper.store import StateStore, build_store

log = logging.getLogger("agent_wrapper")


@dataclass
class WrapperState:
    settings: Settings
    store: StateStore
    llm_factory: LLMFactory
    records: RunRecords
    runs: RunManager
    agents: AgentRegistry
    # The host's credential every /v1 request must carry (None: not required).
    host_secret: bytes | None = None


def create_app(settings: Settings | None = None, *, span_exporter: SpanExporter | None = None,
               llm_factory: LLMFactory | None = None, store: StateStore | None = None,
               step_hook: StepHook | None = None,
               agents: AgentRegistry | None = None,
               metric_reader: MetricReader | None = None) -> FastAPI:
    """Build the wrapper app; the keyword arguments exist for tests (``step_hook`` is
    called at every step boundary of every run, before the cancel/deadline checks;
    ``metric_reader`` replaces the OTLP metric exporter)."""
    settings = settings or Settings()
    host_secret = settings.host_secret()  # ValueError (unreadable, too short): no start
    provider = telemetry.setup_telemetry(span_exporter)
    metrics.setup_metrics(metric_reader)
    store = store or build_store(settings)
    llm_factory = llm_factory or LLMFactory(settings)
    records = RunRecords(store, settings.run_record_ttl_s)
    # Before any agent module is imported: agent code's own OpenAI-compatible clients
    # read OPENAI_BASE_URL / OPENAI_API_KEY, which now name the model gateway.
    model_gateway.instance().direct_agent_code()
    # A broken registry entry fails the start here (RegistryError names the entry).
    agents = agents or load_registry(settings.agents_file)
    state = WrapperState(settings=settings, store=store, llm_factory=llm_factory,
                         records=records, agents=agents,
                         runs=RunManager(settings=settings, store=store, records=records,
                                         llm_factory=llm_factory, step_hook=step_hook,
                                         agents=agents),
                         host_secret=host_secret)
    llm = state.llm_factory.bundle()
    log.info("agent-wrapper %s: llm provider=%s model=%s, store=%s, agents: %s", __version__,
             llm.provider, llm.model, state.store.kind, ", ".join(agents.agents))
    if host_secret is None:
        log.warning("no host credential (AGENT_WRAPPER_HOST_CREDENTIAL_FILE): any process "
                    "that reaches %s:%s may call this wrapper as any principal",
                    settings.host, settings.port)
    if settings.test_crash_after_step is not None:
        log.warning("TEST-ONLY fault injection active: AGENT_WRAPPER_TEST_CRASH_AFTER_STEP=%s",
                    settings.test_crash_after_step)
    if settings.test_step_delay_ms is not None:
        log.warning("TEST-ONLY step delay active: AGENT_WRAPPER_TEST_STEP_DELAY_MS=%s",
                    settings.test_step_delay_ms)

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        # Take queued runs (this worker's share, and those of workers that died).
        state.runs.start()
        metrics.watch_store(state.store, settings.max_runs)
        yield
        metrics.forget_store(state.store)
        # Running runs stop at their next step boundary (state kept, record failed).
        await anyio.to_thread.run_sync(state.runs.shutdown)
        state.store.close()
        telemetry.shutdown()
        metrics.shutdown()

    docs = settings.api_docs
    app = FastAPI(title="agent-federation agent wrapper", version=__version__,
                  lifespan=lifespan, docs_url="/docs" if docs else None,
                  redoc_url="/redoc" if docs else None,
                  openapi_url="/openapi.json" if docs else None)
    app.state.wrapper = state
    app.include_router(router)
    app.include_router(runs_router)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    telemetry.instrument_app(app, provider)
    return app


def worker_app() -> FastAPI:
    """The app of one worker process (``AGENT_WRAPPER_WORKERS`` > 1): uvicorn calls this
    in each worker, which reads its settings from the environment."""
    _die_with_parent()
    return create_app(Settings())


def _die_with_parent() -> None:
    """A worker ends with its supervisor: a killed wrapper (SIGKILL, OOM) must not leave
    workers holding the port and running its sessions (Linux ``PR_SET_PDEATHSIG``)."""
    import ctypes
    import os
    import signal

    parent = os.environ.get("AGENT_WRAPPER_SUPERVISOR_PID")
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: uvicorn's supervisor still stops us
        return
    if parent is not None and str(os.getppid()) != parent:  # it died before the prctl
        os._exit(1)
