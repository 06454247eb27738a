"""Forgets idle sessions (``AGENT_WRAPPER_SESSION_IDLE_TTL_S``): a thread that asks the
store to expire sessions untouched for that long, every tenth of it."""

import logging
import threading

from agent_wrapper.store.base import StateStore

log = logging.getLogger(__name__)


class SessionExpiry:
    def __init__(self, store: StateStore, idle_s: float) -> None:
        self.store = store
        self.idle_s = idle_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start expiring (nothing to do when sessions never expire)."""
        if self.idle_s > 0 and self._thread is None:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="session-expiry")
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _loop(self) -> None:
        # A tenth of the idle time, between 1 s and 10 min: an idle session lives at most
        # ~10% longer than configured, and a quiet wrapper scans rarely.
        interval = min(max(self.idle_s / 10, 1.0), 600.0)
        while not self._stop.wait(interval):
            try:
                if expired := self.store.expire_idle_sessions(self.idle_s):
                    log.info("expired %d sessions idle for over %.0f s", expired, self.idle_s)
            except Exception:
                log.warning("session expiry failed", exc_info=True)
