"""`toolsft gate`: exit 0 on pass, 1 on regression, 2 when runs cannot be compared; the
statistics behind the verdicts; the committed baselines; the false-alarm benchmark."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from helpers import make_dataset, scripted_run

from toolsft.cli.main import cli
from toolsft.eval.baseline import BASELINE_SCHEMA, baseline_from_results, dump_baseline
from toolsft.eval.gate import GateRefused, load_baseline, load_tolerances, run_gate
from toolsft.eval.metrics import METRICS, summarize
from toolsft.eval.results import write_run
from toolsft.eval.stats import (
    binom_sf,
    count_rate_p,
    holm,
    mcnemar_p,
    newcombe_p,
    newcombe_upper,
    sign_flip_p,
    wilson_interval,
)

REPO = Path(__file__).resolve().parents[1]
TOLERANCES = REPO / "evals" / "tolerances.yaml"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_stage=100)


@pytest.fixture(scope="module")
def gold(data: Path) -> dict[str, Any]:
    return scripted_run(data)


def _break(ids: set[str]) -> Any:
    """A script edit that answers "no" on the episodes in `ids` (each then fails)."""

    def edit(ex: Any, turn: int, text: str) -> str:
        return "no" if ex.meta["id"] in ids else text

    return edit


def _break_selects(ex: Any, turn: int, text: str) -> str:
    return "no" if ex.meta["kind"] in ("select", "fill") else text


def _gate(*args: str) -> Any:
    return CliRunner().invoke(cli, ["gate", *args])


def _base_file(results: dict[str, Any], path: Path, rows: bool = True) -> Path:
    doc = baseline_from_results(results)
    if not rows:
        doc.pop("rows")
    path.write_text(dump_baseline(doc))
    return path


def test_update_then_pass(gold: dict[str, Any], tmp_path: Path) -> None:
    res_file = write_run(gold, tmp_path / "run")
    base = tmp_path / "baselines" / "commerce.json"
    r = _gate(str(res_file), "--baseline", str(base), "--update")
    assert r.exit_code == 0, r.output
    assert "task_completion: 100.0% (new)" in r.output
    doc = json.loads(base.read_text())
    assert doc["schema"] == BASELINE_SCHEMA
    assert len(doc["rows"]) == 60 and set(doc["rows"][0]) == {"id", "sample", "values"}
    md = tmp_path / "summary.md"
    r = _gate(str(res_file), "--baseline", str(base), "--tolerances", str(TOLERANCES),
              "--markdown", str(md))  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "gate passed" in r.output and "paired on 60 episodes" in r.output
    text = md.read_text()
    assert "| Task completion | 100.0 | 100.0 | 0.0 | 3.0 | 1.000 | exact McNemar |" in text


def test_update_writes_paths_under_the_working_directory_relative(
    gold: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A committed baseline must not carry this machine's folders."""
    checkout = tmp_path / "checkout"
    run = dict(gold["run"], suite={**gold["run"]["suite"], "path": str(checkout / "tool_schemas")})
    res_file = write_run({**gold, "run": run}, tmp_path / "run")
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    assert _gate(str(res_file), "--baseline", "b.json", "--update").exit_code == 0
    doc = json.loads((checkout / "b.json").read_text())
    assert doc["run"]["suite"]["path"] == "tool_schemas"
    assert str(tmp_path) not in (checkout / "b.json").read_text()


def test_update_prints_what_changed(data: Path, gold: dict[str, Any], tmp_path: Path) -> None:
    base = _base_file(gold, tmp_path / "base.json")
    worse = write_run(scripted_run(data, _break_selects), tmp_path / "worse")
    r = _gate(str(worse), "--baseline", str(base), "--update")
    assert r.exit_code == 0, r.output
    new_tc = json.loads(base.read_text())["metrics"]["task_completion"]["value"]
    assert f"task_completion: 100.0% -> {100 * new_tc:.1f}%" in r.output
    assert "compliance:" not in r.output  # unchanged metrics are not listed
    r = _gate(str(worse), "--baseline", str(base), "--update")
    assert "no metric changed" in r.output


def test_regression_exits_1_and_names_the_test(
    data: Path, gold: dict[str, Any], tmp_path: Path
) -> None:
    base = _base_file(gold, tmp_path / "base.json")
    md = tmp_path / "summary.md"
    worse = write_run(scripted_run(data, _break_selects), tmp_path / "run")
    r = _gate(str(worse), "--baseline", str(base), "--tolerances", str(TOLERANCES),
              "--markdown", str(md))  # fmt: skip
    assert r.exit_code == 1, r.output
    assert "regression" in r.output and "gate failed" in r.output
    text = md.read_text()
    assert "FAILED" in text and "Task completion" in text
    row = next(line for line in text.splitlines() if line.startswith("| Task completion"))
    assert "<0.001" in row and "exact McNemar" in row and "regression" in row


