"""Benchmarks are scripts that print figures (no timed tests); this only checks they run."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO


def test_gen_throughput_script_runs_and_reports() -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "gen_throughput.py"),
            "--rows",
            "30",
            "--repeat",
            "1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "verified examples/s" in out and "generation" in out and "validation" in out


def test_other_benchmarks_at_least_parse_their_options() -> None:
    for script in ("train_throughput.py", "eval_throughput.py", "prefix_packing.py"):
        res = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / script), "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0 and "usage" in res.stdout.lower(), (script, res.stderr[-500:])
