"""Federation Storage: pick the configured state store backend."""

from agent_wrapper.core.config import Settings
from agent_wrapper.store.base import SessionLock, StateStore
from agent_wrapper.store.file_store import FileStateStore
from agent_wrapper.store.redis_store import RedisStateStore


def build_store(settings: Settings) -> StateStore:
    """Return the backend named by ``AGENT_WRAPPER_STORE``."""
    if settings.store == "redis":
        return RedisStateStore(settings.redis_url, prefix=settings.redis_key_prefix,
                               lock_ttl_ms=settings.lock_ttl_ms)
    return FileStateStore(settings.state_dir)


__all__ = ["FileStateStore", "RedisStateStore", "SessionLock", "StateStore", "build_store"]
