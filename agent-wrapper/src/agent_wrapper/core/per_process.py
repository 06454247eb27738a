"""One object per process, made on first use: a background helper (the lease renewer,
the event flusher) that owns a thread. A forked worker has none of its parent's
threads, so it makes its own."""

import os
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerProcess(Generic[T]):
    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._value: T | None = None
        self._mutex = threading.Lock()
        os.register_at_fork(after_in_child=self._forget)

    def get(self) -> T:
        with self._mutex:
            if self._value is None:
                self._value = self._make()
            return self._value

    def _forget(self) -> None:
        self._value = None
        self._mutex = threading.Lock()
