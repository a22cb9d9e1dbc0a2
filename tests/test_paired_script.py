"""scripts/paired.py: the paired comparison docs/experiments.md's decisions rest on."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def _run(path: Path, passed: dict[str, bool]) -> Path:
    rows = [
        {
            "id": rid,
            "sample": 0,
            "groups": {"kind": [rid.split("-")[0]]},
            "values": {"task_completion": [float(ok), 1]},
        }
        for rid, ok in passed.items()
    ]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_counts_discordant_episodes_per_kind_and_tests_them(tmp_path: Path) -> None:
    ids = [f"multi-{i}" for i in range(12)] + [f"select-{i}" for i in range(6)]
    a = _run(tmp_path / "a.json", {i: i.startswith("select") for i in ids})
    b = _run(tmp_path / "b.json", {i: True for i in ids[:-1]} | {ids[-1]: False, "extra-0": True})
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "paired.py"), str(a), str(b)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    lines = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert "18 shared episodes" in out  # B's extra episode is not paired
    assert lines["multi"] == ["12", "0", "12", "0", "12", "0.0005"]  # 2 * 0.5**12
    assert lines["select"] == ["6", "6", "5", "1", "0", "1.0000"]
    assert lines["all"] == ["18", "6", "17", "1", "12", "0.0034"]
