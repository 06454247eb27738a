"""File-directory backend: one ``<session>.json`` per session, flock-based locks.

Writes go to a temp file in the same directory, are fsynced and then
``os.replace``d over the old document, so a crash leaves either the old or the
new document, never a torn one. A temp file's name carries its writer (pid, the
process's start time, the boot), and a store removes at start only the temp files
whose writer is gone: never one a live worker process is writing right now.
Bookkeeping writes of run records (``durable=False``: progress, events, claims) skip
the fsyncs; each record write replaces the whole record, so the run's durable outcome
write makes the record whole on disk again.
Locks are ``flock`` locks on ``<session>.lock``, which the kernel releases when a
process dies, so a crashed run never leaves a session stuck.

Run records live in ``runs/<session>/<request_id>.json`` as
``{"expires_at_ms": ..., "record": {...}}``; every read-modify-write holds a
``flock`` on ``runs/<session>/.lock``. An expired record reads as absent and is
deleted when it is next touched, and a sweep (at most once a minute, on writes)
deletes the expired records of all sessions.
"""

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agent_wrapper import metrics
from agent_wrapper.core.errors import StoreUnavailable
from agent_wrapper.store.base import RunMutator, SessionLock, StateStore
from agent_wrapper.store.process_identity import process_alive, process_tag
from agent_wrapper.store.session_id import validate_request_id, validate_session_id

log = logging.getLogger(__name__)

# Expired run records of sessions nobody touches again are swept this often.
SWEEP_INTERVAL_S = 60.0
# ``.<name>.<writer>.<random>.tmp``: the writer is "w<pid>-<start ticks>-<boot id>".
_WRITER = re.compile(r"w(\d+)-(\d+)-([0-9a-f]*)")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _unavailable(message: str, cause: BaseException | None = None) -> StoreUnavailable:
    """The error a failed file operation raises, counted in the store-error metric."""
    metrics.store_error("file", cause)
    return StoreUnavailable(message)


def _writer_tag() -> str:
    """This process as a temp file's writer."""
    return f"w{process_tag()}"


