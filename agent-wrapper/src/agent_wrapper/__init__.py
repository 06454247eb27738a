"""agent-federation agent wrapper: CrewAI / LangGraph behind an HTTP API.

Importing the package first pins CrewAI's process-wide switches, because CrewAI
reads them at import time: no CrewAI telemetry or cloud tracing, no version check,
and its storage inside the project state directory instead of the user's home.
"""

import os
from pathlib import Path

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.setdefault("CREWAI_DISABLE_VERSION_CHECK", "true")
# An absolute CREWAI_STORAGE_DIR makes crewai's appdirs lookup resolve to it.
os.environ.setdefault(
    "CREWAI_STORAGE_DIR",
    str(Path(os.environ.get("AGENT_WRAPPER_STATE_DIR", ".federation-state")).resolve() / "crewai"),
)

__version__ = "0.1.0"
