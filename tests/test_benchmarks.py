"""Benchmarks are scripts that print figures (no timed tests); this only checks they run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import fixtures_train
import pytest
from conftest import REPO

tiny_home = fixtures_train.tiny_home


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


def test_prefix_grad_benchmark_runs_and_checks_the_losses(tiny_home: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "prefix_grad.py"),
            *("--model", "tiny-random", "--home", str(tiny_home)),
            *("--prefix", "40", "--rows", "3", "--row-tokens", "8", "--repeat", "1"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    assert "s per step" in res.stdout and "losses agree" in res.stdout


def test_other_benchmarks_at_least_parse_their_options() -> None:
    for script in (
        "train_throughput.py",
        "eval_throughput.py",
        "prefix_packing.py",
        "prefix_grad.py",
    ):
        res = subprocess.run(
            [sys.executable, str(REPO / "benchmarks" / script), "--help"],
            cwd=REPO,
            capture_output=True,
            text=True,
        )
        assert res.returncode == 0 and "usage" in res.stdout.lower(), (script, res.stderr[-500:])


@pytest.mark.slow  # ~25 s: three processes, each loading torch, transformers and TRL
def test_trl_compare_runs_both_trainers_on_the_same_data(tiny_home: Path) -> None:
    res = subprocess.run(
        [
            sys.executable,
            str(REPO / "benchmarks" / "trl_compare.py"),
            *("--model", "tiny-random", "--home", str(tiny_home)),
            *("--steps", "2", "--warmup", "1", "--rows", "16"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert any(x.startswith("toolsft ") for x in lines) and any(x.startswith("trl ") for x in lines)
    assert "same data: True" in res.stdout and "ratio toolsft / TRL" in res.stdout


def test_trl_compare_parses_its_options() -> None:
    res = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "trl_compare.py"), "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0 and "--trl" in res.stdout and "--peak-tflops" in res.stdout
