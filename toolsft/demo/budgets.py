"""The demo's budgets: what it generates, trains and scores on each kind of machine.

Each budget is a YAML file (`configs/demo/<name>.yaml`) with sections `gen`, `train`, `eval`
and `demo`; `toolsft gen --config` and `toolsft train --config` read their own section of the
same file, so a budget is declared once. Why each budget is what it is: docs/experiments.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.shipped import ROOT

CONFIG_DIR = ROOT / "configs" / "demo"
"""The shipped budgets (a checkout's or an editable install's configs/demo)."""
BUDGET_NAMES = ("quick", "cpu", "cpu-fp32", "gpu", "full")


@dataclass(frozen=True)
class Budget:
    """What the demo generates, trains and scores; read from a budget file, printed before
    the run."""

    name: str
    model: str
    rows_per_stage: int
    """Training rows generated per stage (val 10%, test 20% of it)."""
    max_steps: tuple[int, int, int]
    batch_size: int
    grad_accum: int
    max_length: int
    learning_rate: float
    eval_rows: int
    """Test rows scored per stage at each evaluation (a seeded sample)."""
    max_tools: int
    """Tools shown in stage-1 rows (0: all of them)."""
    device: str
    engine: str = "vllm"
    """Eval engine; the transformers engine (hf) where vLLM is not installed."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_layers: int = 0
    """LoRA on the last N layers only (0: all); backward stops there."""
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    val_rows: int = 16
    """Validation rows for the eval loss at the end of each stage."""
    replay_share: float = 0.2
    """Share of earlier stages' rows in stages 2 and 3 (against forgetting)."""
    step_s: float = 0.5
    """Seconds per optimizer step, for the ETA."""
    show_all: bool = False
    """Every row shows the suite's whole tool list (as deployed), so rows can share a prompt."""
    group: int = 1
    """Rows per prompt group in gen: they share language, date and tool order."""
    share_prefix: bool = False
    """Train each prompt group as one pack: the shared prompt once, then each row's turns."""
    lora_dropout: float = 0.0
    suite_order: bool = False
    """Tools listed in the suite's order in every row: all prompts share the tool list."""
    prefix_grad: bool = True
    """Backpropagate through each pack's shared prefix (False: run it once without gradient)."""
    warmup_ratio: float = 0.1
    lr_scheduler: str = "cosine"
    eval_s: float = 22.5
    """Seconds to score one model (for the ETA)."""
    final_eval_factor: float = 1.7
    """The evaluation after training takes about this many times the base model's, which is
    measured first."""
    baseline: str = ""
    """The budget whose committed gate baseline this one is judged against ('' = its own)."""
    decision_weight: float = 1.0
    """Loss weight of the tokens that decide a row (`train --decision-weight`)."""
    decision_stages: tuple[int, ...] = (1, 2)
    """The stages trained with `decision_weight`."""
    answer_loss_only: bool = False
    minutes: float = 0.0
    """Wall-clock target of the whole demo (0: none, train max_steps). Each training stage
    gets its share (`stage_shares`) of what gen, exports and evaluations leave, as
    `train --max-time`; max_steps caps it."""
    stage_shares: tuple[float, float, float] = (85, 75, 65)
    min_steps: int = 0
    """Optimizer steps (all stages) below which no significant gain is expected on the
    demo's episodes (from the learning curve); the demo says so before it starts."""
    margin_s: float = 60.0
    """Seconds of the target kept free against estimates that run over."""

    def describe(self) -> list[tuple[str, str]]:
        per_step = self.batch_size * self.grad_accum
        rows = (
            f"{per_step} pack(s) of rows that share the tool list, up to {self.max_length} tokens"
            if self.share_prefix
            else f"{per_step} ({self.batch_size} x {self.grad_accum} accumulation)"
        )
        return [
            ("budget", self.name),
            ("model", self.model),
            ("device", self.device),
            ("rows generated per stage", str(self.rows_per_stage)),
            *(
                [
                    ("time budget", f"{self.minutes:g} min in all, {self.margin_s:.0f} s spare"),
                    (
                        "training time per stage",
                        "what gen, exports and evaluations leave, split "
                        + ":".join(f"{s:g}" for s in self.stage_shares),
                    ),
                    ("optimizer steps per stage (at most)", " / ".join(map(str, self.max_steps))),
                ]
                if self.minutes
                else [("optimizer steps per stage", " / ".join(map(str, self.max_steps)))]
            ),
            ("rows per step", rows),
            ("max length (tokens)", str(self.max_length)),
            *(
                [("gradient through the shared prefix", "yes" if self.prefix_grad else "no")]
                if self.share_prefix
                else []
            ),
            (
                "learning rate",
                f"{self.learning_rate:g}, {self.lr_scheduler}"
                + (f", {100 * self.warmup_ratio:.0f}% warmup" if self.warmup_ratio else ""),
            ),
            ("replay of earlier stages", f"{100 * self.replay_share:.0f}% of stage 2 and 3 rows"),
            (
                "loss weight of deciding tokens",
                f"{self.decision_weight:g}x in stages "
                + ",".join(map(str, self.decision_stages))
                + " (a turn's first token, tool names, argument values)"
                if self.decision_weight != 1
                else "1x (plain SFT loss)",
            ),
            (
                "stage 3 loss",
                "its answers only (calls are stages 1-2's)"
                if self.answer_loss_only
                else "every assistant turn",
            ),
            (
                "LoRA",
                f"{'last ' + str(self.lora_layers) if self.lora_layers else 'all'} layers, "
                + ",".join(self.target_modules),
            ),
            ("test rows per stage per eval", str(self.eval_rows)),
            (
                "tools shown",
                "all, in every stage" if self.show_all else f"{self.max_tools} in stage-1 rows",
            ),
            ("eval engine", self.engine),
        ]


