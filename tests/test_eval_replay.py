"""The harness end to end without a model: `toolsft eval --engine gold|replay`, report, BFCL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from helpers import DEFAULT_SUITE, make_dataset

from toolsft.cli.main import cli

SHARED_BFCL = Path(__file__).resolve().parents[2] / "shared" / "bfcl"


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_stage=60)


def _eval(*args: str) -> object:
    res = CliRunner().invoke(
        cli, ["eval", "--suite", str(DEFAULT_SUITE), *args], catch_exceptions=False
    )
    assert res.exit_code == 0, res.output
    return res


def test_gold_then_replay_reproduces_scores(data: Path, tmp_path: Path) -> None:
    _eval("--data", str(data), "--engine", "gold", "--out", str(tmp_path / "gold"))
    gold = json.loads((tmp_path / "gold" / "results.json").read_text())
    assert (tmp_path / "gold" / "report.md").read_text().startswith("# toolsft eval")
    assert gold["metrics"]["task_completion"]["value"] == 1.0
    run = gold["run"]
    assert run["suite"]["hash"] and run["data"]["data_hash"] and run["data"]["manifest_hash"]
    assert run["decoding"]["max_tokens"] == 192 and run["engine"]["engine"] == "gold"

    preds = tmp_path / "gold" / "predictions.jsonl"
    lines = [json.loads(x) for x in preds.read_text().splitlines()]
    assert len(lines) == gold["perf"]["requests"]
    # Break the first stage-1 prediction: the replayed run must see exactly that change.
    first = next(i for i, x in enumerate(lines) if "-s1-" in x["key"])
    lines[first]["text"] = "<tool_call>\n{oops"
    preds.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines))
    _eval(
        "--data",
        str(data),
        "--engine",
        "replay",
        "--predictions",
        str(preds),
        "--out",
        str(tmp_path / "replay"),
    )
    rep = json.loads((tmp_path / "replay" / "results.json").read_text())
    assert rep["run"]["data"]["data_hash"] == run["data"]["data_hash"]
    failed = [r for r in rep["rows"] if not r["ok"]]
    assert len(failed) == 1 and failed[0]["id"] == lines[first]["key"].split("#")[0]


def test_limit_and_stages_select_rows(data: Path, tmp_path: Path) -> None:
    _eval(
        "--data",
        str(data),
        "--engine",
        "gold",
        "--stages",
        "3",
        "--limit",
        "5",
        "--out",
        str(tmp_path / "r"),
        "--quiet",
    )
    res = json.loads((tmp_path / "r" / "results.json").read_text())
    assert res["run"]["data"]["rows"] == 5
    assert {r["groups"]["stage"][0] for r in res["rows"]} == {"3"}
    assert res["perf"]["requests"] == 10  # call turn + answer turn


def test_samples_give_pass_hat_k(data: Path, tmp_path: Path) -> None:
    _eval(
        "--data",
        str(data),
        "--engine",
        "gold",
        "--samples",
        "3",
        "--stages",
        "1",
        "--out",
        str(tmp_path / "k"),
        "--quiet",
    )
    res = json.loads((tmp_path / "k" / "results.json").read_text())
    assert set(res["pass_k"]) == {"pass^1", "pass^2", "pass^3"}
    assert res["pass_k"]["pass^3"]["value"] == 1.0


def test_html_report_compares_runs(data: Path, tmp_path: Path) -> None:
    _eval("--data", str(data), "--engine", "gold", "--out", str(tmp_path / "a"), "--quiet")
    out = tmp_path / "report.html"
    md = tmp_path / "cmp.md"
    res = CliRunner().invoke(
        cli,
        [
            "report",
            str(tmp_path / "a"),
            str(tmp_path / "a" / "results.json"),
            "--labels",
            "base,stage3",
            "--out",
            str(out),
            "--markdown",
            str(md),
        ],
    )
    assert res.exit_code == 0, res.output
    page = out.read_text()
    assert page.startswith("<!doctype html>") and page.count("<svg") >= 4
    assert "Task completion by stage" in page and "stage3" in page
    assert md.read_text().startswith("| metric | base | stage3 |")


def test_clear_errors(data: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(
        cli,
        [
            "eval",
            "--suite",
            str(DEFAULT_SUITE),
            "--data",
            str(tmp_path / "none"),
            "--engine",
            "gold",
        ],
    )
    assert res.exit_code != 0 and "toolsft gen" in res.output
    res = runner.invoke(
        cli, ["eval", "--suite", str(DEFAULT_SUITE), "--data", str(data), "--engine", "replay"]
    )
    assert res.exit_code != 0 and "--predictions" in res.output
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"nope": 1}\n')
    res = runner.invoke(
        cli,
        [
            "eval",
            "--suite",
            str(DEFAULT_SUITE),
            "--data",
            str(data),
            "--engine",
            "replay",
            "--predictions",
            str(bad),
        ],
    )
    assert res.exit_code != 0 and "bad.jsonl:1" in res.output


def test_stale_data_is_refused(data: Path, tmp_path: Path) -> None:
    stale = tmp_path / "stale"
    stale.mkdir()
    for sub in ("stage1",):
        (stale / sub).mkdir()
        (stale / sub / "test.jsonl").write_text((data / sub / "test.jsonl").read_text())
    manifest = json.loads((data / "manifest.json").read_text())
    manifest["suite_hash"] = "0" * 64
    (stale / "manifest.json").write_text(json.dumps(manifest))
    res = CliRunner().invoke(
        cli, ["eval", "--suite", str(DEFAULT_SUITE), "--data", str(stale), "--engine", "gold"]
    )
    assert res.exit_code != 0 and "suite_hash" in res.output


@pytest.mark.skipif(not SHARED_BFCL.is_dir(), reason="../shared/bfcl is absent")
def test_bfcl_run_with_replayed_gold(tmp_path: Path) -> None:
    from toolsft.chat.template import render_calls
    from toolsft.engines.base import Decoding
    from toolsft.engines.replay import ReplayEngine, request_key
    from toolsft.eval.bfcl import gold_calls, load_category
    from toolsft.eval.bfcl_run import run_bfcl

    entries = load_category(SHARED_BFCL, "simple_python")[:20]
    script = {}
    for e in entries:
        names = e.name_map()
        calls = [type(c)(names.get(c.name, c.name), c.arguments) for c in gold_calls(e)]
        script[request_key(e.id, 0, 0)] = render_calls(calls)
    res = run_bfcl(ReplayEngine(script), SHARED_BFCL, "simple_python", Decoding(), limit=20)
    assert res["accuracy"]["value"] == 1.0, res["errors"]
    assert res["accuracy"]["n"] == 20
