"""Training in several processes (torchrun, accelerate launch): ranks, waiting, launch checks.

Every rank prepares the same data and trains; rank 0 alone writes or deletes files and the
others wait at a barrier, then read what rank 0 wrote. The launch checks refuse, in one line,
what would not run as the launcher was asked to (one process where several were meant,
DeepSpeed or FSDP without GPUs) and keep transformers from entering `nn.DataParallel`.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Mapping
from typing import Any

from toolsft.errors import ToolsftError

logger = logging.getLogger(__name__)

# What torchrun / accelerate (WORLD_SIZE, RANK) and MPI launchers set.
WORLD_ENV = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
RANK_ENV = ("RANK", "PMI_RANK", "OMPI_COMM_WORLD_RANK", "MV2_COMM_WORLD_RANK")
CPU_CONFIG = "configs/accelerate/cpu_ddp.yaml"


class LaunchError(ToolsftError):
    """The launcher asked for something this machine or install cannot run."""


def _first_int(env: Mapping[str, str], names: tuple[str, ...], default: int) -> int:
    for name in names:
        value = env.get(name, "")
        if value.strip().lstrip("-").isdigit():
            return int(value)
    return default


def world_size(env: Mapping[str, str] | None = None) -> int:
    """Processes in this training job (1 without a launcher)."""
    return max(1, _first_int(os.environ if env is None else env, WORLD_ENV, 1))


def rank(env: Mapping[str, str] | None = None) -> int:
    return _first_int(os.environ if env is None else env, RANK_ENV, 0)


def is_main(env: Mapping[str, str] | None = None) -> bool:
    """Rank 0: the one process that writes files and talks to the terminal."""
    return rank(env) == 0


def launched(env: Mapping[str, str] | None = None) -> bool:
    """Started by a launcher with more than one process."""
    return world_size(env) > 1


def barrier() -> None:
    """Wait for every rank (no-op in one process). Starts the process group if the trainer has
    not yet: the first barrier comes before `TrainingArguments` exists."""
    if not launched():
        return
    import torch
    from accelerate import PartialState

    # Without cpu=True on a machine without GPUs accelerate sees no distributed job at all.
    PartialState(cpu=not torch.cuda.is_available()).wait_for_everyone()


def _flag(env: Mapping[str, str], name: str) -> bool:
    return env.get(name, "").strip().lower() in ("1", "true", "yes")


def check_launch(gpu: bool, env: Mapping[str, str] | None = None) -> None:
    """Refuse a launch that would not train as asked; `gpu` says whether CUDA is there."""
    env = os.environ if env is None else env
    # accelerate's simple launcher (--cpu, or a MULTI_CPU config) starts one process and sets
    # MASTER_ADDR only when --num_processes > 1: it runs several only under mpirun.
    if "ACCELERATE_USE_CPU" in env and env.get("MASTER_ADDR") and not launched(env):
        raise LaunchError(
            "accelerate launch started one process although --num_processes asks for more "
            f"(accelerate runs several CPU processes only under mpirun); use --config_file "
            f"{CPU_CONFIG}, or torchrun --nproc_per_node N"
        )
    # Without GPUs accelerate would quietly train plain DDP instead (its CPU state has neither).
    for flag, what in (("ACCELERATE_USE_DEEPSPEED", "DeepSpeed"), ("ACCELERATE_USE_FSDP", "FSDP")):
        if _flag(env, flag) and not gpu:
            raise LaunchError(
                f"the accelerate config asks for {what}, which needs CUDA GPUs and none is "
                f"visible; on CPU use --config_file {CPU_CONFIG}"
            )
    if _flag(env, "ACCELERATE_USE_DEEPSPEED") and importlib.util.find_spec("deepspeed") is None:
        raise LaunchError("the accelerate config asks for DeepSpeed: pip install deepspeed")


def one_device_instead_of_data_parallel(n_gpu: int, env: Mapping[str, str] | None = None) -> bool:
    """True when transformers would wrap the model in `nn.DataParallel`: several GPUs visible
    to a single process. DataParallel copies the model to every GPU at every step (PyTorch
    advises against it); one GPU, or a launcher with one process per GPU, is what works."""
    return n_gpu > 1 and not launched(env)


def avoid_data_parallel(args: Any) -> None:
    """Train on one GPU when several are visible but no launcher started one process each."""
    n_gpu = args.n_gpu  # reading it sets transformers' device state up
    if one_device_instead_of_data_parallel(n_gpu):
        logger.warning(
            "%d GPUs visible but no distributed launcher: training on one GPU; to use them all "
            "run `torchrun --nproc_per_node %d $(which toolsft) train ...` or accelerate launch "
            "--config_file configs/accelerate/ddp.yaml",
            n_gpu,
            n_gpu,
        )
        args._n_gpu = 1
