"""Federation Storage: pick the configured state store backend (the interface is
``base.py``; SQL stores also implement the run queue, ``run_queue.py``)."""

from agent_wrapper.core.config import Settings
from agent_wrapper.store.base import SessionLock, StateStore
from agent_wrapper.store.file_store import FileStateStore
from agent_wrapper.store.redis_store import RedisStateStore
from agent_wrapper.store.run_queue import RunQueue
from agent_wrapper.store.sql_store import PostgresStateStore, SqliteStateStore


def build_store(settings: Settings) -> StateStore:
    """Return the backend named by ``AGENT_WRAPPER_STORE``."""
    if settings.store == "redis":
        idle_ms = int(settings.session_idle_ttl_s * 1000) or None
        return RedisStateStore(settings.redis_url, prefix=settings.redis_key_prefix,
                               lock_ttl_ms=settings.lock_ttl_ms, session_ttl_ms=idle_ms)
    if settings.store == "postgres":
        return PostgresStateStore(settings.database_url.get_secret_value(),
                                  lock_ttl_ms=settings.lock_ttl_ms)
    if settings.store == "sqlite":
        return SqliteStateStore(settings.state_dir / "federation.db",
                                lock_ttl_ms=settings.lock_ttl_ms)
    return FileStateStore(settings.state_dir)


__all__ = ["FileStateStore", "PostgresStateStore", "RedisStateStore", "RunQueue", "SessionLock",
           "SqliteStateStore", "StateStore", "build_store"]
