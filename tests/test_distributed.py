"""Several training processes on CPU (gloo): torchrun and accelerate launch, rank handling,
and the launches toolsft refuses."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import fixtures_train
import pytest
import yaml
from safetensors.torch import load_file

from toolsft.train import distributed as dist

tiny_data = fixtures_train.tiny_data
tiny_home = fixtures_train.tiny_home

REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = sorted((REPO / "configs" / "accelerate").glob("*.yaml"))
TOOLSFT = str(Path(sys.executable).with_name("toolsft"))

# SGD without warmup or clipping: an update is the gradient itself, so a gradient that is not
# summed over ranks, or scaled wrong, shows in the weights (Adam's first step would hide scale).
EXACT = {
    "optim": "sgd",
    "learning_rate": 0.5,
    "lr_scheduler": "constant",
    "warmup_ratio": 0.0,
    "max_grad_norm": 1.0e9,
    "lora_dropout": 0.0,
    "bf16": False,
    "max_val_rows": 0,
    "early_stopping_patience": 0,
    "save_steps": 100,
    "num_threads": 1,
}


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp: Path, **kw: Any) -> Path:
    path = tmp / f"train-{len(list(tmp.glob('train-*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump({**EXACT, **kw}))
    return path


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ACCELERATE_", "FSDP_"))}
    for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(k, None)
    return {**env, "TOOLSFT_HOME": str(home), "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": ""}


def _train_args(data: Path, out: Path, config: Path, *extra: str) -> list[str]:
    return [
        "train",
        "--data",
        str(data),
        "--out",
        str(out),
        "--model",
        "tiny-random",
        "--config",
        str(config),
        *extra,
    ]


def _run(argv: list[str], home: Path, timeout: int = 300) -> str:
    proc = subprocess.run(
        argv, env=_env(home), capture_output=True, text=True, timeout=timeout, check=False
    )
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    return log


def _torchrun(args: list[str], home: Path, nproc: int = 2) -> str:
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc)]
    return _run([*launcher, "--master_port", str(_port()), TOOLSFT, *args], home)


def _one(args: list[str], home: Path) -> str:
    return _run([sys.executable, "-m", "toolsft.cli", *args], home)


def _adapter(stage_dir: Path) -> dict[str, Any]:
    return load_file(stage_dir / "adapter_model.safetensors")


def _metrics(stage_dir: Path) -> dict[str, Any]:
    return json.loads((stage_dir / "metrics.json").read_text())


def _assert_same_adapter(a: dict[str, Any], b: dict[str, Any]) -> None:
    import torch

    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-7, msg=k)


# --- two processes train like one --------------------------------------------------------------


def test_two_processes_train_like_one_with_the_same_global_batch(
    tiny_data: Path, tiny_home: Path, tmp_path: Path
) -> None:
    """1 process x batch 1 x accumulation 2 == 2 processes x batch 1: same rows per step,
    same loss, same gradient, so the same adapter after two SGD steps."""
    cfg = _config(tmp_path)
    common = ["--stage", "1", "--max-steps", "2", "--batch-size", "1"]
    _one(_train_args(tiny_data, tmp_path / "one", cfg, *common, "--grad-accum", "2"), tiny_home)
    log = _torchrun(
        _train_args(tiny_data, tmp_path / "two", cfg, *common, "--grad-accum", "1"), tiny_home
    )
    one, two = tmp_path / "one" / "stage1", tmp_path / "two" / "stage1"
    assert _metrics(one)["world_size"] == 1 and _metrics(two)["world_size"] == 2
    b = [k for k in _adapter(one) if "lora_B" in k]
    assert b and all(_adapter(one)[k].abs().max() > 0 for k in b), "the adapter never moved"
    _assert_same_adapter(_adapter(one), _adapter(two))
    losses = [[h["loss"] for h in _metrics(d)["log_history"] if "loss" in h] for d in (one, two)]
    assert len(losses[0]) == 2 and losses[0] == pytest.approx(losses[1], rel=1e-5)
    # Rank 1 returned the same run record as rank 0 (no KeyError) and printed no summary.
    assert log.count("stage 1 -> ") == 1, log[-3000:]


@pytest.mark.slow
def test_all_stages_under_two_processes_keep_their_lineage(
    tiny_data: Path, tiny_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    _torchrun(
        _train_args(tiny_data, out, _config(tmp_path), "--all", "--max-steps", "2"), tiny_home
    )
    runs = {s: json.loads((out / f"stage{s}" / "run.json").read_text()) for s in (1, 2, 3)}
    assert runs[1]["parent"] is None
    for s in (2, 3):
        assert runs[s]["parent"]["stage"] == s - 1
        assert runs[s]["parent"]["run_sha256"] == runs[s - 1]["run_sha256"]
    for s in (1, 2, 3):
        assert _metrics(out / f"stage{s}")["world_size"] == 2
        assert _metrics(out / f"stage{s}")["global_step"] == 2
    adapters = [_adapter(out / f"stage{s}") for s in (1, 2, 3)]
    for before, after in zip(adapters, adapters[1:], strict=False):
        assert any((before[k] - after[k]).abs().max() > 0 for k in before)


@pytest.mark.slow
def test_resume_under_two_processes_ends_where_an_uninterrupted_run_does(
    tiny_data: Path, tiny_home: Path, tmp_path: Path
) -> None:
    """A stage cut after step 2 (its checkpoint left behind) and resumed with --resume ends
    with the adapter of the run that was never cut."""
    out = tmp_path / "run"
    cfg = _config(tmp_path, save_steps=2, keep_checkpoints=True)
    args = _train_args(tiny_data, out, cfg, "--stage", "1", "--max-steps", "4")
    _torchrun(args, tiny_home)
    stage = out / "stage1"
    whole = _adapter(stage)
    ckpt = stage / "checkpoints" / "checkpoint-2"
    assert {p.name for p in ckpt.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    (stage / "run.json").unlink()  # the stage now looks cut short after its step-2 checkpoint
    shutil.rmtree(stage / "checkpoints" / "checkpoint-4")
    _torchrun([*args, "--resume"], tiny_home)
    assert (stage / "run.json").is_file()
    steps = [h["step"] for h in _metrics(stage)["log_history"] if "loss" in h]
    assert steps == [3, 4], "resumed after step 2, not from the start"
    _assert_same_adapter(whole, _adapter(stage))


@pytest.mark.slow
def test_accelerate_launch_with_the_cpu_config_trains_on_two_ranks(
    tiny_data: Path, tiny_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    config = REPO / "configs" / "accelerate" / "cpu_ddp.yaml"
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(config)]
    args = _train_args(tiny_data, out, _config(tmp_path), "--stage", "1", "--max-steps", "2")
    _run([*launch, "--main_process_port", str(_port()), TOOLSFT, *args], tiny_home)
    metrics = _metrics(out / "stage1")
    assert metrics["world_size"] == 2 and metrics["global_step"] == 2


# --- what the launcher asked for -----------------------------------------------------------------


def test_rank_and_world_come_from_the_launcher_environment() -> None:
    assert (dist.world_size({}), dist.rank({}), dist.is_main({})) == (1, 0, True)
    torchrun = {"WORLD_SIZE": "4", "RANK": "3", "LOCAL_RANK": "1"}
    assert (dist.world_size(torchrun), dist.rank(torchrun)) == (4, 3)
    assert not dist.is_main(torchrun) and dist.launched(torchrun)
    assert dist.world_size({"OMPI_COMM_WORLD_SIZE": "2"}) == 2


def test_several_gpus_without_a_launcher_train_on_one_not_in_data_parallel() -> None:
    assert dist.one_device_instead_of_data_parallel(4, {})
    assert not dist.one_device_instead_of_data_parallel(1, {})
    assert not dist.one_device_instead_of_data_parallel(4, {"WORLD_SIZE": "4", "RANK": "0"})


def test_avoid_data_parallel_sets_one_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    class Args:
        n_gpu = 8
        _n_gpu = 8

    for k in dist.WORLD_ENV:
        monkeypatch.delenv(k, raising=False)
    args = Args()
    dist.avoid_data_parallel(args)
    assert args._n_gpu == 1
    launched = Args()
    monkeypatch.setenv("WORLD_SIZE", "8")
    dist.avoid_data_parallel(launched)
    assert launched._n_gpu == 8


@pytest.mark.parametrize(
    ("env", "gpu", "says"),
    [
        ({"ACCELERATE_USE_CPU": "True", "MASTER_ADDR": "127.0.0.1"}, False, "one process"),
        ({"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "2"}, False, "DeepSpeed"),
        ({"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "2"}, False, "FSDP"),
    ],
)
def test_launches_that_would_not_train_as_asked_are_refused(
    env: dict[str, str], gpu: bool, says: str
) -> None:
    with pytest.raises(dist.LaunchError, match=says) as err:
        dist.check_launch(gpu, env)
    assert "\n" not in str(err.value) and "cpu_ddp.yaml" in str(err.value)


def test_deepspeed_without_the_package_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "deepspeed" else real(n, *a)
    )
    with pytest.raises(dist.LaunchError, match="pip install deepspeed"):
        dist.check_launch(True, {"ACCELERATE_USE_DEEPSPEED": "true", "WORLD_SIZE": "2"})


def test_launches_that_train_as_asked_pass() -> None:
    dist.check_launch(False, {})
    dist.check_launch(False, {"ACCELERATE_USE_CPU": "True"})  # --cpu, one process asked for
    dist.check_launch(False, {"WORLD_SIZE": "2", "RANK": "1", "MASTER_ADDR": "127.0.0.1"})
    dist.check_launch(True, {"ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "2"})


def test_cli_refuses_fsdp_on_cpu_in_one_line(
    tiny_data: Path, tiny_home: Path, tmp_path: Path
) -> None:
    env = {**_env(tiny_home), "ACCELERATE_USE_FSDP": "true"}
    argv = [sys.executable, "-m", "toolsft.cli"]
    argv += _train_args(tiny_data, tmp_path / "run", _config(tmp_path), "--stage", "1")
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert len(errors) == 1 and "FSDP" in errors[0] and "Traceback" not in proc.stderr
    assert not (tmp_path / "run" / "stage1").exists()


# --- shipped accelerate configs ------------------------------------------------------------------


@pytest.mark.parametrize("path", ACCELERATE_CONFIGS, ids=lambda p: p.name)
def test_shipped_accelerate_config_starts_the_processes_it_names(path: Path) -> None:
    """accelerate's loader takes the file, and `accelerate launch` would start one process
    per `num_processes` (or --num_processes), not a single one."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    config = load_config_from_file(str(path))
    assert config.num_processes > 1
    for extra, want in (([], config.num_processes), (["--num_processes", "3"], 3)):
        argv = ["--config_file", str(path), *extra, "train.py"]
        args, _, _ = _validate_launch_command(launch_command_parser().parse_args(argv))
        multi = args.use_deepspeed or args.use_fsdp or args.multi_gpu
        assert multi and not args.cpu, f"{path.name}: accelerate would start a single process"
        assert args.num_processes == want


