"""The HTML report: a Jinja2 template shipped beside the package, autoescaped."""

from __future__ import annotations

import copy
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from helpers import make_dataset, scripted_run

from toolsft.eval.html import compare_markdown, render_html


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    data = make_dataset(tmp_path_factory.mktemp("data"), per_stage=20)
    base = scripted_run(data)
    worse = scripted_run(data, lambda ex, turn, text: "no call <script>alert(1)</script>")
    return [base, worse]


def test_the_template_is_package_data() -> None:
    template = files("toolsft.eval") / "templates" / "report.html.j2"
    assert template.is_file() and "autoescape" in template.read_text(encoding="utf-8")


def test_report_compares_runs_with_deltas_charts_and_failures(runs: list[dict[str, Any]]) -> None:
    timed = copy.deepcopy(runs)
    timed[0].setdefault("perf", {})["latency_hist_s"] = [0.1, 0.2, 0.2, 0.5]
    page = render_html(timed, ["base", "broken"])
    # `toolsft report --curve` inserts the curve before this exact ending
    assert page.startswith("<!doctype html>") and page.endswith("</body></html>\n")
    assert page.count("<svg") == 4 + 1  # headline, by stage/tool/kind; base's latencies
    assert "100 ms" in page and "500 ms" in page and "<title>2</title>" in page
    assert "broken: request latency: no latency data" in page  # replayed: no timing
    for title in ("Headline metrics", "Task completion by stage", "Most common failures (broken)"):
        assert title in page
    assert '<span class="down">-100.0</span>' in page  # task completion, gold to nothing
    assert "deltas vs <b>base</b>" in page and runs[0]["run"]["suite"]["name"] in page


def test_names_and_reasons_are_escaped(runs: list[dict[str, Any]]) -> None:
    hostile = copy.deepcopy(runs)
    hostile[1]["rows"][0]["reasons"] = ["<img src=x onerror=alert(1)>"]
    page = render_html(hostile, ["<b>base</b>", "a & <script>"])
    assert "<script>" not in page and "<img" not in page and "<b>base</b>" not in page
    assert "a &amp; &lt;script&gt;" in page and "&lt;img src=x onerror=alert(1)&gt;" in page


def test_a_run_without_latencies_says_so(runs: list[dict[str, Any]]) -> None:
    bare = copy.deepcopy(runs[0])
    bare["perf"] = {}
    page = render_html([bare], ["only"])
    assert "only: request latency: no latency data" in page
    assert compare_markdown([bare], ["only"]).startswith("| metric | only |")


def test_report_cli_writes_the_page(runs: list[dict[str, Any]], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from toolsft.cli.main import cli
    from toolsft.eval.results import write_run

    a = write_run(runs[0], tmp_path / "a")
    b = write_run(runs[1], tmp_path / "b")
    out = tmp_path / "r.html"
    res = CliRunner().invoke(cli, ["report", str(a), str(b), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8") == render_html(
        [runs[0], runs[1]], [runs[0]["run"]["name"] or "a", runs[1]["run"]["name"] or "b"]
    )
