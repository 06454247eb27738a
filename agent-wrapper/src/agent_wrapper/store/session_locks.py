"""The session lock a run holds while it runs (one request per session at a time), and
the leases behind it: a backend's lock that expires unless renewed (Redis, SQL) renews
every lease of this process from one thread."""

import heapq
import itertools
import logging
import threading
import time
from abc import ABC, abstractmethod

from agent_wrapper.core.per_process import PerProcess

log = logging.getLogger(__name__)


class SessionLock(ABC):
    """A held lock on one session; ``release`` is idempotent."""

    @abstractmethod
    def release(self) -> None: ...


class RenewedLock(SessionLock):
    """A lease kept alive until released: subclasses say how to renew (``_renew``: False
    once the lease is lost) and how to let go (``_let_go``). One thread per process
    renews every held lease (``_LeaseRenewer``), not one thread per run."""

    def __init__(self, name: str, interval_s: float) -> None:
        self.name = name
        self._interval_s = interval_s
        self._released = threading.Event()
        _renewer().add(self)

    @abstractmethod
    def _renew(self) -> bool: ...

    @abstractmethod
    def _let_go(self) -> None: ...

    def release(self) -> None:
        if self._released.is_set():
            return
        self._released.set()
        _renewer().remove(self)
        self._let_go()

    def stop_renewing(self) -> None:
        """Stop renewing without letting go: the lease runs out (a stalled holder)."""
        _renewer().remove(self)


class _LeaseRenewer:
    """Renews the held leases of this process from one thread, each every
    ``interval_s``; a lease whose renewal says it is lost is dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._due: list[tuple[float, int, RenewedLock]] = []  # heap of next renewals
        self._order = itertools.count()
        self._held: set[RenewedLock] = set()
        self._thread: threading.Thread | None = None

    def add(self, lease: RenewedLock) -> None:
        with self._cond:
            self._held.add(lease)
            heapq.heappush(self._due, (time.monotonic() + lease._interval_s,
                                       next(self._order), lease))
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True,
                                                name="lease-renewer")
                self._thread.start()
            self._cond.notify()

    def remove(self, lease: RenewedLock) -> None:
        with self._cond:
            self._held.discard(lease)  # its heap entry is skipped when it comes up

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._due or self._due[0][0] > time.monotonic():
                    self._cond.wait(self._due[0][0] - time.monotonic() if self._due else None)
                _, _, lease = heapq.heappop(self._due)
                if lease not in self._held:
                    continue
            try:
                kept = lease._renew()
            except Exception:
                log.warning("renewing lease %s failed", lease.name, exc_info=True)
                kept = True
            with self._cond:
                if not kept:
                    self._held.discard(lease)
                elif lease in self._held:
                    heapq.heappush(self._due, (time.monotonic() + lease._interval_s,
                                               next(self._order), lease))


_renewer = PerProcess(_LeaseRenewer).get