def test_cpu_config_is_plain_data_parallel() -> None:
    config = yaml.safe_load((REPO / "configs" / "accelerate" / "cpu_ddp.yaml").read_text())
    assert config["distributed_type"] == "MULTI_GPU" and config["mixed_precision"] == "no"


# --- the model side ------------------------------------------------------------------------------


def test_compact_head_goes_through_the_model_forward(tiny_home: Path) -> None:
    """`model(..., toolsft_compact=mask)` gives the masked positions' logits of the full
    forward; without the keyword the forward is unchanged."""
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model
    from toolsft.train.trainer import add_compact_head

    model = AutoModelForCausalLM.from_pretrained(str(resolve_model("tiny-random", tiny_home)))
    ids = torch.randint(
        0, model.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0)
    )
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 3:6] = mask[1, 1] = True
    full = model(input_ids=ids).logits
    add_compact_head(model)
    add_compact_head(model)  # idempotent
    torch.testing.assert_close(model(input_ids=ids).logits, full)
    compact = model(input_ids=ids, toolsft_compact=mask)
    torch.testing.assert_close(compact, full[:, :-1][mask], rtol=1e-5, atol=1e-5)


def test_zero3_adapter_takes_the_base_dtype(
    tiny_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch
    from transformers import AutoModelForCausalLM

    from toolsft.models import resolve_model
    from toolsft.train import build
    from toolsft.train.config import TrainConfig

    path = str(resolve_model("tiny-random", tiny_home))

    def trainable_dtypes(zero3: bool) -> set[Any]:
        monkeypatch.setattr(build, "zero3_enabled", lambda: zero3)
        base = AutoModelForCausalLM.from_pretrained(path, dtype=torch.bfloat16)
        model = build.attach_adapter(base, TrainConfig(model="tiny-random"), None)
        return {p.dtype for p in model.parameters() if p.requires_grad}

    assert trainable_dtypes(False) == {torch.float32}  # peft's default: an fp32 adapter
    assert trainable_dtypes(True) == {torch.bfloat16}
