"""scripts/paired.py: the paired comparison docs/experiments.md's decisions rest on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO
from helpers import make_dataset, scripted_run

from toolsft.eval.results import write_run
from toolsft.eval.stats import mcnemar_p


def _paired(a: Path, b: Path) -> subprocess.CompletedProcess[str]:
    script = REPO / "scripts" / "paired.py"
    return subprocess.run(
        [sys.executable, str(script), str(a), str(b)], capture_output=True, text=True
    )


def _kinds(results: dict[str, Any]) -> dict[str, str]:
    return {row["id"]: row["groups"]["kind"][0] for row in results["rows"]}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, str], set[str]]:
    """A: the gold turns; B: the same episodes with every select and half the fill
    episodes broken (answered "no" where a call is due)."""
    tmp = tmp_path_factory.mktemp("paired")
    data = make_dataset(tmp / "data", per_stage=150)
    gold = scripted_run(data)
    kinds = _kinds(gold)
    fill = sorted(i for i, k in kinds.items() if k == "fill")
    broken = {i for i, k in kinds.items() if k == "select"} | set(fill[::2])

    def edit(ex: Any, turn: int, text: str) -> str:
        return "no" if ex.meta["id"] in broken else text

    a = write_run(gold, tmp / "a")
    b = write_run(scripted_run(data, edit), tmp / "b")
    return a, b, kinds, broken


def test_counts_discordant_episodes_per_kind_and_tests_them(
    runs: tuple[Path, Path, dict[str, str], set[str]],
) -> None:
    a, b, kinds, broken = runs
    res = _paired(a, b)
    assert res.returncode == 0, res.stderr
    lines = {line.split()[0]: line.split()[1:] for line in res.stdout.splitlines()[2:]}
    n = len(kinds)
    assert f"{n} shared episodes" in res.stdout
    for kind in ("select", "fill"):
        total = sum(k == kind for k in kinds.values())
        lost = sum(kinds[i] == kind for i in broken)
        assert lost > 0
        p = min(1.0, 2 * mcnemar_p(lost, 0))
        assert lines[kind] == [
            str(total),
            str(total),
            str(total - lost),
            str(lost),
            "0",
            f"{p:.4f}",
        ]
    assert lines["all"][:5] == [str(n), str(n), str(n - len(broken)), str(len(broken)), "0"]
    same = sum(k == "no_tool" for k in kinds.values())
    assert same > 0
    assert lines["no_tool"] == [str(same), str(same), str(same), "0", "0", "1.0000"]


def test_refuses_a_file_that_is_not_a_results_file(
    runs: tuple[Path, Path, dict[str, str], set[str]], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"rows": []}')
    res = _paired(runs[0], bad)
    assert res.returncode == 1
    assert str(bad) in res.stderr and "Traceback" not in res.stderr
