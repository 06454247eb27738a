"""ResearchCrew: a researcher with a fact-sheet tool, then a writer."""

from crewai import Agent, Crew, Process, Task
from crewai.agents.agent_builder.base_agent import BaseAgent
from crewai.project import CrewBase, agent, crew, task

from research_crew.tools.fact_sheet import FactSheetTool


@CrewBase
class ResearchCrew:
    """Researches {topic} and writes a brief for {audience}."""

    agents: list[BaseAgent]
    tasks: list[Task]

    @agent
    def researcher(self) -> Agent:
        return Agent(config=self.agents_config["researcher"], tools=[FactSheetTool()])

    @agent
    def writer(self) -> Agent:
        return Agent(config=self.agents_config["writer"])

    @task
    def research_task(self) -> Task:
        return Task(config=self.tasks_config["research_task"])

    @task
    def brief_task(self) -> Task:
        return Task(config=self.tasks_config["brief_task"])

    @crew
    def crew(self) -> Crew:
        return Crew(agents=self.agents, tasks=self.tasks, process=Process.sequential)
