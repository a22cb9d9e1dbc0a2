"""`toolsft gate`: exit 0 on pass, 1 on regression, 2 when runs are not comparable."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from toolsft.cli.main import cli
from toolsft.eval.gate import (
    GateRefused,
    baseline_from_results,
    check_metric,
    load_tolerances,
    run_gate,
)
from toolsft.eval.metrics import METRICS
from toolsft.eval.results import write_run
from toolsft.eval.testing import make_dataset, scripted_run

TOLERANCES = Path(__file__).resolve().parents[1] / "evals" / "tolerances.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_stage=100)


@pytest.fixture(scope="module")
def gold(data: Path) -> dict[str, Any]:
    return scripted_run(data)


def _write(results: dict[str, Any], folder: Path) -> Path:
    return write_run(results, folder)


def _gate(*args: str) -> Any:
    return CliRunner().invoke(cli, ["gate", *args])


def test_update_then_pass(gold: dict[str, Any], tmp_path: Path) -> None:
    res_file = _write(gold, tmp_path / "run")
    base = tmp_path / "baselines" / "commerce.json"
    r = _gate(str(res_file), "--baseline", str(base), "--update")
    assert r.exit_code == 0, r.output
    doc = json.loads(base.read_text())
    assert doc["schema"] == "toolsft.baseline/1" and "rows" not in doc
    md = tmp_path / "summary.md"
    r = _gate(
        str(res_file),
        "--baseline",
        str(base),
        "--tolerances",
        str(TOLERANCES),
        "--markdown",
        str(md),
    )
    assert r.exit_code == 0, r.output
    assert "gate passed" in r.output
    assert "| Task completion | 100.0 | 100.0 |" in md.read_text()


def test_regression_exits_1(data: Path, gold: dict[str, Any], tmp_path: Path) -> None:
    def break_selects(ex: Any, turn: int, text: str) -> str:
        return "no" if ex.meta["kind"] in ("select", "fill") else text

    worse = scripted_run(data, break_selects)
    base = tmp_path / "base.json"
    base.write_text(json.dumps(baseline_from_results(gold)))
    md = tmp_path / "summary.md"
    r = _gate(
        str(_write(worse, tmp_path / "run")),
        "--baseline",
        str(base),
        "--tolerances",
        str(TOLERANCES),
        "--markdown",
        str(md),
    )
    assert r.exit_code == 1, r.output
    assert "regression" in r.output and "gate failed" in r.output
    assert "FAILED" in md.read_text()


def test_incomparable_runs_are_refused(gold: dict[str, Any], tmp_path: Path) -> None:
    base = tmp_path / "base.json"
    base.write_text(json.dumps(baseline_from_results(gold)))
    for field, label in (("suite", "suite hash"), ("data", "data hash")):
        other = copy.deepcopy(gold)
        key = "hash" if field == "suite" else "data_hash"
        other["run"][field][key] = "f" * 64
        r = _gate(str(_write(other, tmp_path / field)), "--baseline", str(base))
        assert r.exit_code == 2, r.output
        assert "refus" in r.output and label in r.output


def test_missing_baseline_is_refused_with_hint(gold: dict[str, Any], tmp_path: Path) -> None:
    r = _gate(str(_write(gold, tmp_path / "run")), "--baseline", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "--update" in r.output


def test_noise_within_the_interval_passes() -> None:
    m = METRICS["task_completion"]
    base = {"value": 0.80}
    # 4 points below but the baseline is inside the new run's CI: noise, not a regression.
    assert check_metric(m, base, {"value": 0.76, "ci": [0.66, 0.85]}, 0.03).verdict == "pass"
    # Same drop with a tight interval: a real regression.
    assert check_metric(m, base, {"value": 0.76, "ci": [0.74, 0.78]}, 0.03).verdict == "regression"
    # Within tolerance always passes; a rise is an improvement.
    assert check_metric(m, base, {"value": 0.78, "ci": [0.77, 0.79]}, 0.03).verdict == "pass"
    assert check_metric(m, base, {"value": 0.9, "ci": [0.85, 0.95]}, 0.03).verdict == "improved"
    assert check_metric(m, base, None, 0.03).verdict == "missing"


def test_rates_over_too_few_items_are_not_gated() -> None:
    m = METRICS["irrelevance_precision"]
    base = {"value": 1.0, "n": 2}
    new = {"value": 0.4, "n": 5, "ci": [0.0, 0.8]}
    assert check_metric(m, base, new, 0.05).verdict == "too few"
    assert not check_metric(m, base, new, 0.05).failed
    big = {"value": 0.4, "n": 50, "ci": [0.3, 0.5]}
    assert check_metric(m, {"value": 1.0, "n": 50}, big, 0.05).verdict == "regression"


def test_violation_counts_have_no_noise_allowance() -> None:
    m = METRICS["compliance_violations"]
    assert check_metric(m, {"value": 0}, {"value": 1, "ci": [0, 3]}, 0).verdict == "regression"
    assert check_metric(m, {"value": 2}, {"value": 1, "ci": [0, 3]}, 0).verdict == "improved"


def test_tolerance_file_errors_name_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "tol.yaml"
    bad.write_text("metrics:\n  task_compleshun: 0.1\n")
    with pytest.raises(GateRefused, match="task_compleshun"):
        load_tolerances(bad)
    bad.write_text("metrics:\n  bleu: -1\n")
    with pytest.raises(GateRefused, match="metrics.bleu"):
        load_tolerances(bad)
    assert load_tolerances(TOLERANCES)["metrics"]["compliance_violations"] == 0


def test_ignored_metrics_are_not_gated(gold: dict[str, Any]) -> None:
    worse = copy.deepcopy(gold)
    worse["metrics"]["bleu"] = {"value": 0.1, "ci": [0.05, 0.15], "n": 10}
    tol = {"default": 0.02, "metrics": {}, "ignore": ["bleu"]}
    checks = run_gate(baseline_from_results(gold), worse, tol)
    assert "bleu" not in {c.metric for c in checks} and not any(c.failed for c in checks)


def test_update_floor_keeps_the_lower_figure_of_each_metric(
    data: Path, gold: dict[str, Any], tmp_path: Path
) -> None:
    """--update --floor: the baseline becomes the worse of it and the run, metric by metric,
    so both reference runs pass against it; without --floor the run replaces it."""

    def break_selects(ex: Any, turn: int, text: str) -> str:
        return "no" if ex.meta["kind"] in ("select", "fill") else text

    worse = scripted_run(data, break_selects)
    base = tmp_path / "base.json"
    base.write_text(json.dumps(baseline_from_results(gold)))
    worse_file = _write(worse, tmp_path / "worse")
    r = _gate(str(worse_file), "--baseline", str(base), "--update", "--floor")
    assert r.exit_code == 0, r.output
    doc = json.loads(base.read_text())
    for name, stats in doc["metrics"].items():
        lower = min if METRICS[name].higher_is_better else max
        values = (gold["metrics"][name]["value"], worse["metrics"][name]["value"])
        assert stats["value"] == lower(values), name
    assert doc["metrics"]["tool_selection"]["value"] < 1.0
    for run in (gold, worse):
        r = _gate(str(_write(run, tmp_path / "again")), "--baseline", str(base))
        assert r.exit_code == 0, r.output
    assert _gate(str(worse_file), "--baseline", str(base), "--floor").exit_code != 0
