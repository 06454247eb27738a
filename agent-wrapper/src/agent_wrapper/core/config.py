"""Wrapper settings, read from ``AGENT_WRAPPER_*`` environment variables.

Every field is documented with its default in agent-wrapper/README.md.
"""

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """All runtime configuration of the wrapper (env prefix ``AGENT_WRAPPER_``)."""

    model_config = SettingsConfigDict(env_prefix="AGENT_WRAPPER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)

    llm_provider: Literal["offline", "openai"] = "offline"
    llm_base_url: str | None = None
    llm_model: str | None = None
    # A secret: shown as '**********' in reprs and never in a configuration error.
    llm_api_key: SecretStr | None = None
    llm_timeout_seconds: float = Field(default=120.0, gt=0)
    llm_max_retries: int = Field(default=2, ge=0)

    # sqlite: the embedded default (one file in state_dir); postgres: shared by several
    # workers and replicas; file/redis: the earlier stores (see the README's table).
    store: Literal["sqlite", "postgres", "file", "redis"] = "sqlite"
    # PostgreSQL connection string (postgresql://user:pass@host:port/db); a secret, so
    # its password never appears in a log or an error.
    database_url: SecretStr | None = None
    state_dir: Path = Path(".federation-state")
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = "agent-federation"
    # A crashed replica's Redis lock expires after this; live runs renew it.
    lock_ttl_ms: int = Field(default=30_000, ge=500)

    # The host's credential: with it set, every /v1 request must carry it in
    # ``x-federation-host-credential`` (401 otherwise), and only then is the caller's
    # ``x-federation-principal`` trusted. From a file (the operator's secret store) or
    # the variable itself; a file wins. At least 16 characters.
    host_credential_file: Path | None = None
    host_credential: SecretStr | None = None

    # Worker processes behind the one port (uvicorn workers sharing its socket), each
    # with its own ``max_runs`` run slots; they share sessions, run records and the run
    # queue through the store. 0 (the default): one per CPU core. Use 1 with a store
    # that lives in the process's memory only (tests).
    workers: int = Field(default=0, ge=0, le=256)

    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # Seconds a client has to send a complete request head (slow clients are closed).
    header_timeout_s: float = Field(default=10.0, gt=0)
    # Idle keep-alive connections close after this many seconds.
    keep_alive_s: int = Field(default=5, ge=1)
    # Open connections (and requests in flight) one process accepts; more get 503.
    max_connections: int = Field(default=1000, ge=1)

    # Runs one wrapper process executes at once; with a SQL store the rest wait in the
    # durable queue (any worker sharing the database takes them), else they get 503.
    max_runs: int = Field(default=32, ge=1)
    # Runs allowed to wait in the queue; beyond it: 503 overloaded with Retry-After.
    max_queued: int = Field(default=1000, ge=0)

    # /docs, /redoc and /openapi.json describe every route to whoever asks: off unless
    # an operator turns them on.
    api_docs: bool = False

    # What a session keeps of its finished runs: the newest history_max_runs, each goal
    # and output cut to history_max_chars characters (a long history made every later
    # request on the session slower, then failed it).
    history_max_runs: int = Field(default=100, ge=1)
    history_max_chars: int = Field(default=8_000, ge=100)
    # A session untouched this long is forgotten (document, run records, checkpoints);
    # 0 keeps sessions forever. Default: 30 days.
    session_idle_ttl_s: float = Field(default=30 * 86_400, ge=0)

    # The registry of the user's own agents (agents.toml); unset: built-ins only.
    agents_file: Path | None = None

    # Run records ((session, request_id) -> status/result) expire this long after
    # their last update.
    run_record_ttl_s: float = Field(default=86_400.0, gt=0)
    # How often a request waiting for a run of another request (same id) polls the store.
    run_poll_ms: int = Field(default=200, ge=10, le=60_000)

    # TEST-ONLY fault injection: os._exit(1) right after the N-th step checkpoint
    # of a run has been stored. Never set it in production.
    test_crash_after_step: int | None = Field(default=None, ge=1)
    # TEST-ONLY: sleep this long at every step boundary (before the cancel and
    # deadline checks), so tests can cancel or time out a run mid-way.
    test_step_delay_ms: int | None = Field(default=None, ge=0)

    def worker_count(self) -> int:
        """The number of worker processes to run (``workers``, 0 = CPU cores). The TEST-ONLY
        crash injection stands for a crashed wrapper: one process, which then exits."""
        if self.test_crash_after_step is not None:
            return 1
        return self.workers or len(os.sched_getaffinity(0)) or 1

    def host_secret(self) -> bytes | None:
        """The host's credential as bytes (file first), or None when not configured.
        Raises ``ValueError`` for an unreadable or too short one."""
        if self.host_credential_file is not None:
            try:
                secret = self.host_credential_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"AGENT_WRAPPER_HOST_CREDENTIAL_FILE: cannot read "
                                 f"{self.host_credential_file}: {exc.strerror}") from None
        elif self.host_credential is not None:
            secret = self.host_credential.get_secret_value().strip()
        else:
            return None
        if len(secret) < 16:
            raise ValueError("the host credential must be at least 16 characters")
        return secret.encode()

    @model_validator(mode="after")
    def _check_llm(self) -> "Settings":
        # Fail at startup, not at the first request, when the OpenAI-compatible
        # endpoint is chosen but not described.
        if self.store == "postgres" and self.database_url is None:
            raise ValueError("AGENT_WRAPPER_STORE=postgres requires AGENT_WRAPPER_DATABASE_URL")
        if self.llm_provider == "openai":
            missing = [
                name
                for name, value in (
                    ("AGENT_WRAPPER_LLM_BASE_URL", self.llm_base_url),
                    ("AGENT_WRAPPER_LLM_MODEL", self.llm_model),
                )
                if not value
            ]
            if missing:
                raise ValueError(
                    "AGENT_WRAPPER_LLM_PROVIDER=openai requires " + " and ".join(missing)
                )
        return self
