"""The demo plan is pure data: its steps, their order and the gate wiring."""

from __future__ import annotations

from pathlib import Path

from toolsft.demo.plan import BUDGETS, build_plan, choose_budget


def test_budget_choice() -> None:
    assert choose_budget(quick=True, gpu=False).model == "tiny-random"
    assert choose_budget(quick=False, gpu=False).device == "cpu"
    assert choose_budget(quick=False, gpu=True).rows_per_stage > BUDGETS["cpu"].rows_per_stage
    assert choose_budget(quick=False, gpu=False, model="my/model").model == "my/model"


def test_plan_runs_the_curriculum_in_order(tmp_path: Path) -> None:
    baseline = tmp_path / "base.json"
    baseline.write_text("{}")
    plan = build_plan(
        Path("tool_schemas/commerce"),
        BUDGETS["quick"],
        tmp_path / "runs",
        tmp_path / "reports",
        baseline,
    )
    names = [s.name for s in plan.steps]
    assert names[:2] == ["gen", "eval base"]
    assert names.index("train stage 1") < names.index("eval stage 1") < names.index("train stage 2")
    assert names[-2:] == ["report", "gate"]
    train2 = next(s for s in plan.steps if s.name == "train stage 2")
    assert train2.argv[train2.argv.index("--out") + 1] == str(tmp_path / "runs")
    constrained = next(s for s in plan.steps if s.name == "eval stage 3 constrained")
    assert "--constrained" in constrained.argv
    assert plan.final == tmp_path / "reports" / "stage3" / "results.json"
    report = next(s for s in plan.steps if s.name == "report")
    assert report.argv.count("--labels") == 1 and str(tmp_path / "reports" / "base") in report.argv


def test_no_gate_step_without_a_baseline(tmp_path: Path) -> None:
    plan = build_plan(
        Path("tool_schemas/commerce"), BUDGETS["cpu"], tmp_path, tmp_path, tmp_path / "missing.json"
    )
    assert "gate" not in [s.name for s in plan.steps]
    assert all("--engine" in s.argv for s in plan.steps if s.report is not None)
