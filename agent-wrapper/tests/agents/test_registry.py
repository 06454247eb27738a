"""The agent registry: user projects in both crewai layouts and a langgraph.json load
with their inputs and tools; every broken entry fails the start naming entry and cause."""

import shutil
from pathlib import Path

import pytest

from agent_wrapper.agents import load_registry
from agent_wrapper.core.errors import AgentNotFound, InvalidInput, RegistryError
from tests.conftest import FIXTURE_AGENTS

FIXTURES = FIXTURE_AGENTS.parent


def test_the_fixture_registry_lists_builtins_and_user_agents() -> None:
    registry = load_registry(FIXTURE_AGENTS)
    listing = {a["name"]: a for a in registry.listing()}
    assert set(listing) == {"crew", "graph", "word_crew", "slogan_crew", "summary", "approval"}
    assert listing["crew"]["default"] and listing["graph"]["default"]
    assert not listing["word_crew"]["default"]
    # Placeholders become the crew's inputs; goal/context and defaults are not required.
    word = listing["word_crew"]["input_schema"]
    assert set(word["properties"]) == {"topic", "text", "audience"}
    assert sorted(word["required"]) == ["audience", "text", "topic"]
    slogan = listing["slogan_crew"]["input_schema"]
    assert slogan["required"] == ["product"] and slogan["properties"]["tone"]["default"] == "calm"
    assert listing["word_crew"]["tools"] == ["word_count"]
    assert listing["slogan_crew"]["tools"] == ["shout"]
    # Graphs: LangGraph's own input schema; messages come from the goal.
    summary = listing["summary"]["input_schema"]
    assert summary["required"] == ["topic"]
    assert listing["approval"]["can_request_input"] is True
    assert listing["summary"]["can_request_input"] is False
    assert listing["approval"]["tools"] == ["lookup_capital"]
    assert registry.listing("langgraph")[0]["name"] == "graph"


def test_resolve_finds_defaults_and_refuses_unknown_agents_listing_the_known_ones() -> None:
    registry = load_registry(FIXTURE_AGENTS)
    assert registry.resolve("crewai", None).name == "crew"
    assert registry.resolve("langgraph", "approval").name == "approval"
    with pytest.raises(AgentNotFound) as missing:
        registry.resolve("crewai", "nope")
    assert "crew, slogan_crew, word_crew" in missing.value.message
    with pytest.raises(AgentNotFound) as wrong:
        registry.resolve("crewai", "approval")
    assert "is a langgraph agent" in wrong.value.message


def test_input_is_checked_against_placeholders_and_the_graph_schema() -> None:
    registry = load_registry(FIXTURE_AGENTS)
    with pytest.raises(InvalidInput, match=r"input_data.audience is required"):
        registry.resolve("crewai", "word_crew").check_input({"topic": "t", "text": "x"}, "g", "")
    registry.resolve("crewai", "word_crew").check_input(
        {"topic": "t", "text": "x", "audience": "a"}, "g", "")
    with pytest.raises(InvalidInput, match=r"input_data.topic is required"):
        registry.resolve("langgraph", "summary").check_input({}, "g", "")
    with pytest.raises(InvalidInput, match=r"input_data.words"):
        registry.resolve("langgraph", "summary").check_input({"topic": "t", "words": "many"},
                                                             "g", "")


def write_registry(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "agents.toml"
    path.write_text(body)
    return path


@pytest.mark.parametrize("entry, cause", [
    ('framework = "crewai"\nproject = "nowhere"', "project directory"),
    ('framework = "crewai"\nproject = "classic_crew"\ncrew = "missing_mod.crew:X"',
     "cannot import module 'missing_mod.crew'"),
    ('framework = "crewai"\nproject = "classic_crew"\ncrew = "word_crew.crew:Nope"',
     "has no attribute 'Nope'"),
    ('framework = "crewai"\nproject = "classic_crew"\ncrew = "word_crew.tools.word_count:'
     'WordCountTool"', "not a @CrewBase class"),
    ('framework = "langgraph"\nconfig = "graphs/langgraph.json"\ngraph = "absent"',
     "has no graph 'absent'"),
    ('framework = "langgraph"\nconfig = "graphs/langgraph.json"\ngraph = "summary"\n'
     'llm = "maybe"', "llm must be"),
    ('framework = "autogen"', "framework must be one of"),
    ('framework = "crewai"\nproject = "json_crew"\ncolour = "red"', "unknown keys"),
])
def test_a_broken_entry_fails_the_start_naming_the_entry_and_the_cause(
        tmp_path: Path, entry: str, cause: str) -> None:
    for name in ("classic_crew", "json_crew", "graphs"):
        shutil.copytree(FIXTURES / name, tmp_path / name)
    path = write_registry(tmp_path, f"[agents.broken]\n{entry}\n")
    with pytest.raises(RegistryError) as failure:
        load_registry(path)
    assert "agent 'broken'" in str(failure.value)
    assert cause in str(failure.value)


def test_a_graph_attribute_that_is_not_a_graph_and_a_missing_yaml_key_fail_the_start(
        tmp_path: Path) -> None:
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "app.py").write_text("not_a_graph = 42\n")
    (tmp_path / "g" / "langgraph.json").write_text('{"graphs": {"x": "./app.py:not_a_graph"}}')
    path = write_registry(tmp_path, '[agents.x]\nframework = "langgraph"\n'
                                    'config = "g/langgraph.json"\n')
    with pytest.raises(RegistryError, match="is a int, not a compiled graph"):
        load_registry(path)

    # A copy under its own package name (the fixture's package is imported already).
    package = tmp_path / "cc" / "src" / "yaml_broken_crew"
    shutil.copytree(FIXTURES / "classic_crew" / "src" / "word_crew", package)
    crew_py = package / "crew.py"
    crew_py.write_text(crew_py.read_text().replace("from word_crew.", "from yaml_broken_crew."))
    tasks = package / "config" / "tasks.yaml"
    tasks.write_text(tasks.read_text().replace("report_task:", "renamed_task:"))
    path = write_registry(tmp_path, '[agents.yaml_broken]\nframework = "crewai"\n'
                                    'project = "cc"\ncrew = "yaml_broken_crew.crew:WordCrew"\n')
    with pytest.raises(RegistryError, match=r"agent 'yaml_broken'.*report_task"):
        load_registry(path)


def test_a_crew_that_asks_for_human_input_registers_as_one_that_may_ask(
        tmp_path: Path) -> None:
    # human_input=True no longer reads stdin: the draft ends the run input_required.
    shutil.copytree(FIXTURES / "json_crew", tmp_path / "jc")
    crew = tmp_path / "jc" / "crew.jsonc"
    crew.write_text(crew.read_text().replace('"agent": "editor"',
                                             '"agent": "editor",\n      "human_input": true'))
    path = write_registry(tmp_path, '[agents.asks]\nframework = "crewai"\nproject = "jc"\n')
    listing = {a["name"]: a for a in load_registry(path).listing("crewai")}
    assert listing["asks"]["can_request_input"] is True
    assert listing["crew"]["can_request_input"] is False


def test_missing_and_malformed_registry_files_fail_the_start(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        load_registry(tmp_path / "absent.toml")
    with pytest.raises(RegistryError, match="not valid TOML"):
        load_registry(write_registry(tmp_path, "[agents.x\n"))
