"""The three-stage curriculum: where each stage lives and what it continues from.

Stage N > 1 continues stage N-1's adapter (one adapter trained three times, not three unrelated
adapters) and replays earlier stages' training rows against forgetting. A stage is complete
when its `run.json` exists: that file is written last, after the adapter is in place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.io import read_json_object
from toolsft.types import STAGES

RUN_JSON = "run.json"
CHECKPOINTS = "checkpoints"


class CurriculumError(ToolsftError, RuntimeError):
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
    """A completed stage's record; a missing, unreadable or damaged one is the user's error."""
    path = sdir / RUN_JSON
    if not path.is_file():
        raise CurriculumError(f"not found; {sdir.name} has not completed", file=path)
    run = read_json_object(path, CurriculumError)
    if not _has_weights(sdir):
        raise CurriculumError(
            "no weights beside run.json (adapter_model.safetensors or model.safetensors); "
            "retrain the stage with --overwrite",
            file=sdir,
        )
    return run


def _has_weights(sdir: Path) -> bool:
    """A LoRA stage holds its adapter; a full fine-tune holds a model folder."""
    adapter = all(
        (sdir / n).is_file() for n in ("adapter_config.json", "adapter_model.safetensors")
    )
    full = (sdir / "config.json").is_file() and any(sdir.glob("*.safetensors"))
    return adapter or full


def plan_stage(out: Path, stage: int) -> StagePlan:
    if stage not in STAGES:
        raise CurriculumError(f"must be one of {STAGES}", where="--stage", value=stage)
    if Path(out).exists() and not Path(out).is_dir():
        raise CurriculumError("not a folder (each stage writes <out>/stage<N>/)", file=out)
    parent = stage_dir(out, stage - 1) if stage > 1 else None
    if parent is not None and not (parent / RUN_JSON).is_file():
        raise CurriculumError(
            f"stage {stage - 1} is not complete (no {RUN_JSON}); stage {stage} continues "
            f"its adapter. Run `toolsft train --stage {stage - 1}` with the same --out first, "
            "or `toolsft train --all`.",
            file=parent,
        )
    return StagePlan(stage, stage_dir(out, stage), parent, tuple(range(1, stage)))


def check_parent_base(
    plan: StagePlan, run: dict[str, Any] | None, base: dict[str, Any], method: str
) -> None:
    """A stage must continue on the same base model and method as its parent (`run`, the
    parent's record from `read_run`; None for stage 1)."""
    if plan.parent_dir is None or run is None:
        return
    path = plan.parent_dir / RUN_JSON
    parent_base = run.get("base_model")
    if not isinstance(parent_base, dict):
        raise CurriculumError(
            "must be an object with the name and sha256 of the base model",
            file=path,
            where="base_model",
            value=parent_base,
        )
    ours = (base.get("name"), base.get("sha256"))
    if (parent_base.get("name"), parent_base.get("sha256")) != ours:
        raise CurriculumError(
            f"differs from this stage's {base.get('name')!r} (sha256 "
            f"{str(base.get('sha256'))[:12]}); an adapter only continues on the base it was "
            f"trained on (sha256 {str(parent_base.get('sha256'))[:12]})",
            file=path,
            where="base_model",
            value=parent_base.get("name"),
        )
    if run.get("method") != method:
        raise CurriculumError(
            f"differs from this stage's {method!r}",
            file=path,
            where="method",
            value=run.get("method"),
        )
