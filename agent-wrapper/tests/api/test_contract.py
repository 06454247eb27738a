"""The wrapper's contract names against the golden fixtures federation-wire binds to
(``host/federation-wire/tests/golden``): the fixtures are exactly what ``generate.py``
writes from the models today, the error-code list is exactly ``contract.ErrorCode``, and
every typed error the wrapper raises is one of those codes, sent with its status."""

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

from agent_wrapper import contract
from agent_wrapper.contract import ErrorCode
from agent_wrapper.core import errors

GOLDEN = Path(__file__).resolve().parents[3] / "host" / "federation-wire" / "tests" / "golden"


def golden(name: str) -> dict | list:
    return json.loads((GOLDEN / f"{name}.json").read_text())


def generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("golden_generate", GOLDEN / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_golden_fixtures_are_what_the_models_write_today() -> None:
    """A changed model or contract name without regenerated fixtures fails here (and the
    Rust side would bind to a stale contract)."""
    generate = generator()
    fixtures = generate.fixtures()
    on_disk = {path.stem for path in GOLDEN.glob("*.json")}
    assert on_disk == set(fixtures), "generate.py and the golden directory disagree"
    for name, content in fixtures.items():
        assert (GOLDEN / f"{name}.json").read_text() == generate.render(content), (
            f"{name}.json is stale: run host/federation-wire/tests/golden/generate.py")


def test_the_error_code_list_is_the_contracts_error_codes() -> None:
    listed = golden("error_codes")
    assert isinstance(listed, list)
    assert all(set(entry) == {"code", "http_status", "grpc_code"} for entry in listed)
    assert [e["code"] for e in listed] == sorted(e["code"] for e in listed)
    ours = [{"code": code.value, "http_status": code.http_status, "grpc_code": code.grpc_code}
            for code in sorted(ErrorCode, key=lambda c: c.value)]
    assert listed == ours


def test_a_status_maps_to_one_grpc_code() -> None:
    """The host picks the gRPC code by the wrapper's HTTP status, so two codes sent
    with one status cannot map to different gRPC codes."""
    by_status: dict[int, set[str]] = {}
    for code in ErrorCode:
        by_status.setdefault(code.http_status, set()).add(code.grpc_code)
    assert {s: g for s, g in by_status.items() if len(g) > 1} == {}


def wrapper_errors() -> list[type[errors.WrapperError]]:
    found, todo = [], [errors.WrapperError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


@pytest.mark.parametrize("error_class", wrapper_errors(), ids=lambda c: c.__name__)
def test_every_typed_error_is_a_contract_code_with_its_status(error_class) -> None:
    code = ErrorCode(error_class.code)
    assert error_class.status_code == code.http_status
    error = (error_class("m") if error_class is not errors.Overloaded
             else errors.Overloaded("m", retry_after_s=2))
    assert errors.error_info(error) == {"status": code.http_status, "code": code.value,
                                        "message": "m"}


def test_names_the_rust_side_also_spells() -> None:
    events = golden("events")
    assert isinstance(events, dict)
    assert list(contract.EVENT_TYPES) == events["event_types"]
    assert sorted(contract.TERMINAL_EVENTS) == events["terminal"]
    assert events["media_type"] == contract.NDJSON
    record = golden("run_record")
    assert isinstance(record, dict)
    properties = record["schema"]["properties"]
    assert list(contract.RUN_STATUSES) == properties["status"]["enum"]
    assert properties["route"]["enum"] == [contract.RUN_CREW, contract.RUN_GRAPH]
    assert contract.run_record_path("s-1", "r-1") == "/v1/sessions/s-1/runs/r-1"


def test_the_framework_modules_are_the_contracts_frameworks() -> None:
    from agent_wrapper.frameworks import FRAMEWORKS

    assert tuple(FRAMEWORKS) == contract.FRAMEWORK_NAMES
    assert {name: module.ROUTE for name, module in FRAMEWORKS.items()} == {
        "crewai": contract.RUN_CREW, "langgraph": contract.RUN_GRAPH}