def test_unpaired_baseline_still_catches_a_real_drop(
    data: Path, gold: dict[str, Any], tmp_path: Path
) -> None:
    base = _base_file(gold, tmp_path / "base.json", rows=False)
    worse = write_run(scripted_run(data, _break_selects), tmp_path / "run")
    r = _gate(str(worse), "--baseline", str(base))
    assert r.exit_code == 1, r.output
    assert "unpaired" in r.output
    same = write_run(gold, tmp_path / "same")
    assert _gate(str(same), "--baseline", str(base)).exit_code == 0


def test_a_drop_within_noise_passes_and_a_real_one_fails(
    data: Path, gold: dict[str, Any], tmp_path: Path
) -> None:
    """3 of 60 episodes lost (5 points, over the 3-point tolerance): exact McNemar p = 1/8,
    not significant, so not a regression. 15 lost: p < 0.001, a regression."""
    base = load_baseline(_base_file(gold, tmp_path / "base.json"))
    ids = sorted(r["id"] for r in gold["rows"] if "tool_selection" in r["values"])
    tol = load_tolerances(TOLERANCES)
    few = run_gate(base, scripted_run(data, _break(set(ids[:3]))), tol)
    tc = next(c for c in few.checks if c.metric == "task_completion")
    assert tc.delta == pytest.approx(-0.05) and tc.p_raw == pytest.approx(1 / 8)
    assert tc.verdict == "pass" and not few.failed
    many = run_gate(base, scripted_run(data, _break(set(ids[:15]))), tol)
    tc = next(c for c in many.checks if c.metric == "task_completion")
    assert tc.verdict == "regression" and tc.p is not None and tc.p < 0.001


def test_incomparable_runs_are_refused(gold: dict[str, Any], tmp_path: Path) -> None:
    base = _base_file(gold, tmp_path / "base.json")
    for field, key, label in (
        ("suite", "hash", "suite hash"),
        ("data", "data_hash", "data hash"),
        ("data", "split", "split"),
    ):
        other = json.loads(json.dumps(gold))
        other["run"][field][key] = "f" * 64 if key != "split" else "train"
        res = write_run(other, tmp_path / key)
        r = _gate(str(res), "--baseline", str(base))
        assert r.exit_code == 2, r.output
        line = r.output.strip()
        assert line.startswith(f"Error: {res}:run.{field}.{key}:") and "\n" not in line
        assert "refusing to compare" in line and label in line


def test_missing_baseline_is_refused_with_hint(gold: dict[str, Any], tmp_path: Path) -> None:
    r = _gate(str(write_run(gold, tmp_path / "run")), "--baseline", str(tmp_path / "nope.json"))
    assert r.exit_code == 2 and "--update" in r.output and "nope.json" in r.output


def test_ignored_metrics_are_not_gated(data: Path, gold: dict[str, Any]) -> None:
    worse = scripted_run(data, _break_selects)
    failing = {c.metric for c in run_gate(baseline_from_results(gold), worse, {}).failed}
    assert "task_completion" in failing
    tol = {"default": 0.02, "metrics": {}, "ignore": sorted(failing)}
    result = run_gate(baseline_from_results(gold), worse, tol)
    assert not failing & {c.metric for c in result.checks} and not result.failed
    with pytest.raises(GateRefused, match="nothing to compare"):
        run_gate(baseline_from_results(gold), worse, {"ignore": list(METRICS)})


def test_update_floor_keeps_the_lower_figure_of_each_metric(
    data: Path, gold: dict[str, Any], tmp_path: Path
) -> None:
    """--update --floor: the baseline becomes the worse of it and the run, metric by metric,
    so both reference runs pass against it; a floor mixes runs, so it keeps no rows."""
    worse = scripted_run(data, _break_selects)
    base = _base_file(gold, tmp_path / "base.json")
    worse_file = write_run(worse, tmp_path / "worse")
    r = _gate(str(worse_file), "--baseline", str(base), "--update", "--floor")
    assert r.exit_code == 0, r.output
    doc = json.loads(base.read_text())
    assert "rows" not in doc and doc["schema"] == BASELINE_SCHEMA
    for name, stats in doc["metrics"].items():
        lower = min if METRICS[name].higher_is_better else max
        values = (gold["metrics"][name]["value"], worse["metrics"][name]["value"])
        assert stats["value"] == lower(values), name
    for run in (gold, worse):
        r = _gate(str(write_run(run, tmp_path / "again")), "--baseline", str(base))
        assert r.exit_code == 0, r.output
    assert _gate(str(worse_file), "--baseline", str(base), "--floor").exit_code == 2


