"""A custom CrewAI tool: looks a subject up in a small built-in fact sheet."""

from crewai.tools import BaseTool
from pydantic import BaseModel, Field

FACTS = {
    "webassembly": "WebAssembly runs code in a sandbox with no ambient access to the host.",
    "opentelemetry": "OpenTelemetry carries one trace id across processes and languages.",
}


class FactSheetInput(BaseModel):
    subject: str = Field(..., description="What to look up.")


class FactSheetTool(BaseTool):
    name: str = "fact_sheet"
    description: str = "Looks a subject up in the team's fact sheet."
    args_schema: type[BaseModel] = FactSheetInput

    def _run(self, subject: str) -> str:
        hits = [fact for key, fact in FACTS.items() if key in subject.lower()]
        return " ".join(hits) or f"No fact sheet entry for {subject!r}."
