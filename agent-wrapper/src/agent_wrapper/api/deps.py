"""FastAPI dependencies: the wrapper's shared state, reached by routes as parameters
instead of ``request.app.state`` lookups, and the caller: the host's credential checked
and the principal it vouches for."""

import hmac
import re
from typing import Annotated

from fastapi import Depends, Request

from agent_wrapper.agents import AgentRegistry
from agent_wrapper.contract import CREDENTIAL_HEADER, PRINCIPAL_HEADER
from agent_wrapper.core.errors import BadRequest, SessionNotOwned, Unauthenticated
from agent_wrapper.runs import RunManager, RunRecords
from agent_wrapper.store import StateStore

# The principal of a request that names none (a caller on a wrapper without a host
# credential, or a host without caller authentication).
ANONYMOUS = "anonymous"
_PRINCIPAL_RE = re.compile(r"[\x21-\x7e]{1,256}")


def wrapper_state(request: Request):  # -> main.WrapperState (imported lazily: no cycle)
    return request.app.state.wrapper


def agent_registry(request: Request) -> AgentRegistry:
    return request.app.state.wrapper.agents


def run_manager(request: Request) -> RunManager:
    return request.app.state.wrapper.runs


def run_records(request: Request) -> RunRecords:
    return request.app.state.wrapper.records


def state_store(request: Request) -> StateStore:
    return request.app.state.wrapper.store


def caller_principal(request: Request) -> str:
    """The principal a request acts for. With a host credential configured, the request
    must carry it (401 ``unauthenticated`` otherwise): only the host can then name a
    principal, and adapters cannot forge one (the host refuses guest headers of either
    name)."""
    secret: bytes | None = request.app.state.wrapper.host_secret
    if secret is not None:
        given = request.headers.getlist(CREDENTIAL_HEADER)
        if len(given) != 1 or not hmac.compare_digest(given[0].encode(), secret):
            raise Unauthenticated(f"this wrapper accepts requests from its federation host "
                                  f"only: {CREDENTIAL_HEADER} missing or wrong")
    named = request.headers.getlist(PRINCIPAL_HEADER)
    if not named:
        return ANONYMOUS
    if len(named) != 1 or not _PRINCIPAL_RE.fullmatch(named[0]):
        raise BadRequest(f"{PRINCIPAL_HEADER} must be one value of 1-256 visible ASCII "
                         "characters")
    return named[0]


def check_owner(store: StateStore, session_id: str, principal: str, *,
                claim: bool) -> None:
    """403 ``session_not_owned`` unless ``principal`` owns the session; ``claim`` makes
    it the owner of a session nobody owns yet (a run request), otherwise an unowned
    session passes (the caller then finds nothing in it)."""
    # A read first: only a session's first request pays for the claim's write (a
    # commit, an fsync on SQLite) on the run's hot path; the claim itself is atomic.
    owner = store.session_owner(session_id)
    if owner is None and claim:
        owner = store.claim_session(session_id, principal)
    if owner is not None and owner != principal:
        raise SessionNotOwned(f"session {session_id!r} belongs to another principal")


Registry = Annotated[AgentRegistry, Depends(agent_registry)]
Manager = Annotated[RunManager, Depends(run_manager)]
Records = Annotated[RunRecords, Depends(run_records)]
Store = Annotated[StateStore, Depends(state_store)]
Caller = Annotated[str, Depends(caller_principal)]
