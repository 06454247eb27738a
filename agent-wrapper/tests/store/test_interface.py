"""The store interface by concern: the SQL stores hold the run queue (they implement the
``RunQueue`` protocol), the file and Redis stores do not, and the run manager runs a
queue dispatcher exactly for the stores that do."""

from pathlib import Path

import pytest

from agent_wrapper.core.config import Settings
from agent_wrapper.llm import LLMFactory
from agent_wrapper.runs import RunManager, RunRecords
from agent_wrapper.store import FileStateStore, RedisStateStore, RunQueue, SqliteStateStore
from agent_wrapper.store.base import StateStore


@pytest.mark.parametrize("kind, queued", [("sqlite", True), ("file", False), ("redis", False)])
def test_only_the_sql_stores_hold_a_run_queue(tmp_path: Path, kind: str, queued: bool) -> None:
    store: StateStore = {
        "sqlite": lambda: SqliteStateStore(tmp_path / "federation.db"),
        "file": lambda: FileStateStore(tmp_path / "state"),
        # Not connected until used: the protocol check reads no data.
        "redis": lambda: RedisStateStore("redis://127.0.0.1:1/0", prefix="iface"),
    }[kind]()
    try:
        assert isinstance(store, RunQueue) is queued
        settings = Settings(state_dir=tmp_path / "state", store=kind)
        manager = RunManager(settings=settings, store=store, records=RunRecords(store, 60),
                             llm_factory=LLMFactory(settings))
        assert (manager.dispatcher is not None) is queued
        assert (manager.admission.queue is store) is queued
    finally:
        store.close()


def test_a_store_missing_a_queue_member_is_no_queue(tmp_path: Path) -> None:
    class HalfQueue(FileStateStore):
        lock_ttl_ms = 1000

        def enqueue(self, *args, **kwargs):  # the rest of RunQueue is missing
            return True

    assert not isinstance(HalfQueue(tmp_path), RunQueue)
