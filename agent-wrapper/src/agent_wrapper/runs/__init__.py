"""Runs of the run routes beyond one blocking call, one module per job:

* ``spec.py``: what a run request asks for, and the job the run queue keeps of it;
* ``run_record.py``: the run record's type and stored form; ``records.py``: its
  transitions (idempotent retries, status, takeover);
* ``manager.py``: the routes' entry point, composed of ``admission.py`` (run now, queue,
  replay, attach), ``local_runs.py`` (runs on this replica's worker threads),
  ``waiting.py`` (a blocking request's outcome), ``streaming.py`` (a streaming
  request's NDJSON), ``queue_dispatcher.py`` (the run queue's worker loop) and
  ``session_expiry.py``;
* ``executor.py``: one run on its worker thread; ``control.py``: its step boundaries
  (cancel, deadline); ``events.py``: its progress events.
"""

from agent_wrapper.runs.admission import Started
from agent_wrapper.runs.control import Boundary, RunControl, StepHook
from agent_wrapper.runs.events import EVENT_TYPES, NDJSON, TERMINAL_EVENTS, EventLog
from agent_wrapper.runs.manager import RunManager
from agent_wrapper.runs.records import RunRecords
from agent_wrapper.runs.run_record import (
    ACTIVE,
    TERMINAL,
    RunProgress,
    RunRecord,
    body_sha256,
    public_view,
)
from agent_wrapper.runs.spec import RunSpec

__all__ = ["ACTIVE", "EVENT_TYPES", "NDJSON", "TERMINAL", "TERMINAL_EVENTS", "Boundary",
           "EventLog", "RunControl", "RunManager", "RunProgress", "RunRecord", "RunRecords",
           "RunSpec", "Started", "StepHook", "body_sha256", "public_view"]