@pytest.mark.parametrize(
    "name", sorted(p.name for p in (REPO / "evals" / "baselines").glob("*.json"))
)
def test_committed_baselines_are_accepted(name: str) -> None:
    base = load_baseline(REPO / "evals" / "baselines" / name)
    assert base["metrics"]["task_completion"]["n"] > 0


def test_committed_tolerances_are_valid() -> None:
    tol = load_tolerances(TOLERANCES)
    assert tol["alpha"] == 0.05 and tol["metrics"]["compliance_violations"] == 0
    assert set(tol["metrics"]) <= set(METRICS)


# The statistics, against values worked out by hand or by brute force.


def test_wilson_interval_does_not_collapse_at_the_edges() -> None:
    lo, hi = wilson_interval(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(18, 18)
    assert hi == 1 and lo == pytest.approx(0.8241, abs=1e-4)
    s = summarize(METRICS["task_completion"], [[0, 1]] * 18, seed=0)
    assert s is not None and s["ci"][0] == 0 and s["ci"][1] > 0.15  # not [0, 0]


def test_binomial_tail_and_mcnemar_are_exact() -> None:
    for n, p in ((7, 0.5), (12, 0.3), (40, 0.9)):
        for k in range(n + 2):
            brute = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))
            assert binom_sf(k, n, p) == pytest.approx(brute, rel=1e-9, abs=1e-15)
    assert mcnemar_p(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_p(3, 0) == pytest.approx(1 / 8)
    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(0, 4) == 1.0


def test_newcombe_p_matches_its_interval() -> None:
    """p < alpha exactly where the one-sided (1 - alpha) interval excludes 0; n/n -> 17/18
    (one episode) is noise, not the certain drop a collapsed [1, 1] interval made of it."""
    z95 = 1.6448536269514722
    for base, new, n in ((1.0, 17 / 18, 18), (1.0, 14 / 18, 18), (0.7, 0.55, 60), (0.5, 0.4, 300)):
        p = newcombe_p(base, n, new, n)
        assert (p < 0.05) == (newcombe_upper(new, n, base, n, z95) < 0)
    assert newcombe_p(1.0, 18, 17 / 18, 18) > 0.1
    assert newcombe_p(1.0, 60, 0.7, 60) < 0.001
    assert newcombe_p(0.5, 60, 0.6, 60) == 1.0


def test_count_test_and_holm() -> None:
    # 0 violations before, 4 now over the same number of episodes: P = (1/2)^4.
    assert count_rate_p(0, 60, 4, 60) == pytest.approx(1 / 16)
    assert count_rate_p(3, 60, 1, 60) > 0.9
    assert holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert holm([0.5]) == [0.5]


def test_sign_flip_agrees_with_exact_mcnemar_on_pass_fail() -> None:
    base = np.array([[1.0, 1.0]] * 40 + [[0.0, 1.0]] * 20)
    new = base.copy()
    new[:8, 0] = 0  # 8 lost
    new[40:42, 0] = 1  # 2 won

    def worse(b: np.ndarray, n: np.ndarray) -> np.ndarray:
        return b[..., 0] / b[..., 1] - n[..., 0] / n[..., 1]

    p = sign_flip_p(base, new, worse, np.random.default_rng(0), 20000)
    assert p == pytest.approx(mcnemar_p(8, 2), abs=0.01)
    assert sign_flip_p(base, base, worse, np.random.default_rng(0)) == 1.0


# The benchmark, small: same-model runs rarely fail the gate, a real drop often does.


def _benchmark() -> Any:
    path = REPO / "benchmarks" / "gate_false_alarm.py"
    spec = importlib.util.spec_from_file_location("gate_false_alarm", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_false_alarm_benchmark_small() -> None:
    bench = _benchmark()
    same = bench.measure("seeds", 60, True, trials=60, seed=1)
    assert same["false_alarms"] <= 3  # <= 5% of 60 gate runs of one model against itself
    unpaired = bench.measure("resampled", 60, False, trials=40, seed=1, drop=0.3)
    assert unpaired["false_alarms"] <= 2
    assert unpaired["power"] >= 0.8  # a 30-point drop is caught
