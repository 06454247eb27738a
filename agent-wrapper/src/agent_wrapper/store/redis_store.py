"""Redis backend, shared by several wrapper replicas.

Documents are JSON strings under ``<prefix>:session:<id>``. The session lock is
``SET <prefix>:lock:<id> <token> NX PX <ttl>``; a live run renews it every
ttl/3 and releases it with a check-and-delete Lua script so a replica can never
delete a lock another replica took after ours expired.

Run records are JSON strings under ``<prefix>:run:<session>/<request_id>`` (``/``
is not in the id alphabet, so keys cannot collide), written with ``SET ... PX
<ttl>`` so Redis expires them; read-modify-writes are ``WATCH``/``MULTI``
transactions, retried when another replica wrote in between.
"""

import contextlib
import json
import secrets
from typing import Any

import redis

from agent_wrapper.core.errors import StoreUnavailable
from agent_wrapper.store.base import RenewedLock, RunMutator, SessionLock, StateStore
from agent_wrapper.store.session_id import validate_request_id, validate_session_id

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""
_RENEW = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  return redis.call('pexpire', KEYS[1], ARGV[2])
end
return 0
"""


class _RedisLock(RenewedLock):
    def __init__(self, store: "RedisStateStore", key: str, token: str) -> None:
        self._store = store
        self._key = key
        self._token = token
        super().__init__(key, store.lock_ttl_ms / 3000)

    def _renew(self) -> bool:
        # On a Redis error the run hits the store error itself when it next saves.
        with contextlib.suppress(redis.RedisError):
            self._store._renew(keys=[self._key], args=[self._token, self._store.lock_ttl_ms])
        return True

    def _let_go(self) -> None:
        with contextlib.suppress(redis.RedisError):  # Else the TTL frees it.
            self._store._release(keys=[self._key], args=[self._token])


class RedisStateStore(StateStore):
    """Session documents and locks in Redis (plain keys, no modules needed)."""

    kind = "redis"

    def __init__(self, url: str, *, prefix: str = "agent-federation",
                 lock_ttl_ms: int = 30_000, session_ttl_ms: int | None = None) -> None:
        self.client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5)
        self.prefix = prefix
        self.lock_ttl_ms = lock_ttl_ms
        # Sessions idle this long expire by themselves (PX set at every save).
        self.session_ttl_ms = session_ttl_ms
        self._release = self.client.register_script(_RELEASE)
        self._renew = self.client.register_script(_RENEW)

    def _key(self, kind: str, session_id: str) -> str:
        return f"{self.prefix}:{kind}:{validate_session_id(session_id)}"

    def load(self, session_id: str) -> dict[str, Any] | None:
        key = self._key("session", session_id)
        try:
            raw = self.client.get(key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreUnavailable(f"corrupt state for session {session_id!r}: {exc}") from exc

    def save(self, session_id: str, document: dict[str, Any],
             lock: SessionLock | None = None, *, durable: bool = True) -> None:
        key = self._key("session", session_id)
        data = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
        try:
            self.client.set(key, data, px=self.session_ttl_ms)  # SET replaces atomically
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    def claim_session(self, session_id: str, principal: str) -> str:
        key = self._key("owner", session_id)
        try:
            # SET NX: of two replicas claiming at once, one sets it. The claim lives as
            # long as the session does (its TTL is refreshed with every claim).
            pipe = self.client.pipeline()
            pipe.set(key, principal, nx=True, px=self.session_ttl_ms)
            pipe.get(key)
            if self.session_ttl_ms:
                pipe.pexpire(key, self.session_ttl_ms)
            owner = pipe.execute()[1]
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
        return owner.decode() if isinstance(owner, bytes) else str(owner)

    def session_owner(self, session_id: str) -> str | None:
        try:
            owner = self.client.get(self._key("owner", session_id))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
        return owner.decode() if isinstance(owner, bytes) else owner

    def delete(self, session_id: str) -> None:
        try:
            self.client.delete(self._key("session", session_id), self._key("owner", session_id))
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    def _run_key(self, session_id: str, request_id: str) -> str:
        return (f"{self.prefix}:run:{validate_session_id(session_id)}/"
                f"{validate_request_id(request_id)}")

    @staticmethod
    def _decode_run(raw: Any, key: str) -> dict[str, Any] | None:
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise StoreUnavailable(f"corrupt run record {key}: {exc}") from exc

    def load_run(self, session_id: str, request_id: str) -> dict[str, Any] | None:
        key = self._run_key(session_id, request_id)
        try:
            raw = self.client.get(key)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
        return self._decode_run(raw, key)

    def update_run(self, session_id: str, request_id: str, mutate: RunMutator,
                   ttl_ms: int, *, durable: bool = True) -> dict[str, Any] | None:
        # Redis persists by its own policy (appendfsync): every write is alike here.
        key = self._run_key(session_id, request_id)

        def transaction(pipe: Any) -> dict[str, Any] | None:
            current = self._decode_run(pipe.get(key), key)  # WATCHed: immediate mode
            new = mutate(current)
            if new is None:
                return current
            pipe.multi()
            pipe.set(key, json.dumps(new, ensure_ascii=False, separators=(",", ":")),
                     px=max(1, int(ttl_ms)))
            return new

        try:
            # Re-runs ``transaction`` when the key changed between WATCH and EXEC.
            return self.client.transaction(transaction, key, value_from_callable=True)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    def try_lock(self, session_id: str) -> SessionLock | None:
        key = self._key("lock", session_id)
        token = secrets.token_hex(16)
        try:
            acquired = self.client.set(key, token, nx=True, px=self.lock_ttl_ms)
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc
        return _RedisLock(self, key, token) if acquired else None

    def ping(self) -> None:
        try:
            self.client.ping()
        except redis.RedisError as exc:
            raise StoreUnavailable(f"redis unavailable: {exc}") from exc

    def close(self) -> None:
        self.client.close()
