"""Hostile and careless suites: each loads or fails with the contract's one line, quickly.

Every case breaks a copy of the mini suite one way, then checks both the library loader
(`SuiteError` naming the file and the JSON path) and `toolsft gen` (exit 2, one `Error:` line
naming the file and the field, no traceback, nothing written, done in seconds). Cases that
could hang (FIFOs) run in a subprocess with a timeout, so a regression fails instead of
blocking the test session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from conftest import mini_suite_data, write_suite

from toolsft.cli.main import cli
from toolsft.schema.errors import SuiteError
from toolsft.schema.files import MAX_FILE_BYTES, SuiteFiles
from toolsft.schema.suite import load_suite
from toolsft.types import ToolCall

QUICK_S = 15.0
"""A refusal is a load, not a generation: far below this even on a busy 2-core machine."""
WEATHER, FORECAST = "tools/get_weather.yaml", "tools/get_forecast.yaml"


def _params(d: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return d["tools.json"][i]["function"]["parameters"]


def _prop(d: dict[str, Any], i: int, name: str) -> dict[str, Any]:
    return _params(d, i)["properties"][name]


def _set(rel: str, text: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.update({rel: text})


def _tool_yaml(d: dict[str, Any], rel: str) -> str:
    return yaml.safe_dump(d[rel], allow_unicode=True)


def _alias_bomb(d: dict[str, Any]) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    d[FORECAST] = _tool_yaml(d, FORECAST) + "\n".join(lines) + "\n"


def _deep_yaml(d: dict[str, Any]) -> None:
    d[FORECAST] = "".join("  " * i + "k:\n" for i in range(200)) + "  " * 200 + "v\n"


def _duplicate_key(d: dict[str, Any]) -> None:
    d[WEATHER] = _tool_yaml(d, WEATHER) + "tool: get_forecast\n"


def _drop(rel: str) -> Callable[[dict[str, Any]], None]:
    return lambda d: d.pop(rel)


# (id, mutation of the suite data, file the error names, where it points, words of the message)
CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str, str]] = [
    ("bad_yaml", _set(WEATHER, "tool: [unclosed\n"), "get_weather.yaml", "line ", "invalid YAML"),
    ("bad_json", _set("tools.json", '[{"type": "function",'), "tools.json", "line 1", "JSON"),
    (
        "bad_json_schema",
        lambda d: _prop(d, 0, "city").update({"type": "text"}),
        "tools.json",
        "$[0].function.parameters.properties.city.type",
        "2020-12",
    ),
    (
        "templates_not_a_list",
        lambda d: d[WEATHER]["templates"].update({"en": "Weather in {city}?"}),
        "get_weather.yaml",
        "$.templates.en",
        "list of strings",
    ),
    (
        "system_not_text",
        lambda d: d["suite.yaml"]["system"].update({"zh": 6}),
        "suite.yaml",
        "$.system.zh",
        "text",
    ),
    (
        "pii_pattern_not_text",
        lambda d: d["suite.yaml"]["policy"]["pii_patterns"].update({"card": 16}),
        "suite.yaml",
        "$.policy.pii_patterns.card",
        "text",
    ),
    (
        "result_not_a_mapping",
        lambda d: d[WEATHER].update({"result": [1, 2]}),
        "get_weather.yaml",
        "$.result",
        "mapping",
    ),
    (
        "pool_entry_without_value",
        lambda d: d["suite.yaml"]["pools"]["city"]["values"].append({}),
        "suite.yaml",
        "$.pools.city.values[3]",
        "value",
    ),
    (
        "context_turn_not_a_mapping",
        lambda d: d["suite.yaml"].update({"context": {"en": ["hello"]}}),
        "suite.yaml",
        "$.context.en[0]",
        "user",
    ),
    (
        "duplicate_tool_name",
        lambda d: d["tools.json"][1]["function"].update({"name": "get_weather"}),
        "tools.json",
        "$[1].function.name",
        "duplicate",
    ),
    (
        "tool_name_with_a_path",
        lambda d: d["tools.json"][1]["function"].update({"name": "../../etc/passwd"}),
        "tools.json",
        "$[1].function.name",
        "must match",
    ),
    ("missing_tool_file", _drop(FORECAST), "get_forecast.yaml", "$", "no generation file"),
    ("missing_tools_json", _drop("tools.json"), "tools.json", "$", "missing file"),
    (
        "tool_file_names_another_tool",
        lambda d: d[WEATHER].update({"tool": "get_forecast"}),
        "get_weather.yaml",
        "$.tool",
        "get_weather",
    ),
    (
        "unknown_pool",
        lambda d: d[WEATHER]["slots"].update({"city": "@nowhere"}),
        "get_weather.yaml",
        "$.slots.city",
        "unknown pool",
    ),
    (
        "unknown_confusable",
        lambda d: d[WEATHER].update({"confusable": ["get_time"]}),
        "get_weather.yaml",
        "$.confusable[0]",
        "another tool",
    ),
    (
        "mock_arg_names_no_parameter",
        lambda d: d[WEATHER]["result"]["mock"].update({"city": {"arg": "town"}}),
        "get_weather.yaml",
        "$.result.mock.city.arg",
        "no parameter",
    ),
    (
        "mock_template_unknown_field",
        lambda d: d[WEATHER]["result"]["mock"].update({"note": {"template": "{humidity}%"}}),
        "get_weather.yaml",
        "$.result.mock.note.template",
        "{humidity}",
    ),
    (
        "error_answer_unknown_field",
        lambda d: d[WEATHER]["answer"]["error"].update({"en": ["Failed: {reason}"]}),
        "get_weather.yaml",
        "$.answer.error.en[0]",
        "{reason}",
    ),
    (
        "ask_for_no_parameter",
        lambda d: d[WEATHER]["ask"].update({"town": {"en": "Which town?"}}),
        "get_weather.yaml",
        "$.ask.town",
        "not a parameter",
    ),
    (
        "say_for_no_enum_value",
        lambda d: d[WEATHER]["slots"]["unit"]["say"].update({"k": {"en": "Kelvin"}}),
        "get_weather.yaml",
        "$.slots.unit.say.k",
        "not a value of the parameter",
    ),
    (
        "display_for_no_field",
        lambda d: d[WEATHER]["answer"]["display"].update({"wind": {"n": "north"}}),
        "get_weather.yaml",
        "$.answer.display.wind",
        "not a result field",
    ),
    (
        "slot_setting_typo",
        lambda d: d[FORECAST]["slots"].update({"days": {"rnage": [1, 3]}}),
        "get_forecast.yaml",
        "$.slots.days.rnage",
        "unknown key",
    ),
    (
        "result_schema_invalid",
        lambda d: d[WEATHER]["result"]["schema"]["properties"].update({"temp": {"type": "int"}}),
        "get_weather.yaml",
        "$.result.schema.properties.temp.type",
        "2020-12",
    ),
    (
        "result_schema_ref",
        lambda d: d[WEATHER]["result"]["schema"].update({"$ref": "https://example.com/s.json"}),
        "get_weather.yaml",
        "$.result.schema.$ref",
        "references are not supported",
    ),
    (
        "schema_ref",
        lambda d: _params(d, 0)["properties"].update({"city": {"$ref": "#/$defs/city"}}),
        "tools.json",
        "$[0].function.parameters.properties.city.$ref",
        "unsupported schema keyword",
    ),
    (
        "schema_one_of",
        lambda d: _prop(d, 1, "days").update({"oneOf": [{"minimum": 1}]}),
        "tools.json",
        "$[1].function.parameters.properties.days.oneOf",
        "unsupported schema keyword",
    ),
    (
        "boolean_subschema",
        lambda d: _params(d, 0)["properties"].update({"unit": True}),
        "tools.json",
        "$[0].function.parameters.properties.unit",
        "schema object",
    ),
    (
        "empty_pool",
        lambda d: d["suite.yaml"]["pools"]["city"].update({"values": []}),
        "suite.yaml",
        "$.pools.city.values",
        "empty",
    ),
    (
        "empty_inline_pool",
        lambda d: d[FORECAST]["slots"].update({"days": {"values": []}}),
        "get_forecast.yaml",
        "$.slots.days.values",
        "empty",
    ),
    (
        "empty_enum",
        lambda d: _prop(d, 0, "unit").update({"enum": []}),
        "tools.json",
        "$[0].function.parameters.properties.unit.enum",
        "empty",
    ),
    (
        "minimum_above_maximum",
        lambda d: _prop(d, 1, "days").update({"minimum": 9, "maximum": 2}),
        "tools.json",
        "$[1].function.parameters.properties.days.minimum",
        "greater than maximum",
    ),
    (
        "exclusive_minimum_at_maximum",
        lambda d: _prop(d, 1, "days").update({"exclusiveMinimum": 7}),
        "tools.json",
        "$[1].function.parameters.properties.days.exclusiveMinimum",
        "maximum",
    ),
    (
        "min_length_above_max_length",
        lambda d: _prop(d, 0, "city").update({"minLength": 9, "maxLength": 2}),
        "tools.json",
        "$[0].function.parameters.properties.city.minLength",
        "maxLength",
    ),
    (
        "enum_value_violates_type",
        lambda d: _prop(d, 0, "unit").update({"enum": ["c", 3]}),
        "tools.json",
        "$[0].function.parameters.properties.unit.enum[1]",
        "not of type",
    ),
    (
        "default_violates_schema",
        lambda d: _prop(d, 1, "days").update({"default": 30}),
        "tools.json",
        "$[1].function.parameters.properties.days.default",
        "maximum",
    ),
    (
        "required_not_in_properties",
        lambda d: _params(d, 0)["required"].append("country"),
        "tools.json",
        "$[0].function.parameters.required[2]",
        "names no property",
    ),
    (
        "nothing_to_draw",
        lambda d: (
            _prop(d, 1, "days").update({"minimum": 200, "maximum": 300})
            or d[FORECAST]["slots"].update({"days": {"range": [1, 7]}})
        ),
        "get_forecast.yaml",
        "$.slots.days.range[0]",
        "schema refuses",
    ),
    (
        "slot_range_reversed",
        lambda d: d[FORECAST]["slots"].update({"days": {"range": [7, 1]}}),
        "get_forecast.yaml",
        "$.slots.days.range",
        "greater than last",
    ),
    (
        "dates_reversed",
        lambda d: d["suite.yaml"].update({"dates": ["2026-03-01", "2026-01-01"]}),
        "suite.yaml",
        "$.dates",
        "greater than last",
    ),
    (
        "date_not_iso",
        lambda d: d["suite.yaml"].update({"dates": ["2026-13-01", "2026-12-31"]}),
        "suite.yaml",
        "$.dates[0]",
        "ISO date",
    ),
    (
        "date_that_overflows",
        lambda d: d["suite.yaml"].update({"dates": ["9999-12-01", "9999-12-31"]}),
        "suite.yaml",
        "$.dates[0]",
        "must lie in",
    ),
    (
        "confirm_required_unknown_tool",
        lambda d: d["suite.yaml"]["policy"].update({"confirm_required": ["get_forecast", "pay"]}),
        "suite.yaml",
        "$.policy.confirm_required[1]",
        "unknown tool",
    ),
    (
        "dotted_property_name",
        lambda d: _params(d, 0)["properties"].update({"a.b": {"type": "string"}}),
        "tools.json",
        "$[0].function.parameters.properties",
        "'.'",
    ),
    (
        "nan_in_json",
        lambda d: d.update({"tools.json": json.dumps(d["tools.json"]).replace(": 7}", ": NaN}")}),
        "tools.json",
        "$[1].function.parameters.properties.days.maximum",
        "finite",
    ),
    (
        "huge_integer_in_json",
        lambda d: d.update(
            {"tools.json": json.dumps(d["tools.json"]).replace(": 7}", ": " + "9" * 5000 + "}")}
        ),
        "tools.json",
        "$[1].function.parameters.properties.days.maximum",
        "out of range",
    ),
    (
        "deep_json",
        _set("tools.json", "[" * 100_000 + "]" * 100_000),
        "tools.json",
        "$",
        "nested deeper",
    ),
    ("deep_yaml", _deep_yaml, "get_forecast.yaml", "line ", "nested deeper than 64"),
    ("alias_bomb", _alias_bomb, "get_forecast.yaml", "line ", "aliases expand"),
    ("duplicate_yaml_key", _duplicate_key, "get_weather.yaml", "line ", "duplicate key"),
    (
        "lone_surrogate",
        lambda d: d.update(
            {"tools.json": json.dumps(d["tools.json"]).replace("on a date.", "\\ud800")}
        ),
        "tools.json",
        "$[0].function.description",
        "surrogate",
    ),
    (
        "code_count_bomb",
        lambda d: d[WEATHER]["result"]["mock"].update({"id": {"code": "[A-Z]{999999999}"}}),
        "get_weather.yaml",
        "$.result.mock.id.code",
        "count above",
    ),
    (
        "schema_pattern_count_bomb",
        lambda d: (
            _prop(d, 0, "city").update({"pattern": "^[A-Z]{999999999}$"})
            or d[WEATHER]["slots"].pop("city")
        ),
        "get_weather.yaml",
        "$.slots.city",
        "count above",
    ),
    (
        "list_count_bomb",
        lambda d: d[WEATHER]["result"]["mock"].update(
            {"rows": {"list": {"n": [1, 10**9], "item": {"a": {"const": 1}}}}}
        ),
        "get_weather.yaml",
        "$.result.mock.rows.list.n",
        "within",
    ),
    (
        "error_rate_not_a_share",
        lambda d: d[WEATHER]["result"]["error"].update({"rate": "often"}),
        "get_weather.yaml",
        "$.result.error.rate",
        "number",
    ),
    (
        "choice_empty",
        lambda d: d[WEATHER]["result"]["mock"].update({"sky": {"choice": []}}),
        "get_weather.yaml",
        "$.result.mock.sky.choice",
        "non-empty",
    ),
    (
        "pattern_the_sampler_cannot_draw",
        lambda d: (
            _prop(d, 0, "city").update({"pattern": "^\\d{3}$"}) or d[WEATHER]["slots"].pop("city")
        ),
        "get_weather.yaml",
        "$.slots.city",
        "passes the schema",
    ),
    (
        "catastrophic_regex",
        lambda d: d["suite.yaml"]["policy"]["pii_patterns"].update({"card": "(a+)+$"}),
        "suite.yaml",
        "$.policy.pii_patterns.card",
        "nested quantifiers",
    ),
    (
        "bad_regex",
        lambda d: d["suite.yaml"]["policy"]["pii_patterns"].update({"card": "(["}),
        "suite.yaml",
        "$.policy.pii_patterns.card",
        "bad regex",
    ),
    (
        "format_spec_in_answer",
        lambda d: d[WEATHER]["answer"].update({"en": ["{0.__class__.__init__.__globals__}"]}),
        "get_weather.yaml",
        "$.answer.en[0]",
        "neither",
    ),
    (
        "attribute_in_template_slot",
        lambda d: d[WEATHER]["templates"]["en"].append("Weather {city.__class__}"),
        "get_weather.yaml",
        "$.templates.en[2]",
        "not a parameter",
    ),
    (
        "unknown_language",
        lambda d: d["suite.yaml"]["system"].update({"fr": "Bonjour"}),
        "suite.yaml",
        "$.system.fr",
        "unknown key",
    ),
    (
        "suite_name_with_markup",
        lambda d: d["suite.yaml"].update({"name": "[bold red]x[/]"}),
        "suite.yaml",
        "$.name",
        "must match",
    ),
]


def _write(root: Path, data: dict[str, Any]) -> Path:
    return write_suite(root, data)


def _gen(suite: Path, out: Path) -> Any:
    args = ["gen", "--suite", str(suite), "--out", str(out), "--per-stage", "5"]
    return CliRunner().invoke(cli, args)


def _assert_one_line(output: str, *parts: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, output
    for part in parts:
        assert part in lines[0], (part, lines[0])
    return lines[0]


def _assert_refused(root: Path, tmp_path: Path, file: str, where: str, words: str) -> None:
    start = time.monotonic()
    with pytest.raises(SuiteError) as info:
        load_suite(root)
    err = info.value
    assert err.file is not None and err.file.endswith(file), err
    assert where in str(err.where), err
    assert words in err.message, err
    out = tmp_path / "out"
    res = _gen(root, out)
    assert res.exit_code == 2, res.output
    _assert_one_line(res.output, file, where, words)
    assert not out.exists()
    assert time.monotonic() - start < QUICK_S


@pytest.mark.parametrize(
    ("mutate", "file", "where", "words"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_broken_suite_is_refused(
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], None],
    file: str,
    where: str,
    words: str,
) -> None:
    data = mini_suite_data()
    mutate(data)
    _assert_refused(_write(tmp_path / "bad", data), tmp_path, file, where, words)


def test_python_tag_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    data = mini_suite_data()
    data[WEATHER] = f'tool: !!python/object/apply:os.system ["touch {marker}"]\n'
    _assert_refused(_write(tmp_path / "bad", data), tmp_path, "get_weather.yaml", "line 1", "YAML")
    assert not marker.exists()


def test_not_utf8(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / "suite.yaml").write_bytes(b"name: mini\nsystem: {en: \xff\xfe}\n")
    _assert_refused(root, tmp_path, "suite.yaml", "line 2", "UTF-8")


def test_oversized_file(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    text = (root / "tools.json").read_text(encoding="utf-8")
    (root / "tools.json").write_text(text + " " * MAX_FILE_BYTES, encoding="utf-8")
    _assert_refused(root, tmp_path, "tools.json", "$", f"{MAX_FILE_BYTES >> 20} MiB limit")


def test_folder_in_place_of_a_file(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / "tools.json").unlink()
    (root / "tools.json").mkdir()
    _assert_refused(root, tmp_path, "tools.json", "$", "not a regular file (a directory)")


def test_stray_tool_file(tmp_path: Path) -> None:
    data = mini_suite_data()
    data["tools/get_time.yaml"] = {"tool": "get_time"}
    _assert_refused(_write(tmp_path / "bad", data), tmp_path, "get_time.yaml", "$.tool", "no tool")


def test_missing_suite_folder(tmp_path: Path) -> None:
    res = _gen(tmp_path / "nowhere", tmp_path / "out")
    assert res.exit_code == 2, res.output
    _assert_one_line(res.output, "nowhere")


def test_file_instead_of_suite_folder(tmp_path: Path) -> None:
    (tmp_path / "suite.yaml").write_text("name: x\n", encoding="utf-8")
    with pytest.raises(SuiteError, match="not a directory"):
        load_suite(tmp_path / "suite.yaml")


def test_symlink_out_of_the_suite_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    outside = tmp_path / "outside.yaml"
    (root / "suite.yaml").rename(outside)  # a valid file: the link, not the content, is wrong
    (root / "suite.yaml").symlink_to(outside)
    _assert_refused(root, tmp_path, "suite.yaml", "$", "leaves the suite folder")


def test_symlinked_tools_folder_out_of_the_suite_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / "tools").rename(tmp_path / "elsewhere")
    (root / "tools").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    _assert_refused(root, tmp_path, "get_weather.yaml", "$", "leaves the suite folder")


def test_relative_symlink_up_and_out_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / "tools.json").rename(tmp_path / "tools.json")
    (root / "tools.json").symlink_to(Path("..") / "tools.json")
    _assert_refused(root, tmp_path, "tools.json", "$", "leaves the suite folder")


def test_device_is_refused(tmp_path: Path) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / "tools.json").unlink()
    (root / "tools.json").symlink_to("/dev/zero")
    _assert_refused(root, tmp_path, "tools.json", "$", "leaves the suite folder")
    # A device inside the folder read is refused before it is opened: it never ends.
    with pytest.raises(SuiteError, match="not a regular file \\(a character device\\)"):
        SuiteFiles(Path("/dev")).load("zero")


def test_symlink_inside_the_suite_is_followed(tmp_path: Path) -> None:
    root = _write(tmp_path / "ok", mini_suite_data())
    (root / "shared").mkdir()
    (root / "suite.yaml").rename(root / "shared" / "suite.yaml")
    (root / "suite.yaml").symlink_to(Path("shared") / "suite.yaml")
    assert [t.name for t in load_suite(root).tools] == ["get_weather", "get_forecast"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
@pytest.mark.parametrize("rel", ["suite.yaml", WEATHER])
def test_fifo_is_refused_without_hanging(tmp_path: Path, rel: str) -> None:
    root = _write(tmp_path / "bad", mini_suite_data())
    (root / rel).unlink()
    os.mkfifo(root / rel)  # nobody ever writes: opening it for reading would block for ever
    out = tmp_path / "out"
    code = "import sys; from toolsft.cli.main import cli; sys.argv[0] = 'toolsft'; cli()"
    args = ["gen", "--suite", str(root), "--out", str(out), "--per-stage", "5"]
    proc = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=20
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    _assert_one_line(proc.stdout + proc.stderr, Path(rel).name, "not a regular file (a FIFO)")
    assert not out.exists()


def test_suite_text_is_data_not_a_template(tmp_path: Path) -> None:
    """Format specs, Jinja and %-codes in suite text reach the data verbatim."""
    hostile = "{0.__class__} {{ 7*7 }} {% raw %} %(x)s ${HOME} {city!r:>{w}}"
    data = mini_suite_data()
    data["suite.yaml"]["system"]["en"] = "You help. " + hostile
    data["suite.yaml"]["irrelevant"]["en"] = ["Say " + hostile]
    data["suite.yaml"]["no_tool_reply"]["en"] = ["No. " + hostile]
    data[WEATHER]["result"]["mock"]["note"] = {"const": hostile}
    out = tmp_path / "out"
    res = CliRunner().invoke(
        cli,
        ["gen", "--suite", str(_write(tmp_path / "ok", data)), "--out", str(out)]
        + ["--per-stage", "20", "--lang", "en"],
    )
    assert res.exit_code == 0, res.output
    rows = [
        json.loads(line)
        for path in out.rglob("*.jsonl")
        for line in path.read_text(encoding="utf-8").splitlines()
    ]
    assert rows
    assert all(r["messages"][0]["content"].startswith("You help. " + hostile) for r in rows)
    results = [json.loads(m["content"]) for r in rows for m in r["messages"] if m["role"] == "tool"]
    notes = [res["note"] for res in results if "note" in res]
    assert notes and all(note == hostile for note in notes)


def test_default_name_is_plain(tmp_path: Path) -> None:
    data = mini_suite_data()
    del data["suite.yaml"]["name"]
    root = _write(tmp_path / "my suite [v2]", data)
    assert load_suite(root).name == "my_suite_v2"


def test_yaml_timestamps_stay_text(tmp_path: Path) -> None:
    data = mini_suite_data()
    data["suite.yaml"] = yaml.safe_dump(data["suite.yaml"]).replace(
        "- '2026-01-01'", "- 2026-01-01"
    )
    suite = load_suite(_write(tmp_path / "ok", data))
    assert suite.config["dates"][0] == "2026-01-01"


def test_eval_refuses_a_broken_suite(tmp_path: Path) -> None:
    data = mini_suite_data()
    data["suite.yaml"]["pools"]["city"]["values"] = []
    root = _write(tmp_path / "bad", data)
    res = CliRunner().invoke(
        cli,
        ["eval", "--suite", str(root), "--engine", "gold", "--data", str(tmp_path / "data")]
        + ["--out", str(tmp_path / "ev")],
    )
    assert res.exit_code == 2, res.output
    _assert_one_line(res.output, "suite.yaml", "$.pools.city.values")


def test_mock_text_is_filled_by_lookup_not_format(tmp_path: Path) -> None:
    """`{city.__class__}` passes the load check (it starts with a parameter) but is filled by
    a plain lookup: attributes are never read, unknown names stay as written."""
    data = mini_suite_data()
    data[WEATHER]["result"]["mock"]["note"] = {"template": "{city.__class__} {city} {city!r:>9}"}
    data[WEATHER]["result"].pop("error")
    data[WEATHER]["answer"].pop("error")
    suite = load_suite(_write(tmp_path / "ok", data))
    result = suite.executor.run(ToolCall("get_weather", {"city": "Paris", "date": "2026-01-02"}))
    assert result["note"] == "{city.__class__} Paris {city!r:>9}"