# YAML key -> Budget field, per section. train keys are TrainConfig's own names, so
# `toolsft train --config` reads the same section.
SECTIONS: dict[str, dict[str, str]] = {
    "gen": {
        "per_stage": "rows_per_stage",
        "max_tools": "max_tools",
        "group": "group",
        "show_all": "show_all",
        "suite_order": "suite_order",
    },
    "train": {
        "batch_size": "batch_size",
        "grad_accum": "grad_accum",
        "max_length": "max_length",
        "learning_rate": "learning_rate",
        "lr_scheduler": "lr_scheduler",
        "warmup_ratio": "warmup_ratio",
        "lora_r": "lora_r",
        "lora_alpha": "lora_alpha",
        "lora_layers": "lora_layers",
        "target_modules": "target_modules",
        "lora_dropout": "lora_dropout",
        "max_val_rows": "val_rows",
        "replay_share": "replay_share",
        "share_prefix": "share_prefix",
        "prefix_grad": "prefix_grad",
        "answer_loss_only": "answer_loss_only",
    },
    "eval": {"rows": "eval_rows", "engine": "engine"},
    "demo": {
        "minutes": "minutes",
        "stage_shares": "stage_shares",
        "margin_s": "margin_s",
        "step_s": "step_s",
        "eval_s": "eval_s",
        "final_eval_factor": "final_eval_factor",
        "baseline": "baseline",
        "min_steps": "min_steps",
    },
}
TOP = ("name", "model", "device")
STAGE_KEYS = ("max_steps", "decision_weight")


