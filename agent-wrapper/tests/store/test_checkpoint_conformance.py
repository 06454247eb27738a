"""LangGraph's checkpointer conformance suite (langgraph-checkpoint-conformance) against
every saver the wrapper runs graphs with: the session-document saver of the file and
Redis stores, and the fenced maintained savers of the SQLite and PostgreSQL stores."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.conformance import checkpointer_test, validate

from agent_wrapper.store import PostgresStateStore, SqliteStateStore
from agent_wrapper.store.langgraph_checkpointer import StoreCheckpointSaver
from tests.conftest import fresh_database


def _async_over_sync(saver: Any) -> Any:
    """The suite speaks the async API; the wrapper uses the sync one (from worker
    threads), so each async method runs its sync twin."""

    class AsyncOverSync(type(saver)):  # type: ignore[misc]
        async def aget_tuple(self, config):
            return self.get_tuple(config)

        async def alist(self, config, *, filter=None, before=None, limit=None
                        ) -> AsyncIterator[Any]:
            for item in self.list(config, filter=filter, before=before, limit=limit):
                yield item

        async def aput(self, config, checkpoint, metadata, new_versions):
            return self.put(config, checkpoint, metadata, new_versions)

        async def aput_writes(self, config, writes, task_id, task_path=""):
            return self.put_writes(config, writes, task_id, task_path)

        async def adelete_thread(self, thread_id):
            return self.delete_thread(thread_id)

    saver.__class__ = AsyncOverSync
    return saver


def _check(registered: Any) -> None:
    report = asyncio.run(validate(registered))
    failures = {name: result.failures for name, result in report.results.items()
                if result.failures}
    assert report.passed_all_base, failures


def test_the_session_document_saver_conforms() -> None:
    @checkpointer_test(name="StoreCheckpointSaver")
    async def saver() -> AsyncIterator[Any]:
        yield StoreCheckpointSaver("conformance", None, lambda exported: None)

    _check(saver)


@pytest.fixture(params=["sqlite", "postgres"])
def sql_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    if request.param == "sqlite":
        store: Any = SqliteStateStore(tmp_path / "federation.db")
    else:
        store = PostgresStateStore(fresh_database(request.getfixturevalue("postgres_url")))
    yield store
    store.close()


def test_the_fenced_sql_savers_conform_while_their_lease_is_held(sql_store: Any) -> None:
    lease = sql_store.try_lock("conformance")
    assert lease is not None

    @checkpointer_test(name=f"Fenced saver on {sql_store.kind}")
    async def saver() -> AsyncIterator[Any]:
        with sql_store.langgraph_saver(lease) as inner:
            yield _async_over_sync(inner)

    try:
        _check(saver)
    finally:
        lease.release()
