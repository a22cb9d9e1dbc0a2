"""The gate never passes what it cannot compare: every malformed, hostile or incomparable
results, baseline or tolerances file is exit 2 with one line naming the file and the field,
never 0 (a pass) and never 1 (a regression), and `--update` never writes from a bad run."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from helpers import make_dataset, scripted_run

from toolsft.cli.main import cli
from toolsft.eval.baseline import baseline_from_results, dump_baseline
from toolsft.eval.results import write_run

TC = "metrics.task_completion"


@pytest.fixture(scope="module")
def gold(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    data = make_dataset(tmp_path_factory.mktemp("data"), per_stage=40)
    return scripted_run(data)


@pytest.fixture
def files(gold: dict[str, Any], tmp_path: Path) -> tuple[Path, Path]:
    """A valid results.json and a baseline made from it (which pass the gate)."""
    res = write_run(gold, tmp_path / "run")
    base = tmp_path / "base.json"
    base.write_text(dump_baseline(baseline_from_results(gold)))
    return res, base


def _gate(*args: Any) -> Any:
    return CliRunner().invoke(cli, ["gate", *map(str, args)])


def _refused(r: Any, file: Path, where: str | None) -> str:
    """Exit 2, one line `Error: <file>:<where>: ...`, no traceback; returns the line."""
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and "Traceback" not in r.output, r.output
    head = f"Error: {file}:{where}" if where else f"Error: {file}:"
    assert lines[0].startswith(head), (lines[0], head)
    return lines[0]


def _edit(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set `a.b[2].c`-style `path` in `doc` (a missing sentinel deletes the key)."""
    keys: list[Any] = []
    for part in path.replace("]", "").split("."):
        name, *idx = part.split("[")
        keys += [name, *(int(i) for i in idx)]
    node: Any = doc
    for k in keys[:-1]:
        node = node[k]
    if value is _DELETE:
        del node[keys[-1]]
    else:
        node[keys[-1]] = value


_DELETE = object()

# (case, JSON path to edit, new value, JSON path the error must name)
DOC_CASES: list[tuple[str, str, Any, str]] = [
    ("value out of range", f"{TC}.value", 1.5, f"{TC}.value"),
    ("negative rate", f"{TC}.value", -0.1, f"{TC}.value"),
    ("value as a string", f"{TC}.value", "0.9", f"{TC}.value"),
    ("value as a bool", f"{TC}.value", True, f"{TC}.value"),
    ("null value", f"{TC}.value", None, f"{TC}.value"),
    ("309-digit integer", f"{TC}.value", 10**308, f"{TC}.value"),
    ("n zero", f"{TC}.n", 0, f"{TC}.n"),
    ("n negative", f"{TC}.n", -3, f"{TC}.n"),
    ("n fractional", f"{TC}.n", 2.5, f"{TC}.n"),
    ("n missing", f"{TC}.n", _DELETE, f"{TC}.n"),
    ("interval reversed", f"{TC}.ci", [0.9, 0.1], f"{TC}.ci"),
    ("interval out of range", f"{TC}.ci", [0.0, 7], f"{TC}.ci[1]"),
    ("fractional count", "metrics.compliance_violations.value", 1.5,
     "metrics.compliance_violations.value"),
    ("unknown metric", "metrics.vibes", {"value": 1.0, "n": 3}, "metrics.vibes"),
    ("no metrics", "metrics", {}, "metrics"),
    ("metrics a list", "metrics", [], "metrics"),
    ("wrong schema", "schema", "toolsft.eval/9", "schema"),
    ("no schema", "schema", _DELETE, "schema"),
    ("no run", "run", _DELETE, "run"),
    ("no suite hash", "run.suite.hash", _DELETE, "run.suite.hash"),
    ("empty data hash", "run.data.data_hash", "", "run.data.data_hash"),
    ("value edited, rows not", f"{TC}.value", 0.5, f"{TC}.value"),
    ("n edited, rows not", f"{TC}.n", 7, f"{TC}.n"),
    ("row vector too long", "rows[3].values.task_completion", [1, 1, 1],
     "rows[3].values.task_completion"),
    ("row hits above n", "rows[3].values.task_completion", [2, 1],
     "rows[3].values.task_completion"),
    ("row with unknown metric", "rows[0].values.vibes", [1, 1], "rows[0].values.vibes"),
    ("row without id", "rows[2].id", _DELETE, "rows[2].id"),
    ("rows empty", "rows", [], "rows"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "path", "value", "where"), DOC_CASES, ids=[c[0] for c in DOC_CASES]
)
def test_bad_results_file_is_refused(
    gold: dict[str, Any], files: tuple[Path, Path], case: str, path: str, value: Any, where: str
) -> None:
    res, base = files
    doc = json.loads(res.read_text())
    _edit(doc, path, value)
    res.write_text(json.dumps(doc))
    _refused(_gate(res, "--baseline", base), res, where)


