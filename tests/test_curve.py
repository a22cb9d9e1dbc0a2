"""`toolsft curve`: the snapshot grid, the fixed stratified episode set, curve.json and its
plot, adapter swapping in one engine, and the command end to end on tiny-random."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
from click.testing import CliRunner

from toolsft.cli.main import cli
from toolsft.eval.curve import Point, curve_document, curve_markdown, curve_svg, point_entry
from toolsft.eval.episode_set import row_key, select, stratified
from toolsft.train.snapshots import is_point
from toolsft.types import Example

REPO = Path(__file__).resolve().parents[1]
tiny_home = fixtures_train.tiny_home


def test_snapshots_fall_on_a_geometric_grid() -> None:
    assert [s for s in range(1, 420) if is_point(s, 25)] == [25, 50, 100, 200, 400]
    assert [s for s in range(1, 20) if is_point(s, 3)] == [3, 6, 12]
    assert not any(is_point(s, 0) for s in range(5))


def _examples(counts: dict[str, int]) -> list[Example]:
    out = []
    for kind, n in counts.items():
        for i in range(n):
            out.append(Example((), (), {"id": f"{kind}-{i}", "stage": 1, "kind": kind}))
    return out


def test_episode_set_takes_every_kind_and_is_reproducible() -> None:
    rows = _examples({"select": 200, "fill": 150, "clarify": 7, "parallel": 30})
    a = stratified(rows, 100, 20, random.Random(0))
    b = stratified(rows, 100, 20, random.Random(0))
    assert a == b
    assert len(a.ids) == 100
    assert a.by_kind["clarify"] == 7 and a.short_kinds == ("clarify",)
    assert all(a.by_kind[k] >= 20 for k in ("select", "fill", "parallel"))
    picked = select(rows, a.ids)
    assert [row_key(e) for e in picked] == list(a.ids)
    assert stratified(rows, 100, 20, random.Random(1)).ids != a.ids


def test_an_episode_missing_from_the_data_is_an_error() -> None:
    from toolsft.errors import ToolsftError

    with pytest.raises(ToolsftError, match="not in the data"):
        select(_examples({"select": 3}), ["stage1:select-0", "stage1:nope"])


def _results(tc: float, n: int = 40) -> dict[str, Any]:
    fig = {"value": tc, "ci": [max(0.0, tc - 0.1), min(1.0, tc + 0.1)], "n": n}
    return {
        "metrics": {
            "task_completion": {**fig, "by": {"kind": {"select": fig}, "stage": {"1": fig}}},
            "tool_selection": fig,
        }
    }


def test_curve_document_table_and_plot() -> None:
    entries = [
        point_entry(Point("base", 0, 0, 0, 0, "points/base/results.json"), _results(0.05)),
        point_entry(Point("stage1", 1, 50, 50, 9000, "p"), _results(0.4)),
        point_entry(Point("stage1-step00025", 1, 25, 25, 4000, "p"), _results(0.2)),
        point_entry(Point("stage2", 2, 50, 100, 18000, "p"), _results(0.6)),
    ]
    doc = curve_document(entries, {"split": "val"}, {"n": 40})
    assert [p["global_step"] for p in doc["points"]] == [0, 25, 50, 100]
    assert doc["points"][1]["task_completion_by"]["kind"]["select"]["value"] == 0.2
    md = curve_markdown(doc)
    assert "| stage1-step00025 | 1 | 25 | 4,000 | 20.0 [10.0, 30.0]" in md
    svg = curve_svg(doc)
    assert svg.count("<polyline") == 2  # task completion and selection; the others are absent
    assert svg.count("stroke-dasharray") == 1  # the end of stage 1; the last stage has none


@pytest.fixture(scope="module")
def curve_run(tiny_home: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("curve")
    runner = CliRunner()
    env = {"TOOLSFT_HOME": str(tiny_home)}
    gen = runner.invoke(
        cli,
        ["gen", "--suite", str(REPO / "tool_schemas/commerce"), "--out", str(root / "data")]
        + ["--per-stage", "60", "--seed", "0", "--group", "8", "--show-all", "--suite-order"],
    )
    assert gen.exit_code == 0, gen.output
    args = ["curve", "--suite", str(REPO / "tool_schemas/commerce"), "--data", str(root / "data")]
    args += ["--out", str(root / "run"), "--model", "tiny-random", "--max-steps", "2"]
    args += ["--first-point", "1", "--episodes", "10", "--per-kind", "1", "--stages", "1"]
    result = runner.invoke(cli, [*args, "--engine", "gold"], env=env)
    assert result.exit_code == 0, result.output
    return root


def test_curve_scores_base_snapshots_and_stage_on_one_episode_set(curve_run: Path) -> None:
    folder = curve_run / "run" / "curve"
    doc = json.loads((folder / "curve.json").read_text())
    assert [(p["name"], p["global_step"]) for p in doc["points"]] == [
        ("base", 0),
        ("stage1-step00001", 1),
        ("stage1", 2),
    ]
    episodes = json.loads((folder / "episodes.json").read_text())
    assert episodes["n"] == doc["episodes"]["n"] >= 10
    for p in doc["points"]:
        rows = json.loads((folder / p["results"]).read_text())["rows"]
        ids = sorted(f"stage{r['groups']['stage'][0]}:{r['id']}" for r in rows)
        assert ids == sorted(episodes["ids"])
        # the gold engine replays the targets: the harness itself loses nothing
        assert p["metrics"]["task_completion"]["value"] == 1.0
    assert doc["points"][2]["tokens_seen"] > doc["points"][1]["tokens_seen"] > 0
    assert "<polyline" in (folder / "curve.svg").read_text()


def test_a_rerun_scores_nothing_again(curve_run: Path, tiny_home: Path) -> None:
    folder = curve_run / "run" / "curve"
    before = {p: p.stat().st_mtime_ns for p in folder.glob("points/*/results.json")}
    args = ["curve", "--suite", str(REPO / "tool_schemas/commerce"), "--data"]
    args += [str(curve_run / "data"), "--out", str(curve_run / "run"), "--model", "tiny-random"]
    args += ["--stages", "1", "--engine", "gold", "--score-only"]
    result = CliRunner().invoke(cli, args, env={"TOOLSFT_HOME": str(tiny_home)})
    assert result.exit_code == 0, result.output
    after = {p: p.stat().st_mtime_ns for p in folder.glob("points/*/results.json")}
    assert before == after and len(after) == 3


def test_score_data_scores_a_data_variant_on_the_first_runs_episodes(
    curve_run: Path, tiny_home: Path
) -> None:
    """A variant trained on other rows (here: stage 3 with two-result answers) is scored on
    the episodes of the run it is compared with, not on its own data's."""
    runner, env = CliRunner(), {"TOOLSFT_HOME": str(tiny_home)}
    suite = str(REPO / "tool_schemas/commerce")
    gen = ["gen", "--suite", suite, "--out", str(curve_run / "data2"), "--per-stage", "60"]
    gen += ["--seed", "0", "--group", "8", "--show-all", "--suite-order", "--two-call", "0.5"]
    assert runner.invoke(cli, gen).exit_code == 0
    args = ["curve", "--suite", suite, "--data", str(curve_run / "data2"), "--model"]
    args += ["tiny-random", "--max-steps", "1", "--first-point", "1", "--episodes", "10"]
    args += ["--per-kind", "1", "--stages", "1", "--engine", "gold"]
    own = runner.invoke(cli, [*args, "--out", str(curve_run / "own")], env=env)
    paired = runner.invoke(
        cli,
        [*args, "--out", str(curve_run / "paired"), "--score-data", str(curve_run / "data")],
        env=env,
    )
    assert own.exit_code == 0 and paired.exit_code == 0, own.output + paired.output

    def episodes(run: str) -> dict[str, Any]:
        return json.loads((curve_run / run / "curve" / "episodes.json").read_text())

    assert episodes("paired") == episodes("run")
    assert episodes("own")["data_hash"] != episodes("run")["data_hash"]
    doc = json.loads((curve_run / "paired" / "curve" / "curve.json").read_text())
    assert doc["run"]["scored_on"] == str(curve_run / "data")
    assert doc["run"]["data"] == str(curve_run / "data2")


