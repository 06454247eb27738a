"""Validation of federation session ids and request ids, shared by the API and every
store backend (both become file names and Redis keys)."""

import re

_ID_RE = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def _id_problem(value: object, field: str) -> str | None:
    if not isinstance(value, str):
        return f"{field} must be a string"
    if not _ID_RE.fullmatch(value):
        return f"{field} must be 1..128 characters of [A-Za-z0-9._:-]"
    if value.startswith("."):
        return f"{field} must not start with '.'"
    if ".." in value:
        return f"{field} must not contain '..'"
    return None


def session_id_problem(session_id: object) -> str | None:
    """Return why ``session_id`` is unacceptable, or None if it is valid.

    The id becomes a file name and a Redis key, so it must never be able to
    name a path outside the state directory.
    """
    return _id_problem(session_id, "federation_session_id")


def request_id_problem(request_id: object) -> str | None:
    """Same rules for ``request_id``: it names a run record file / Redis key."""
    return _id_problem(request_id, "request_id")


def validate_session_id(session_id: str) -> str:
    """Return ``session_id`` unchanged or raise ValueError."""
    problem = session_id_problem(session_id)
    if problem:
        raise ValueError(problem)
    return session_id


def validate_request_id(request_id: str) -> str:
    """Return ``request_id`` unchanged or raise ValueError."""
    problem = request_id_problem(request_id)
    if problem:
        raise ValueError(problem)
    return request_id