@pytest.mark.parametrize(
    ("case", "path", "value", "where"), DOC_CASES[:22], ids=[c[0] for c in DOC_CASES[:22]]
)
def test_bad_baseline_file_is_refused(
    files: tuple[Path, Path], case: str, path: str, value: Any, where: str
) -> None:
    res, base = files
    doc = json.loads(base.read_text())
    if case == "wrong schema":
        value = "toolsft.baseline/9"
    _edit(doc, path, value)
    base.write_text(json.dumps(doc))
    _refused(_gate(res, "--baseline", base), base, where)


def test_duplicate_episode_is_refused(files: tuple[Path, Path]) -> None:
    res, base = files
    doc = json.loads(res.read_text())
    doc["rows"][1]["id"] = doc["rows"][0]["id"]
    res.write_text(json.dumps(doc))
    assert "the same episode twice" in _refused(_gate(res, "--baseline", base), res, "rows[1]")


RAW_CASES: list[tuple[str, Callable[[str], bytes], str | None]] = [
    ("NaN value", lambda t: t.replace('"value": 1.0', '"value": NaN', 1).encode(), f"{TC}.value"),
    ("Infinity in interval", lambda t: t.replace('"ci": [', '"ci": [-Infinity, ', 1).encode(),
     f"{TC}.ci[0]"),
    ("1e400 overflows to inf", lambda t: t.replace('"value": 1.0', '"value": 1e400', 1).encode(),
     f"{TC}.value"),
    ("truncated", lambda t: t[: len(t) // 2].encode(), "line"),
    ("empty", lambda t: b"", None),
    ("whitespace only", lambda t: b" \n\t\n", None),
    ("not UTF-8", lambda t: b"\xff\xfe" + t.encode("utf-16-le"), "byte 0"),
    ("top-level list", lambda t: b"[1, 2, 3]", "$"),
    ("a bare number", lambda t: b"0.97", "$"),
    ("deep nesting", lambda t: b"[" * 200_000 + b"]" * 200_000, None),
    ("5000-digit integer", lambda t: t.replace('"value": 1.0', '"value": ' + "9" * 5000, 1).encode(),
     None),
]  # fmt: skip


@pytest.mark.parametrize(("case", "corrupt", "where"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unreadable_results_file_is_refused(
    files: tuple[Path, Path], case: str, corrupt: Callable[[str], bytes], where: str | None
) -> None:
    res, base = files
    res.write_bytes(corrupt(res.read_text()))
    _refused(_gate(res, "--baseline", base), res, where)


@pytest.mark.parametrize(("case", "corrupt", "where"), RAW_CASES, ids=[c[0] for c in RAW_CASES])
def test_unreadable_baseline_is_refused(
    files: tuple[Path, Path], case: str, corrupt: Callable[[str], bytes], where: str | None
) -> None:
    res, base = files
    base.write_bytes(corrupt(base.read_text()))
    _refused(_gate(res, "--baseline", base), base, where)


def test_paths_that_are_not_files_are_refused(files: tuple[Path, Path], tmp_path: Path) -> None:
    res, base = files
    _refused(_gate(tmp_path / "nope.json", "--baseline", base), tmp_path / "nope.json", None)
    empty_dir = tmp_path / "folder"
    empty_dir.mkdir()  # a run folder without results.json
    _refused(_gate(empty_dir, "--baseline", base), empty_dir / "results.json", None)
    _refused(_gate(res, "--baseline", empty_dir), empty_dir, None)
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)  # reading it would block forever
    _refused(_gate(fifo, "--baseline", base), fifo, None)
    _refused(_gate(res, "--baseline", fifo), fifo, None)


def test_another_episode_set_is_refused(files: tuple[Path, Path]) -> None:
    """Same data hash but other episodes (a hand-edited or mixed file): not comparable."""
    res, base = files
    doc = json.loads(base.read_text())
    doc["rows"][0]["id"] = "commerce-s9-test-999999"
    base.write_text(json.dumps(doc))
    line = _refused(_gate(res, "--baseline", base), res, "rows")
    assert "episode sets differ" in line and "commerce-s9-test-999999" in line


TOLERANCE_CASES: list[tuple[str, str, str | None]] = [
    ("unknown key", "default: 0.02\nthreshold: 0.1\n", "threshold"),
    ("NaN tolerance", "metrics:\n  bleu: .nan\n", "metrics.bleu"),
    ("infinite tolerance", "default: .inf\n", "default"),
    ("negative tolerance", "metrics:\n  bleu: -1\n", "metrics.bleu"),
    ("string tolerance", "metrics:\n  bleu: five\n", "metrics.bleu"),
    ("bool tolerance", "default: yes\n", "default"),
    ("percent, not a fraction", "metrics:\n  task_completion: 3\n", "metrics.task_completion"),
    ("unknown metric", "metrics:\n  task_compleshun: 0.1\n", "metrics.task_compleshun"),
    ("unknown ignored metric", "ignore: [bleu, vibes]\n", "ignore[1]"),
    ("ignore not a list", "ignore: bleu\n", "ignore"),
    ("alpha zero", "alpha: 0\n", "alpha"),
    ("alpha too large", "alpha: 0.7\n", "alpha"),
    ("not a mapping", "- 0.02\n", None),
    ("empty", "", None),
    ("invalid YAML", "metrics: {bleu: [\n", "line"),
]


@pytest.mark.parametrize(
    ("case", "text", "where"), TOLERANCE_CASES, ids=[c[0] for c in TOLERANCE_CASES]
)
def test_bad_tolerances_are_refused(
    files: tuple[Path, Path], tmp_path: Path, case: str, text: str, where: str | None
) -> None:
    res, base = files
    tol = tmp_path / "tol.yaml"
    tol.write_text(text)
    _refused(_gate(res, "--baseline", base, "--tolerances", tol), tol, where)


def test_update_never_writes_from_a_bad_run(files: tuple[Path, Path]) -> None:
    res, base = files
    before = base.read_bytes()
    res.write_text(res.read_text().replace('"value": 1.0', '"value": NaN', 1))
    _refused(_gate(res, "--baseline", base, "--update"), res, f"{TC}.value")
    _refused(_gate(res, "--baseline", base, "--update", "--floor"), res, f"{TC}.value")
    assert base.read_bytes() == before


def test_update_floor_refuses_an_unusable_baseline_and_update_replaces_it(
    files: tuple[Path, Path],
) -> None:
    res, base = files
    base.write_text('{"schema": "toolsft.baseline/2", "metrics": {')
    before = base.read_bytes()
    _refused(_gate(res, "--baseline", base, "--update", "--floor"), base, "line")
    assert base.read_bytes() == before
    r = _gate(res, "--baseline", base, "--update")
    assert r.exit_code == 0 and "replacing an unusable baseline" in r.output
    assert _gate(res, "--baseline", base).exit_code == 0


def test_floor_without_update_is_a_usage_error(files: tuple[Path, Path]) -> None:
    res, base = files
    r = _gate(res, "--baseline", base, "--floor")
    assert r.exit_code == 2 and "--floor only goes with --update" in r.output
