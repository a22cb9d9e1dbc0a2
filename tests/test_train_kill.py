"""A real kill: SIGKILL `toolsft train` mid-run, then `--resume` finishes from the checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fixtures_train import tiny_data, tiny_home  # noqa: F401  (pytest fixtures)

MAX_STEPS = 12


def _train(data: Path, out: Path, home: Path, *extra: str) -> subprocess.Popen[bytes]:
    argv = [
        sys.executable,
        "-m",
        "toolsft.cli",
        "train",
        "--stage",
        "1",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "tiny-random",
        "--max-steps",
        str(MAX_STEPS),
        "--save-steps",
        "2",
        "--batch-size",
        "1",
        "--grad-accum",
        "1",
        "--early-stopping-patience",
        "0",
        *extra,
    ]
    env = {**os.environ, "TOOLSFT_HOME": str(home), "OMP_WAIT_POLICY": "PASSIVE"}
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_sigkill_then_resume_finishes_the_same_run(
    tiny_data: Path,  # noqa: F811
    tiny_home: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    proc = _train(tiny_data, out, tiny_home)
    ckpts = out / "stage1" / "checkpoints"
    deadline = time.monotonic() + 240
    while not any(ckpts.glob("checkpoint-*/trainer_state.json")):
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:] if proc.stdout else ""
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "stage1" / "run.json").exists(), "a killed stage must not look finished"
    killed_at = max(int(p.name.split("-")[1]) for p in ckpts.glob("checkpoint-*"))
    assert killed_at < MAX_STEPS
    # A kill while a checkpoint is being written leaves a folder without trainer_state.json:
    # resume must skip it rather than crash on it.
    (ckpts / f"checkpoint-{MAX_STEPS - 1}").mkdir(exist_ok=True)

    resumed = _train(tiny_data, out, tiny_home, "--resume")
    log = resumed.communicate(timeout=300)[0].decode()
    assert resumed.returncode == 0, log[-3000:]
    metrics = json.loads((out / "stage1" / "metrics.json").read_text())
    assert metrics["global_step"] == MAX_STEPS
    steps = [h["step"] for h in metrics["log_history"] if "loss" in h]
    assert steps and min(steps) > 1, "resumed from a checkpoint, not from step 1"
    assert json.loads((out / "stage1" / "run.json").read_text())
