"""The three-stage curriculum: where each stage lives and what it continues from.

Stage N > 1 continues stage N-1's adapter (one adapter trained three times, not three unrelated
adapters) and replays earlier stages' training rows against forgetting. A stage is complete
when its `run.json` exists: that file is written last, after the adapter is in place.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.types import STAGES

RUN_JSON = "run.json"
CHECKPOINTS = "checkpoints"
WEIGHT_FILES = (
    "adapter_config.json",
    "adapter_model.safetensors",
    "config.json",
    "model.safetensors",
)


class CurriculumError(RuntimeError):
    """A stage cannot start: its parent is missing, incomplete or from another base model."""


@dataclass(frozen=True)
class StagePlan:
    stage: int
    dir: Path
    parent_dir: Path | None
    """The previous stage's folder, whose weights this stage continues."""
    replay_stages: tuple[int, ...]

    @property
    def checkpoints(self) -> Path:
        return self.dir / CHECKPOINTS

    @property
    def complete(self) -> bool:
        return (self.dir / RUN_JSON).is_file()


def stage_dir(out: Path, stage: int) -> Path:
    return Path(out) / f"stage{stage}"


def weights_dir(sdir: Path) -> Path:
    """A stage folder *is* its weights: a peft adapter (LoRA) or a full model folder, so
    `--adapter runs/x/stage2` (or `--model` after full fine-tuning) loads it directly."""
    return sdir


def read_run(sdir: Path) -> dict[str, Any]:
    path = sdir / RUN_JSON
    if not path.is_file():
        raise CurriculumError(f"{path}: not found; stage {sdir.name} has not completed")
    return json.loads(path.read_text(encoding="utf-8"))


def plan_stage(out: Path, stage: int) -> StagePlan:
    if stage not in STAGES:
        raise CurriculumError(f"--stage {stage}: must be one of {STAGES}")
    parent = stage_dir(out, stage - 1) if stage > 1 else None
    if parent is not None and not (parent / RUN_JSON).is_file():
        raise CurriculumError(
            f"{parent}: stage {stage - 1} is not complete (no {RUN_JSON}); stage {stage} continues "
            f"its adapter. Run `toolsft train --stage {stage - 1}` with the same --out first, "
            "or `toolsft train --all`."
        )
    return StagePlan(stage, stage_dir(out, stage), parent, tuple(range(1, stage)))


def check_parent_base(plan: StagePlan, base: dict[str, Any], method: str) -> None:
    """A stage must continue on the same base model and method as its parent."""
    if plan.parent_dir is None:
        return
    run = read_run(plan.parent_dir)
    parent_base = run.get("base_model", {})
    if parent_base.get("sha256") != base.get("sha256") or parent_base.get("name") != base.get(
        "name"
    ):
        raise CurriculumError(
            f"{plan.parent_dir / RUN_JSON}: base_model {parent_base.get('name')!r} "
            f"(sha256 {str(parent_base.get('sha256'))[:12]}) differs from this stage's "
            f"{base.get('name')!r} (sha256 {str(base.get('sha256'))[:12]}); an adapter only "
            "continues on the base it was trained on"
        )
    if run.get("method") != method:
        raise CurriculumError(
            f"{plan.parent_dir / RUN_JSON}: method {run.get('method')!r} "
            f"differs from this stage's {method!r}"
        )
