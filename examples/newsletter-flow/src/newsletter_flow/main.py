#!/usr/bin/env python
"""newsletter_flow: picks a format by audience (a router), has a crew write the issue,
and asks an editor to review it (``@human_feedback``) before it publishes."""

from crewai.flow import Flow, human_feedback, listen, or_, router, start
from pydantic import BaseModel

from newsletter_flow.crews.writer_crew.writer_crew import WriterCrew


class NewsletterState(BaseModel):
    topic: str = "AI agents"
    audience: str = "engineers"
    format: str = ""
    issue: str = ""
    status: str = ""


class NewsletterFlow(Flow[NewsletterState]):
    """Writes a newsletter issue and has an editor approve it before it goes out"""

    @start()
    def pick_format(self):
        technical = self.state.audience.lower() in ("engineers", "developers")
        self.state.format = "technical" if technical else "plain-language"

    @router(pick_format)
    def by_format(self):
        return self.state.format

    @listen("technical")
    def write_technical(self):
        return self._write()

    @listen("plain-language")
    def write_plain(self):
        return self._write()

    def _write(self):
        result = WriterCrew().crew().kickoff(
            inputs={"topic": self.state.topic, "format": self.state.format})
        self.state.issue = result.raw
        return result.raw

    @listen(or_(write_technical, write_plain))
    @human_feedback(message="Publish this issue?", emit=["approved", "rejected"],
                    llm="gpt-4o-mini", default_outcome="approved")
    def review(self, issue):
        return issue

    @listen("approved")
    def publish(self):
        self.state.status = "published"
        return f"Published: {self.state.issue}"

    @listen("rejected")
    def hold(self):
        self.state.status = "held"
        return f"Held for the editor: {self.last_human_feedback.feedback}"


def kickoff():
    NewsletterFlow().kickoff(inputs={"topic": "WebAssembly", "audience": "engineers"})


if __name__ == "__main__":
    kickoff()