def test_hf_engine_swaps_adapters_and_restores_the_base(curve_run: Path, tiny_home: Path) -> None:
    import torch

    from toolsft.engines.hf import HFEngine
    from toolsft.models import resolve_model

    engine = HFEngine(resolve_model("tiny-random", tiny_home), batch_size=2, device="cpu")
    base = {k: v.clone() for k, v in engine.model.state_dict().items()}
    changed = []
    for adapter in (
        curve_run / "run" / "snapshots" / "stage1-step00001",
        curve_run / "run" / "stage1",
    ):
        engine.use_adapter(adapter)
        now = engine.model.state_dict()
        changed.append({k for k in base if not torch.equal(base[k], now[k])})
    # the step-1 snapshot may equal the base (warmup's first step runs at learning rate 0)
    assert any("q_proj" in k for k in changed[-1])
    assert not any("embed" in k for c in changed for k in c)
    engine.use_adapter(None)
    assert all(torch.equal(base[k], v) for k, v in engine.model.state_dict().items())


def test_report_adds_the_learning_curve(curve_run: Path, tmp_path: Path) -> None:
    folder = curve_run / "run" / "curve"
    out = tmp_path / "report.html"
    args = ["report", str(folder / "points" / "base"), str(folder / "points" / "stage1")]
    result = CliRunner().invoke(cli, [*args, "--out", str(out), "--curve", str(folder)])
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "<h2>Learning curve</h2>" in page and "<polyline" in page
    assert page.count("stage1-step00001") >= 2  # the headline table and the by-kind table
    assert (folder / "curve.html").read_text().startswith("<!doctype html>")


def test_report_refuses_a_file_that_is_no_curve(curve_run: Path, tmp_path: Path) -> None:
    bad = tmp_path / "curve.json"
    bad.write_text('{"schema": "toolsft.eval/1"}')
    base = curve_run / "run" / "curve" / "points" / "base"
    args = ["report", str(base), "--out", str(tmp_path / "r.html"), "--curve", str(bad)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert f"{bad}:schema: not a curve" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "r.html").exists()
