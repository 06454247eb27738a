"""Validation of federation session ids, shared by the API and every store backend."""

import re

_SESSION_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def session_id_problem(session_id: object) -> str | None:
    """Return why ``session_id`` is unacceptable, or None if it is valid.

    The id becomes a file name and a Redis key, so it must never be able to
    name a path outside the state directory.
    """
    if not isinstance(session_id, str):
        return "federation_session_id must be a string"
    if not _SESSION_RE.fullmatch(session_id):
        return "federation_session_id must be 1..128 characters of [A-Za-z0-9._:-]"
    if session_id.startswith("."):
        return "federation_session_id must not start with '.'"
    if ".." in session_id:
        return "federation_session_id must not contain '..'"
    return None


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` unchanged or raise ValueError."""
    problem = session_id_problem(session_id)
    if problem:
        raise ValueError(problem)
    return session_id
