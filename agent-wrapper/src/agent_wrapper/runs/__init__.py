"""Runs of the run routes beyond one blocking call: run records (idempotent retries,
status), step-boundary control (cancel, deadline), progress events (NDJSON) and the
manager that starts, attaches to and answers for runs."""

from agent_wrapper.runs.control import Boundary, RunControl, StepHook
from agent_wrapper.runs.events import EVENT_TYPES, NDJSON, TERMINAL_EVENTS, EventLog
from agent_wrapper.runs.manager import RunManager, RunSpec, Started
from agent_wrapper.runs.records import ACTIVE, TERMINAL, RunRecords, body_sha256, public_view

__all__ = ["ACTIVE", "EVENT_TYPES", "NDJSON", "TERMINAL", "TERMINAL_EVENTS", "Boundary",
           "EventLog", "RunControl", "RunManager", "RunRecords", "RunSpec", "Started",
           "StepHook", "body_sha256", "public_view"]
