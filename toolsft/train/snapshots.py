"""Adapter snapshots at chosen optimizer steps, for learning curves (`toolsft curve`).

Quality against steps, not one end point, shows whether a change helps or only needs more
compute. A snapshot is the adapter's weights alone; the tokenizer with its serving template is
copied in from the finished stage folder (`complete_snapshots`), so each snapshot serves
like a stage folder.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

logger = logging.getLogger(__name__)

SNAPSHOT_INFO = "snapshot.json"
TOKENIZER_FILES = (
    "tokenizer",
    "special_tokens",
    "chat_template",
    "vocab",
    "merges",
    "added_tokens",
)


def is_point(step: int, first: int) -> bool:
    """Whether `step` is on the geometric grid first, 2*first, 4*first, ..."""
    if step < first or first <= 0:
        return False
    while step % 2 == 0 and step > first:
        step //= 2
    return step == first


def snapshot_dir(root: Path, stage: int, step: int) -> Path:
    return Path(root) / f"stage{stage}-step{step:05d}"


class SnapshotCallback(TrainerCallback):
    """Save the trained weights at steps first, 2*first, 4*first, ... into
    `<root>/stage<N>-step<K>`.

    Written to a temporary folder and renamed, so a kill leaves no half snapshot. The main
    process alone writes (a curve is a one-process tool; under DDP every rank holds the
    same LoRA weights)."""

    def __init__(self, root: Path, stage: int, first: int) -> None:
        self.root, self.stage, self.first = Path(root), stage, first
        self.saved: list[Path] = []

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not is_point(state.global_step, self.first) or not state.is_world_process_zero:
            return
        model = kw.get("model")
        if model is None:
            return
        target = snapshot_dir(self.root, self.stage, state.global_step)
        if target.is_dir():
            return
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(str(tmp))
        info = {
            "stage": self.stage,
            "step": state.global_step,
            "tokens_seen": int(state.num_input_tokens_seen or 0),
        }
        (tmp / SNAPSHOT_INFO).write_text(json.dumps(info) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        self.saved.append(target)
        logger.info("stage %d: snapshot at step %d in %s", self.stage, state.global_step, target)


def complete_snapshots(root: Path, stage: int, stage_dir: Path) -> list[Path]:
    """Copy the finished stage's tokenizer files into its snapshots; the stage's snapshots,
    by step. A snapshot's own weights are never overwritten."""
    out = sorted(Path(root).glob(f"stage{stage}-step*[0-9]"))
    extra = [
        p for p in Path(stage_dir).iterdir() if p.is_file() and p.name.startswith(TOKENIZER_FILES)
    ]
    for snap in out:
        for src in extra:
            if not (snap / src.name).exists():
                shutil.copy2(src, snap / src.name)
    return out
