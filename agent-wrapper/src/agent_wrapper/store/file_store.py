"""File-directory backend: one ``<session>.json`` per session, flock-based locks.

Writes go to a temp file in the same directory, are fsynced and then
``os.replace``d over the old document, so a crash leaves either the old or the
new document, never a torn one. Locks are ``flock`` locks on ``<session>.lock``,
which the kernel releases when a process dies, so a crashed run never leaves a
session stuck.
"""

import contextlib
import fcntl
import json
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

from agent_wrapper.core.errors import StoreUnavailable
from agent_wrapper.store.base import SessionLock, StateStore
from agent_wrapper.store.session_id import validate_session_id


class _FileLock(SessionLock):
    def __init__(self, fd: int) -> None:
        self._fd: int | None = fd
        self._mutex = threading.Lock()

    def release(self) -> None:
        with self._mutex:
            if self._fd is None:
                return
            fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


class FileStateStore(StateStore):
    """Session documents in a local directory."""

    kind = "file"

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory).resolve()

    def _path(self, session_id: str, suffix: str) -> Path:
        validate_session_id(session_id)
        path = (self.directory / f"{session_id}{suffix}").resolve()
        # Belt and braces: the validated id cannot escape, but check anyway.
        if path.parent != self.directory:
            raise ValueError("session id escapes the state directory")
        return path

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"state directory {self.directory} unusable: {exc}") from exc

    def load(self, session_id: str) -> dict[str, Any] | None:
        path = self._path(session_id, ".json")
        try:
            with path.open("r", encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreUnavailable(f"cannot read state of session {session_id!r}: {exc}") from exc

    def save(self, session_id: str, document: dict[str, Any]) -> None:
        path = self._path(session_id, ".json")
        self._ensure_dir()
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        tmp_name = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{session_id}.", suffix=".tmp",
                                            dir=self.directory)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
            # Persist the rename itself.
            dir_fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise StoreUnavailable(f"cannot write state of session {session_id!r}: {exc}") from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def delete(self, session_id: str) -> None:
        path = self._path(session_id, ".json")
        try:
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise StoreUnavailable(f"cannot delete session {session_id!r}: {exc}") from exc

    def try_lock(self, session_id: str) -> SessionLock | None:
        path = self._path(session_id, ".lock")
        self._ensure_dir()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StoreUnavailable(f"cannot open lock of session {session_id!r}: {exc}") from exc
        try:
            # Each os.open is its own open file description, so flock also
            # excludes other threads of this process, not just other processes.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise StoreUnavailable(f"cannot lock session {session_id!r}: {exc}") from exc
        return _FileLock(fd)

    def ping(self) -> None:
        self._ensure_dir()
        if not os.access(self.directory, os.W_OK):
            raise StoreUnavailable(f"state directory {self.directory} is not writable")