def _writer_alive(temp: Path) -> bool:
    """Whether the process that writes ``temp`` may still be writing it. A name without
    a writer is an earlier release's, left over (the workers of one state directory run
    one release)."""
    parts = temp.name[:-len(".tmp")].rsplit(".", 2)
    match = _WRITER.fullmatch(parts[1]) if len(parts) == 3 else None
    if match is None:
        return False
    return process_alive(int(match[1]), match[2], match[3])


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
        self.runs_directory = self.directory / "runs"
        self._last_sweep = time.monotonic()
        self._sweep_mutex = threading.Lock()
        self.remove_leftover_temp_files()

    def remove_leftover_temp_files(self) -> int:
        """Delete temp files a process killed mid-write left behind (``.<name>.*.tmp``:
        never a document, which is only replaced by a complete file). A temp file whose
        writer still runs (another worker saving right now) is kept."""
        removed = 0
        for directory in (self.directory, *self.runs_directory.glob("*")):
            for leftover in directory.glob(".*.tmp") if directory.is_dir() else ():
                with contextlib.suppress(OSError):
                    if _writer_alive(leftover):
                        continue
                    leftover.unlink()
                    removed += 1
        if removed:
            log.info("file store: removed %d temp files left by an interrupted write", removed)
        return removed

    def _path(self, session_id: str, suffix: str) -> Path:
        validate_session_id(session_id)
        # A validated id is one path component that does not start with '.', so it
        # cannot escape; the check is lexical (no resolve(): two stat calls per access).
        path = self.directory / f"{session_id}{suffix}"
        if path.parent != self.directory:
            raise ValueError("session id escapes the state directory")
        return path

    def _ensure_dir(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _unavailable(f"state directory {self.directory} unusable: {exc}", exc) from exc

    def load(self, session_id: str) -> dict[str, Any] | None:
        path = self._path(session_id, ".json")
        try:
            with path.open("r", encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise _unavailable(f"cannot read state of session {session_id!r}: {exc}", exc) from exc

    def save(self, session_id: str, document: dict[str, Any],
             lock: SessionLock | None = None, *, durable: bool = True) -> None:
        path = self._path(session_id, ".json")
        self._ensure_dir()
        self._write_atomic(path, document, f"state of session {session_id!r}", durable)

    @staticmethod
    def _write_atomic(path: Path, document: dict[str, Any], what: str,
                      durable: bool = True) -> None:
        """Temp file in the same directory, fsync, ``os.replace``, fsync the directory.
        Not ``durable``: no fsync (still atomic; a power cut may keep the old file)."""
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
        tmp_name = None
        try:
            fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.{_writer_tag()}.",
                                            suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            os.replace(tmp_name, path)
            tmp_name = None
            if not durable:
                return
            # Persist the rename itself.
            dir_fd = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        except OSError as exc:
            raise _unavailable(f"cannot write {what}: {exc}", exc) from exc
        finally:
            if tmp_name is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp_name)

    def claim_session(self, session_id: str, principal: str) -> str:
        path = self._path(session_id, ".owner")
        self._ensure_dir()
        try:
            # O_EXCL: of two replicas claiming at once, one creates the file.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            owner = self.session_owner(session_id)
            if owner is not None:
                return owner
            raise _unavailable(f"owner of session {session_id!r} unreadable") from None
        except OSError as exc:
            raise _unavailable(f"cannot claim session {session_id!r}: {exc}", exc) from exc
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(principal)
            handle.flush()
            os.fsync(handle.fileno())
        return principal

    def session_owner(self, session_id: str) -> str | None:
        path = self._path(session_id, ".owner")
        # A claim is written in one small write right after its exclusive create: a
        # reader racing it may see it empty for an instant, so read until it is not.
        for _ in range(50):
            try:
                owner = path.read_text(encoding="utf-8")
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise _unavailable(f"cannot read owner of session {session_id!r}: "
                                       f"{exc}", exc) from exc
            if owner:
                return owner
            time.sleep(0.002)
        return None

    def delete(self, session_id: str) -> None:
        path = self._path(session_id, ".json")
        try:
            self._path(session_id, ".owner").unlink(missing_ok=True)
            path.unlink(missing_ok=True)
        except OSError as exc:
            raise _unavailable(f"cannot delete session {session_id!r}: {exc}", exc) from exc

    def expire_idle_sessions(self, idle_s: float) -> int:
        cutoff = time.time() - idle_s
        expired = 0
        for path in self.directory.glob("*.json") if self.directory.is_dir() else ():
            session_id = path.stem
            with contextlib.suppress(OSError, ValueError):
                if path.stat().st_mtime >= cutoff:
                    continue
                lock = self.try_lock(session_id)
                if lock is None:
                    continue  # running right now: not idle
                try:
                    path.unlink()
                    self._path(session_id, ".owner").unlink(missing_ok=True)
                    shutil.rmtree(self.runs_directory / session_id, ignore_errors=True)
                    self._path(session_id, ".lock").unlink(missing_ok=True)
                    expired += 1
                finally:
                    lock.release()
        # Owners of sessions that never saved a document (their first run failed early).
        for path in self.directory.glob("*.owner") if self.directory.is_dir() else ():
            with contextlib.suppress(OSError):
                if path.stat().st_mtime < cutoff and not path.with_suffix(".json").exists():
                    path.unlink()
        return expired

    def try_lock(self, session_id: str) -> SessionLock | None:
        path = self._path(session_id, ".lock")
        self._ensure_dir()
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unavailable(f"cannot open lock of session {session_id!r}: {exc}", exc) from exc
        try:
            # Each os.open is its own open file description, so flock also
            # excludes other threads of this process, not just other processes.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            raise _unavailable(f"cannot lock session {session_id!r}: {exc}", exc) from exc
        return _FileLock(fd)

    # -- run records --------------------------------------------------------
    def _run_dir(self, session_id: str) -> Path:
        path = self.runs_directory / validate_session_id(session_id)
        if path.parent != self.runs_directory:  # lexical, as in _path
            raise ValueError("session id escapes the state directory")
        return path

    def _run_path(self, session_id: str, request_id: str) -> Path:
        return self._run_dir(session_id) / f"{validate_request_id(request_id)}.json"

    @contextlib.contextmanager
    def _runs_locked(self, session_id: str) -> Iterator[Path]:
        """Hold the session's run-record lock (threads and processes) for a block."""
        directory = self._run_dir(session_id)
        try:
            directory.mkdir(parents=True, exist_ok=True)
            fd = os.open(directory / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _unavailable(f"run records of {session_id!r} unusable: {exc}", exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            os.close(fd)
            raise _unavailable(f"cannot lock run records of {session_id!r}: {exc}", exc) from exc
        try:
            yield directory
        finally:
            os.close(fd)  # closing the descriptor releases the flock

    @staticmethod
    def _read_run(path: Path) -> tuple[dict[str, Any] | None, bool]:
        """(record, expired): a missing file is (None, False)."""
        try:
            with path.open("r", encoding="utf-8") as handle:
                stored = json.load(handle)
        except FileNotFoundError:
            return None, False
        except (OSError, ValueError) as exc:
            raise _unavailable(f"cannot read run record {path.name}: {exc}", exc) from exc
        if int(stored.get("expires_at_ms", 0)) <= _now_ms():
            return None, True
        return stored.get("record"), False

    def load_run(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        path = self._run_path(session_id, request_id)
        record, expired = self._read_run(path)
        if expired:
            # Lazy cleanup; re-checked under the lock, a writer may have renewed it.
            with self._runs_locked(session_id):
                record, expired = self._read_run(path)
                if expired:
                    path.unlink(missing_ok=True)
        return record

    def update_run(self, session_id: str, request_id: str, mutate: RunMutator,
                   ttl_ms: int, *, durable: bool = True) -> dict[str, Any] | None:
        path = self._run_path(session_id, request_id)
        with self._runs_locked(session_id):
            current, expired = self._read_run(path)
            if expired:
                path.unlink(missing_ok=True)
            new = mutate(current)
            if new is None:
                return current
            self._write_atomic(path, {"expires_at_ms": _now_ms() + ttl_ms, "record": new},
                               f"run record {session_id!r}/{request_id!r}", durable)
        self._maybe_sweep()
        return new

    def _maybe_sweep(self) -> None:
        with self._sweep_mutex:
            if time.monotonic() - self._last_sweep < SWEEP_INTERVAL_S:
                return
            self._last_sweep = time.monotonic()
        self.sweep_expired_runs()

    def sweep_expired_runs(self) -> int:
        """Delete every expired run record; returns how many were deleted."""
        deleted = 0
        try:
            sessions = [p for p in self.runs_directory.iterdir() if p.is_dir()]
        except OSError:
            return 0
        for directory in sessions:
            with contextlib.suppress(OSError, StoreUnavailable, ValueError):
                expired = [p for p in directory.glob("*.json") if self._read_run(p)[1]]
                if not expired:
                    continue
                with self._runs_locked(directory.name):
                    for path in expired:
                        if self._read_run(path)[1]:
                            path.unlink(missing_ok=True)
                            deleted += 1
        return deleted

    def ping(self) -> None:
        self._ensure_dir()
        if not os.access(self.directory, os.W_OK):
            raise _unavailable(f"state directory {self.directory} is not writable")
