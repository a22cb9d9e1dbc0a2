"""Loading fails loudly, naming the file, the JSON path and the bad value; one test per kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import REPO, SHIPPED_SUITES, mini_suite_data, write_suite

from toolsft.cli.main import cli
from toolsft.schema.errors import SuiteError
from toolsft.schema.suite import load_suite


def _broken(tmp_path: Path, mutate) -> Path:  # type: ignore[no-untyped-def]
    data = mini_suite_data()
    mutate(data)
    return write_suite(tmp_path / "bad", data)


def _error(tmp_path: Path, mutate) -> SuiteError:  # type: ignore[no-untyped-def]
    with pytest.raises(SuiteError) as info:
        load_suite(_broken(tmp_path, mutate))
    return info.value


def test_mini_suite_loads(mini_suite: Path) -> None:
    suite = load_suite(mini_suite)
    assert [t.name for t in suite.tools] == ["get_weather", "get_forecast"]
    assert len(suite.hash) == 64


@pytest.mark.parametrize("name", SHIPPED_SUITES)
def test_shipped_suites_load(name: str) -> None:
    suite = load_suite(REPO / "tool_schemas" / name)
    assert len(suite.tools) >= 6


def test_invalid_json(tmp_path: Path) -> None:
    err = _error(tmp_path, lambda d: d.update({"tools.json": '[{"type": "function",'}))
    assert err.file.endswith("tools.json") and "invalid JSON" in err.message


def test_invalid_yaml(tmp_path: Path) -> None:
    err = _error(tmp_path, lambda d: d.update({"tools/get_weather.yaml": "tool: [unclosed\n"}))
    assert err.file.endswith("get_weather.yaml") and "invalid YAML" in err.message
    assert err.path.startswith("line ")


def test_parameters_not_json_schema(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["tools.json"][0]["function"]["parameters"]["properties"]["city"]["type"] = "text"

    err = _error(tmp_path, mutate)
    assert err.path == "$[0].function.parameters.properties.city.type"
    assert err.value == "text" and "2020-12" in err.message


def test_template_slot_not_a_parameter(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["tools/get_weather.yaml"]["templates"]["en"].append("Weather in {town}?")

    err = _error(tmp_path, mutate)
    assert err.path == "$.templates.en[2]" and "{town}" in err.message
    assert err.value == "Weather in {town}?"


def test_pool_value_violates_schema(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["tools/get_forecast.yaml"]["slots"]["days"] = {"values": [3, "five"]}

    err = _error(tmp_path, mutate)
    assert err.path == "$.slots.days.values[1]" and err.value == "five"


def test_duplicate_tool_name(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["tools.json"][1]["function"]["name"] = "get_weather"

    err = _error(tmp_path, mutate)
    assert err.path == "$[1].function.name" and "duplicate" in err.message


def test_unknown_policy_key(tmp_path: Path) -> None:
    err = _error(tmp_path, lambda d: d["suite.yaml"]["policy"].update({"forbiden_phrases": []}))
    assert err.path == "$.policy.forbiden_phrases" and "unknown key" in err.message


def test_holdout_overlapping_training_values(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["suite.yaml"]["pools"]["city"]["holdout"].append({"zh": "北京", "en": "Beijing"})

    err = _error(tmp_path, mutate)
    assert "holdout" in err.path and "also a training value" in err.message


def test_answer_field_unknown(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["tools/get_weather.yaml"]["answer"]["en"] = ["{humidity}% humid"]

    err = _error(tmp_path, mutate)
    assert err.path == "$.answer.en[0]"


def test_cli_fails_and_writes_nothing(tmp_path: Path) -> None:
    bad = _broken(tmp_path, lambda d: d["suite.yaml"]["policy"].update({"nope": 1}))
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli, ["gen", "--suite", str(bad), "--out", str(out), "--per-stage", "5"]
    )
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    assert "suite.yaml" in res.output and "$.policy.nope" in res.output
    assert not out.exists()


def test_bare_yes_key_is_caught(tmp_path: Path) -> None:
    def mutate(d):  # type: ignore[no-untyped-def]
        d["suite.yaml"]["policy"]["confirmation"] = {"ask": {"en": "Sure?"}, True: {"en": ["yes"]}}

    err = _error(tmp_path, mutate)
    assert err.path == "$.policy.confirmation" and '"yes"' in err.message
