"""Which of an interrupted stage's checkpoints `--resume` continues from."""

from __future__ import annotations

import logging
from pathlib import Path

from toolsft.train.curriculum import StagePlan

logger = logging.getLogger(__name__)


def last_checkpoint(plan: StagePlan) -> str | None:
    """The newest *complete* checkpoint: `trainer_state.json` (the Trainer writes it last, so a
    kill while saving leaves a folder without it) and weights the Trainer can load (a folder
    whose weights were deleted would otherwise fail deep inside `train()`). Others are skipped
    with a warning."""
    if not plan.checkpoints.is_dir():
        return None
    found = [p for p in plan.checkpoints.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()]
    complete = []
    for p in found:
        if not (p / "trainer_state.json").is_file():
            logger.warning("ignoring incomplete checkpoint %s (interrupted while saving)", p)
        elif not _checkpoint_has_weights(p):
            logger.warning("ignoring checkpoint %s: it has no model or adapter weights", p)
        else:
            complete.append(p)
    if not complete:
        if found:
            logger.warning(
                "no complete checkpoint in %s: stage %d starts over", plan.checkpoints, plan.stage
            )
        return None
    return str(max(complete, key=lambda p: int(p.name.split("-")[-1])))


CHECKPOINT_WEIGHTS = (
    "adapter_model.safetensors",
    "adapter_model.bin",
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
    "pytorch_model_fsdp.bin",
)
"""The files one of which `transformers.Trainer` needs to resume from a checkpoint folder."""


def _checkpoint_has_weights(folder: Path) -> bool:
    if any((folder / name).is_file() for name in CHECKPOINT_WEIGHTS):
        return True
    # Sharded (FSDP, DeepSpeed) and multi-adapter checkpoints keep their weights in subfolders.
    return any(
        sub.is_dir()
        and (
            sub.name.startswith(("pytorch_model_fsdp", "global_step"))
            or any((sub / n).is_file() for n in CHECKPOINT_WEIGHTS[:2])
        )
        for sub in folder.iterdir()
    )
