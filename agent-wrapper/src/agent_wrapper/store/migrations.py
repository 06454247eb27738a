"""Versioned schema migrations of the SQL stores (SQLite, PostgreSQL).

The schema is the list ``MIGRATIONS``: each has a version, a name and its statements
(the same SQL on both databases unless a dialect needs its own). A store applies the
ones its database has not recorded in ``federation_schema_migrations`` when it starts,
all in one transaction under a lock every starting process takes (SQLite: ``BEGIN
IMMEDIATE``, the database's write lock; PostgreSQL: ``pg_advisory_lock``), so of two
processes starting at once one applies them and the other finds them recorded.

Version 1 is the schema release 0.1 made with ``CREATE TABLE IF NOT EXISTS`` (kept
as it was, so a database made by that release is adopted as version 1 with its rows
untouched). Migrations are additive only (new tables, columns with defaults, indexes):
a worker of the previous release keeps working on a migrated database during a rolling
upgrade, and a database newer than this release is used as it is (with a warning).
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

TABLE = "federation_schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "baseline: sessions, run records, leases, owners, run queue (release 0.1)", (
        """CREATE TABLE IF NOT EXISTS federation_sessions (
            session_id TEXT PRIMARY KEY, document TEXT NOT NULL,
            updated_at_ms BIGINT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS federation_runs (
            session_id TEXT NOT NULL, request_id TEXT NOT NULL, record TEXT NOT NULL,
            expires_at_ms BIGINT NOT NULL, PRIMARY KEY (session_id, request_id))""",
        """CREATE TABLE IF NOT EXISTS federation_locks (
            session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, fence BIGINT NOT NULL,
            holder TEXT NOT NULL, expires_at_ms BIGINT NOT NULL)""",
        # Who owns each session (the principal of its first request): written once.
        """CREATE TABLE IF NOT EXISTS federation_owners (
            session_id TEXT PRIMARY KEY, owner TEXT NOT NULL, claimed_at_ms BIGINT NOT NULL)""",
        # The run queue: one row per accepted run until it ends. ``worker`` is empty
        # while the run waits; a worker's claim is a lease it renews.
        """CREATE TABLE IF NOT EXISTS federation_queue (
            session_id TEXT NOT NULL, request_id TEXT NOT NULL, job TEXT NOT NULL,
            enqueued_at_ms BIGINT NOT NULL, worker TEXT NOT NULL,
            lease_expires_at_ms BIGINT NOT NULL, PRIMARY KEY (session_id, request_id))""",
    )),
    Migration(2, "run queue: indexes for claims that read waiting rows only; wait start", (
        # Since when the row waits (enqueued, or handed back): the claim's wait time.
        # 0 on rows a 0.1 worker writes during a rolling upgrade: read as enqueued_at_ms.
        "ALTER TABLE federation_queue ADD COLUMN waiting_since_ms BIGINT NOT NULL DEFAULT 0",
        "UPDATE federation_queue SET waiting_since_ms = enqueued_at_ms",
        # A claim takes the oldest waiting row: an index of waiting rows only, in order,
        # so runs in flight are never scanned however many there are.
        "CREATE INDEX federation_queue_waiting ON federation_queue (enqueued_at_ms) "
        "WHERE worker = ''",
        # Claimed rows by worker: renewals, and finding dead or lapsed claims.
        "CREATE INDEX federation_queue_claimed ON federation_queue "
        "(worker, lease_expires_at_ms) WHERE worker <> ''",
        # Held leases: a claim skips sessions that run elsewhere.
        "CREATE INDEX federation_locks_held ON federation_locks (holder) WHERE owner <> ''",
        # The sweeps of expired run records and idle sessions.
        "CREATE INDEX federation_runs_expiry ON federation_runs (expires_at_ms)",
        "CREATE INDEX federation_sessions_idle ON federation_sessions (updated_at_ms)",
    )),
)
LATEST = MIGRATIONS[-1].version


def apply(cur: Any, execute: Callable[[Any, str, tuple], Any]) -> list[int]:
    """Apply the migrations the database has not recorded, inside the caller's
    transaction (which holds the migration lock); returns the versions applied."""
    execute(cur, f"CREATE TABLE IF NOT EXISTS {TABLE} (version INTEGER PRIMARY KEY, "
                 "name TEXT NOT NULL, applied_at_ms BIGINT NOT NULL)", ())
    recorded = {row[0] for row in execute(cur, f"SELECT version FROM {TABLE}", ()).fetchall()}  # noqa: S608
    if recorded and max(recorded) > LATEST:
        log.warning("the database's schema is version %d, newer than this release's %d: "
                    "using it as it is (migrations only add)", max(recorded), LATEST)
    applied = []
    for migration in MIGRATIONS:
        if migration.version in recorded:
            continue
        for statement in migration.statements:
            execute(cur, statement, ())
        execute(cur, f"INSERT INTO {TABLE} (version, name, applied_at_ms) VALUES (?, ?, ?)",  # noqa: S608
                (migration.version, migration.name, int(time.time() * 1000)))
        applied.append(migration.version)
    if applied:
        log.info("schema migrated to version %d (applied %s)", LATEST,
                 ", ".join(map(str, applied)))
    return applied


def recorded_versions(cur: Any, execute: Callable[[Any, str, tuple], Any]) -> list[int]:
    """The versions the database has recorded, in order."""
    return [row[0] for row in execute(cur, f"SELECT version FROM {TABLE} ORDER BY version",  # noqa: S608
                                      ()).fetchall()]
