"""Hostile use of `gen`, `train` and `export-bfcl`: absurd row counts, a `gen` stopped by SIGTERM
or Ctrl-C, a checkpoint whose weights are gone, options the device cannot run, broken datasets.

Each case ends in a correct result or the contract's one line (`Error: ...`, exit 2, no
traceback) naming the option or file, and nothing is lost or left behind.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
from click.testing import CliRunner
from fixtures_train import tiny_config
from helpers import DEFAULT_SUITE, make_dataset
from helpers import error_line as _error_line

from toolsft.cli.main import cli
from toolsft.manifest import verify_dataset

tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home


def _invoke(*args: str, env: dict[str, str] | None = None) -> Any:
    return CliRunner().invoke(cli, list(args), env=env)


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def _partials(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f".{out.name}.partial-*"))


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("pristine") / "data", per_stage=10)


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    """A fresh copy of a finished dataset for each test to break."""
    return Path(shutil.copytree(pristine, tmp_path / "data"))


# --- gen: row counts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--per-stage", "99999999999999999999"),
        ("--per-stage", "1000001"),
        ("--per-stage", "0"),
        ("--group", "99999999999999999999"),
        ("--group", "0"),
    ],
)
def test_gen_row_counts_are_bounded(tmp_path: Path, option: str, value: str) -> None:
    out = tmp_path / "gx2"
    args = ["gen", "--suite", str(DEFAULT_SUITE), "--out", str(out), option, value]
    start = time.monotonic()
    line = _error_line(_invoke(*args))
    assert time.monotonic() - start < 10, "refused before any work"
    assert option in line and value in line, line
    assert not out.exists() and _partials(out) == []


@pytest.mark.parametrize(
    ("key", "value"),
    [("per_stage", "99999999999999999999"), ("group", "0"), ("entity_swap", ".nan")],
)
def test_gen_config_row_counts_are_bounded(tmp_path: Path, key: str, value: str) -> None:
    cfg = tmp_path / "gen.yaml"
    cfg.write_text(f"gen:\n  {key}: {value}\n")
    out = tmp_path / "gx2"
    args = ["gen", "--suite", str(DEFAULT_SUITE), "--out", str(out), "--config", str(cfg)]
    line = _error_line(_invoke(*args))
    assert f"{cfg}:gen.{key}: must be" in line, line
    assert not out.exists() and _partials(out) == []


# --- gen: stopped by a signal ---------------------------------------------------------------


def _stop_mid_write(out: Path, sig: signal.Signals, *extra: str) -> tuple[int, str]:
    """Start a big `gen`, send `sig` once it has written files; its exit status and stderr."""
    cmd = [sys.executable, "-m", "toolsft.cli", "gen", "--suite", str(DEFAULT_SUITE)]
    cmd += ["--out", str(out), "--per-stage", "3000", *extra]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        # a job started in the background inherits SIGINT ignored; a user's Ctrl-C is not
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    try:
        while not any(out.parent.glob(f".{out.name}.partial-*/stage1/*.jsonl")):
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:] if proc.stderr else ""
            assert time.monotonic() < deadline, "gen wrote no file within 120 s"
            time.sleep(0.005)
        proc.send_signal(sig)
        err = proc.communicate(timeout=60)[1].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def test_gen_stopped_by_sigterm_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gx9"
    code, err = _stop_mid_write(out, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, err  # a shell's status for a SIGTERM'd process
    assert "Traceback" not in err, err
    assert _partials(out) == [], "the partial folder is removed on the way out"
    assert not out.exists(), "the target appears only when the dataset is complete"
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_gen_stopped_by_sigterm_keeps_the_previous_dataset(data: Path) -> None:
    before = _snapshot(data)
    code, err = _stop_mid_write(data, signal.SIGTERM, "--overwrite", "--seed", "7")
    assert code == 128 + signal.SIGTERM, err
    assert _partials(data) == []
    assert _snapshot(data) == before, "the previous dataset is untouched"
    assert verify_dataset(data)["seed"] == 0


def test_gen_stopped_by_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "gx9"
    code, err = _stop_mid_write(out, signal.SIGINT)
    assert code == 130, err
    assert "Error: interrupted" in err and "Traceback" not in err, err
    assert _partials(out) == [] and not out.exists()


def test_writer_restores_sigterm_and_cleans_up_when_terminated(tmp_path: Path) -> None:
    from toolsft.gen.writer import DatasetWriter
    from toolsft.io import Terminated

    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        pytest.skip("this test runner handles SIGTERM itself")
    out = tmp_path / "d"
    with pytest.raises(Terminated) as info, DatasetWriter(out) as writer:
        assert signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
        writer.add(1, "train", [])
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises in this thread long before this returns
    assert info.value.code == 143
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert _partials(out) == [] and not out.exists()


# --- train: a checkpoint without weights ----------------------------------------------------


def _checkpoint(root: Path, step: int, *files: str) -> Path:
    folder = root / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    for name in files:
        (folder / name).write_text("{}")
    return folder


def test_resume_skips_checkpoints_without_weights(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from toolsft.train.checkpoints import last_checkpoint
    from toolsft.train.curriculum import plan_stage

    plan = plan_stage(tmp_path, 1)
    good = _checkpoint(plan.checkpoints, 2, "trainer_state.json", "adapter_model.safetensors")
    _checkpoint(plan.checkpoints, 4, "trainer_state.json")  # weights deleted
    _checkpoint(plan.checkpoints, 6, "adapter_model.safetensors")  # killed while saving
    with caplog.at_level(logging.WARNING, logger="toolsft.train.checkpoints"):
        assert last_checkpoint(plan) == str(good)
    assert "checkpoint-4: it has no model or adapter weights" in caplog.text
    assert "checkpoint-6 (interrupted while saving)" in caplog.text


def test_train_resume_with_a_weightless_checkpoint_starts_over(
    tiny_home: Path, tiny_data: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    bad = _checkpoint(run / "stage1" / "checkpoints", 2, "trainer_state.json")
    cfg = tmp_path / "train.yaml"
    cfg.write_text("bf16: false\nmax_val_rows: 2\nnum_threads: 1\nearly_stopping_patience: 0\n")
    args = ["train", "--stage", "1", "--data", str(tiny_data), "--out", str(run), "--resume"]
    args += ["--model", "tiny-random", "--config", str(cfg), "--max-steps", "2", "--max-rows"]
    args += ["8", "--batch-size", "2", "--grad-accum", "1", "--lora-r", "4"]
    with caplog.at_level(logging.WARNING, logger="toolsft.train.checkpoints"):
        res = _invoke(*args, env={"TOOLSFT_HOME": str(tiny_home)})
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.output
    assert f"ignoring checkpoint {bad}: it has no model or adapter weights" in caplog.text
    assert "stage 1 starts over" in caplog.text
    assert (run / "stage1" / "run.json").is_file()
    assert (run / "stage1" / "adapter_model.safetensors").is_file()


# --- train: options the device cannot run ---------------------------------------------------


def test_qlora_on_cpu_is_one_line_and_keeps_the_stage(tiny_data: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("QLoRA can run here")
    stage = tmp_path / "run" / "stage1"
    stage.mkdir(parents=True)
    (stage / "run.json").write_text('{"method": "lora"}')
    (stage / "adapter_model.safetensors").write_bytes(b"weights")
    before = _snapshot(stage)
    args = ["train", "--stage", "1", "--data", str(tiny_data), "--out", str(tmp_path / "run")]
    line = _error_line(_invoke(*args, "--method", "qlora", "--overwrite"))
    assert line.startswith("Error: method: QLoRA needs a CUDA GPU"), line
    assert line.endswith("('qlora')"), line
    assert _snapshot(stage) == before, "--overwrite deletes nothing before the run is accepted"


def test_device_refusals_name_the_field_and_value() -> None:
    from toolsft.train.config import ConfigError
    from toolsft.train.device import Device, resolve_auto

    gpu = Device("cuda", bf16_ok=True, flash_attn=True, liger=False, name="test gpu")
    cases = [
        (tiny_config(share_prefix=True, attn_implementation="flash_attention_2"), "attn"),
        (tiny_config(share_prefix=True, packing=True), "packing"),
    ]
    for cfg, field in cases:
        with pytest.raises(ConfigError) as info:
            resolve_auto(cfg, gpu)
        where = "attn_implementation" if field == "attn" else field
        assert info.value.where == where
        assert str(info.value).startswith(f"{where}: must be ")
        assert str(info.value).endswith(f"({getattr(cfg, where)!r})")
    cpu = Device("cpu", bf16_ok=False, flash_attn=False, liger=False, name="cpu")
    with pytest.raises(ConfigError) as info:
        resolve_auto(tiny_config(method="qlora"), cpu)
    assert (info.value.where, info.value.value) == ("method", "qlora")


# --- export-bfcl: broken datasets -----------------------------------------------------------


def _export(data: Path, out: Path, *extra: str) -> Any:
    return _invoke("export-bfcl", "--data", str(data), "--out", str(out), *extra)


def test_export_bfcl_missing_split_names_the_file(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "bfcl"
    line = _error_line(_export(data, out, "--stage", "3", "--split", "nope"))
    assert f"{data / 'stage3' / 'nope.jsonl'}: no such split file" in line, line
    line = _error_line(_export(data, out, "--split", "nope"))
    assert f"{data}: no stage*/nope.jsonl files" in line, line
    line = _error_line(_export(tmp_path / "absent", out))
    assert str(tmp_path / "absent") in line, line
    assert not out.exists()


def test_export_bfcl_bad_row_names_file_and_line(data: Path, tmp_path: Path) -> None:
    path = data / "stage1" / "test.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    path.write_text("\n".join([lines[0], '{"messages": 3}', *lines[1:]]) + "\n")
    out = tmp_path / "bfcl"
    line = _error_line(_export(data, out, "--stage", "1"))
    assert f"{path}:2: not a toolsft row" in line, line
    assert not out.exists()


def test_export_bfcl_binary_file_names_it(data: Path, tmp_path: Path) -> None:
    path = data / "stage2" / "test.jsonl"
    path.write_bytes(b"\xff\xfe\x00garbage\n")
    out = tmp_path / "bfcl"
    line = _error_line(_export(data, out))
    assert f"{path}: not UTF-8 text" in line, line
    assert not out.exists()