def budget_file(name_or_path: str | Path) -> Path:
    """A shipped budget's file by name, or a path to one."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise ToolsftError("budget file not found", file=path)
        return path
    if str(name_or_path) not in BUDGET_NAMES:
        raise ToolsftError(
            f"unknown budget (one of {', '.join(BUDGET_NAMES)}, or a .yaml file)",
            where="--budget",
            value=str(name_or_path),
        )
    return CONFIG_DIR / f"{name_or_path}.yaml"


def load_budget(name_or_path: str | Path) -> Budget:
    """Read a budget file; every unknown or mistyped key is an error naming file and key."""
    from toolsft.train.config import read_config_yaml

    file = budget_file(name_or_path)
    data = read_config_yaml(file)
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key in TOP:
            values[key] = value
        elif key in SECTIONS:
            values.update(_section(file, key, value))
        else:
            raise ToolsftError(
                f"unknown key (allowed: {', '.join((*TOP, *SECTIONS))})", file=file, where=key
            )
    missing = [k for k in TOP if k not in values]
    if missing:
        raise ToolsftError("missing required key", file=file, where=missing[0])
    return _typed(file, values)


def _section(file: Path, name: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ToolsftError("must be a mapping", file=file, where=name, value=value)
    out: dict[str, Any] = {}
    for key, v in value.items():
        if name == "train" and key == "stages":
            out.update(_stages(file, v))
        elif key in SECTIONS[name]:
            out[SECTIONS[name][key]] = v
        else:
            raise ToolsftError(
                f"unknown key (allowed: {', '.join(SECTIONS[name])})",
                file=file,
                where=f"{name}.{key}",
            )
    return out


def _stages(file: Path, value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or sorted(map(str, value)) != ["1", "2", "3"]:
        raise ToolsftError("needs stages 1, 2 and 3", file=file, where="train.stages", value=value)
    steps, weights = [], {}
    for stage in (1, 2, 3):
        sec = value.get(stage, value.get(str(stage)))
        where = f"train.stages.{stage}"
        if not isinstance(sec, Mapping) or any(k not in STAGE_KEYS for k in sec):
            raise ToolsftError(f"a mapping of {', '.join(STAGE_KEYS)}", file=file, where=where)
        if "max_steps" not in sec:
            raise ToolsftError("missing max_steps", file=file, where=where)
        steps.append(sec["max_steps"])
        if "decision_weight" in sec:
            weights[stage] = sec["decision_weight"]
    out: dict[str, Any] = {"max_steps": tuple(steps)}
    if weights:
        if len(set(weights.values())) > 1:
            raise ToolsftError(
                "one decision_weight for the stages that set it", file=file, where="train.stages"
            )
        out["decision_weight"] = next(iter(weights.values()))
        out["decision_stages"] = tuple(sorted(weights))
    return out


def _typed(file: Path, values: dict[str, Any]) -> Budget:
    types = {f.name: f.type for f in fields(Budget)}
    for key, v in list(values.items()):
        kind = str(types[key])
        if "tuple" in kind and isinstance(v, list):
            values[key] = tuple(v)
        ok = _matches(kind, values[key])
        if not ok:
            raise ToolsftError(f"wrong type (expected {kind})", file=file, where=key, value=v)
    return Budget(**values)


def _matches(kind: str, v: Any) -> bool:
    if isinstance(v, bool):
        return kind == "bool"
    if kind == "int":
        return isinstance(v, int)
    if kind == "float":
        return isinstance(v, int | float)
    if kind == "str":
        return isinstance(v, str)
    return kind.startswith("tuple") and isinstance(v, tuple)


BUDGETS: dict[str, Budget] = {name: load_budget(name) for name in BUDGET_NAMES}


def choose_budget(
    *,
    quick: bool,
    gpu: bool,
    model: str | None = None,
    bf16: bool = True,
    name: str | Path | None = None,
) -> Budget:
    """`name` (a shipped budget or a file) if given; else quick, gpu, cpu (the CPU has
    AMX/AVX512-BF16) or cpu-fp32 for this machine."""
    if name is not None:
        b = load_budget(name)
    else:
        b = BUDGETS["quick" if quick else "gpu" if gpu else "cpu" if bf16 else "cpu-fp32"]
    return replace(b, model=model) if model else b
