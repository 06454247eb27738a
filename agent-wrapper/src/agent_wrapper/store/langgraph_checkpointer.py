"""A LangGraph checkpointer that keeps a thread's checkpoints in our state store.

It is LangGraph's ``InMemorySaver`` whose content for one thread is loaded from
the session document and written back to the store after every ``put`` /
``put_writes`` (i.e. after every node), so the same code works for the file and
the Redis backend (``langgraph-checkpoint-redis`` would need RediSearch). Old
checkpoints are pruned when a request starts: only the latest one (with its
pending writes and the blobs it references) is needed to resume a thread or to
continue its message history.
"""

import base64
import threading
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import ChannelVersions, Checkpoint, CheckpointMetadata
from langgraph.checkpoint.memory import InMemorySaver

Typed = tuple[str, bytes]


def _enc(value: Typed) -> list[str]:
    return [value[0], base64.b64encode(value[1]).decode()]


def _dec(value: list[str]) -> Typed:
    return (value[0], base64.b64decode(value[1]))


class StoreCheckpointSaver(InMemorySaver):
    """Checkpoints of one thread, persisted through ``persist(exported_dict)``."""

    def __init__(self, thread_id: str, exported: dict[str, Any] | None,
                 persist: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self.thread_id = thread_id
        self._persist = persist
        self._mutex = threading.RLock()
        if exported:
            self._import(exported)

    # -- persistence hooks -------------------------------------------------
    def put(self, config: RunnableConfig, checkpoint: Checkpoint,
            metadata: CheckpointMetadata, new_versions: ChannelVersions) -> RunnableConfig:
        with self._mutex:
            result = super().put(config, checkpoint, metadata, new_versions)
            self._persist(self.export())
            return result

    def put_writes(self, config: RunnableConfig, writes: Sequence[tuple[str, Any]],
                   task_id: str, task_path: str = "") -> None:
        with self._mutex:
            super().put_writes(config, writes, task_id, task_path)
            self._persist(self.export())

    # -- (de)serialisation to JSON -------------------------------------------
    def export(self) -> dict[str, Any]:
        tid = self.thread_id
        checkpoints = [
            [ns, cid, _enc(ckpt), _enc(meta), parent]
            for ns, by_id in self.storage.get(tid, {}).items()
            for cid, (ckpt, meta, parent) in by_id.items()
        ]
        writes = [
            [ns, cid, task_id, idx, channel, _enc(value), path]
            for (t, ns, cid), inner in self.writes.items() if t == tid
            for (task_id, idx), (_, channel, value, path) in inner.items()
        ]
        blobs = [
            [ns, channel, version, _enc(value)]
            for (t, ns, channel, version), value in self.blobs.items() if t == tid
        ]
        return {"checkpoints": checkpoints, "writes": writes, "blobs": blobs}

    def _import(self, data: dict[str, Any]) -> None:
        tid = self.thread_id
        for ns, cid, ckpt, meta, parent in data.get("checkpoints", []):
            self.storage[tid][ns][cid] = (_dec(ckpt), _dec(meta), parent)
        for ns, cid, task_id, idx, channel, value, path in data.get("writes", []):
            self.writes[(tid, ns, cid)][(task_id, idx)] = (task_id, channel, _dec(value), path)
        for ns, channel, version, value in data.get("blobs", []):
            self.blobs[(tid, ns, channel, version)] = _dec(value)

    def latest_checkpoint_id(self) -> str | None:
        """Id of the thread's newest stored checkpoint (root namespace)."""
        with self._mutex:
            ids = list(self.storage.get(self.thread_id, {}).get("", {}))
        return max(ids) if ids else None

    def prune(self) -> None:
        """Keep only the latest checkpoint per namespace (and what it references)."""
        tid = self.thread_id
        with self._mutex:
            for ns, by_id in list(self.storage.get(tid, {}).items()):
                if len(by_id) <= 1:
                    continue
                latest = max(by_id)  # checkpoint ids are time-ordered (uuid6)
                ckpt = self.serde.loads_typed(by_id[latest][0])
                keep_versions = {(ch, v) for ch, v in ckpt["channel_versions"].items()}
                ckpt_entry = by_id[latest]
                # The kept checkpoint has no stored parent any more.
                self.storage[tid][ns] = {latest: (ckpt_entry[0], ckpt_entry[1], None)}
                for key in [k for k in self.writes if k[0] == tid and k[1] == ns
                            and k[2] != latest]:
                    del self.writes[key]
                for key in [k for k in self.blobs if k[0] == tid and k[1] == ns
                            and (k[2], k[3]) not in keep_versions]:
                    del self.blobs[key]
