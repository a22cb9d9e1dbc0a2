"""The demo's budgets: what it generates, trains and scores on each kind of machine.

A budget is its YAML file (`configs/demo/<name>.yaml`). Its `gen` section is read by
`toolsft gen --config` (GenConfig fields) and its `train` section, with per-stage `stages`, by
`toolsft train --config` (TrainConfig fields): the demo hands both commands the file itself,
and loads it here through the same two loaders to print and time the run. The `eval` and
`demo` sections are the demo's own (`EvalSettings`, `DemoSettings`). Why each budget is what
it is: docs/experiments.md.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.errors import ToolsftError
from toolsft.gen.pipeline import GenConfig, load_gen_config
from toolsft.gen.plan import STAGE_KINDS
from toolsft.options import did_you_mean, from_mapping, load_yaml_file, option
from toolsft.shipped import ROOT
from toolsft.train.config import TrainConfig

CONFIG_DIR = ROOT / "configs" / "demo"
"""The shipped budgets (a checkout's or an editable install's configs/demo)."""
BUDGET_NAMES = ("quick", "cpu", "cpu-fp32", "gpu", "full", "full-cpu")
STAGES = (1, 2, 3)


@dataclass(frozen=True)
class EvalSettings:
    """A budget file's `eval` section."""

    rows: int = option(
        34, "Test rows per stage scored at each evaluation (a seeded sample).", low=1
    )
    engine: str = option(
        "vllm",
        "Eval engine; the demo falls back to the transformers engine (hf) where vLLM is not "
        "installed.",
        choices=("vllm", "hf"),
    )


@dataclass(frozen=True)
class DemoSettings:
    """A budget file's `demo` section: the time budget and the estimates that size it."""

    minutes: float = option(
        0.0,
        "Wall-clock target of the whole demo (0: none, each stage trains its max_steps). Each "
        "training stage gets its share (stage_shares) of what gen, exports and evaluations "
        "leave, as `train --max-time`; max_steps caps it.",
        low=0,
    )
    stage_shares: tuple[float, ...] = option(
        (85.0, 75.0, 65.0), "Weights of stages 1, 2 and 3 in the training time.", low=0
    )
    margin_s: float = option(
        60.0, "Seconds of the target kept free against estimates that run over.", low=0
    )
    step_s: float = option(0.5, "Seconds per optimizer step, for the ETA.", low=0)
    eval_s: float = option(22.5, "Seconds to score one model, for the ETA.", low=0)
    final_eval_factor: float = option(
        1.7,
        "The evaluation after training takes about this many times the base model's, which is "
        "measured first.",
        low=0,
    )
    min_steps: int = option(
        0,
        "Optimizer steps (all stages) below which no significant gain is expected on the "
        "demo's episodes (from the learning curve); the demo says so before it starts.",
        low=0,
    )

    def rules(self) -> list[tuple[str, bool, str]]:
        """What the bounds of single fields cannot say."""
        return [
            ("stage_shares", len(self.stage_shares) == len(STAGES), "one share per stage"),
            ("stage_shares", sum(self.stage_shares) > 0, "not all zero"),
            ("step_s", self.step_s > 0, "more than 0 seconds"),
        ]


@dataclass(frozen=True)
class Budget:
    """A budget file, loaded: its top-level keys, then each section's config."""

    name: str = option(
        "", "The budget's name; the gate judges it against demo-<suite>-<name>.json."
    )
    device: str = option("cpu", "The device it is sized for.", choices=("cpu", "cuda"))
    file: Path = field(default=Path())
    """The file itself: `gen --config` and `train --config` read it."""
    gen: GenConfig = field(default_factory=GenConfig)
    train: tuple[TrainConfig, ...] = ()
    """Stages 1, 2 and 3 as `train --config <file> --stage N` loads them."""
    eval: EvalSettings = field(default_factory=EvalSettings)
    demo: DemoSettings = field(default_factory=DemoSettings)

    @property
    def model(self) -> str:
        return self.train[0].model

    @property
    def max_steps(self) -> tuple[int, ...]:
        return tuple(c.max_steps for c in self.train)

    def with_model(self, model: str) -> Budget:
        return dataclasses.replace(
            self, train=tuple(dataclasses.replace(c, model=model) for c in self.train)
        )

    def describe(self) -> list[tuple[str, str]]:
        return _describe(self)


SECTIONS = ("gen", "train", "eval", "demo")
TOP = ("name", "model", "device")
"""The top-level keys; `model` is TrainConfig's, read by the train loader."""


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
    """Read a budget file; every unknown or bad key is an error naming the file and key."""
    from toolsft.train.config_file import load_config

    path = budget_file(name_or_path)
    file = str(path)
    data = load_yaml_file(path)
    if not isinstance(data, Mapping):
        raise ToolsftError("top level must be a mapping", file=file, value=data)
    for key in data:
        if key not in (*TOP, *SECTIONS):
            hint = did_you_mean(str(key), [*TOP, *SECTIONS])
            raise ToolsftError(f"unknown key{hint}", file=file, where=str(key))
    missing = [k for k in TOP if k not in data]
    if missing:
        raise ToolsftError("missing required key", file=file, where=missing[0])
    if not isinstance(data.get("train"), Mapping):
        raise ToolsftError("must be a mapping of train settings", file=file, where="train")
    top = from_mapping(Budget, {k: data[k] for k in ("name", "device")}, file=file)
    train = tuple(load_config(path, stage) for stage in STAGES)
    for stage, cfg in zip(STAGES, train, strict=True):
        if cfg.max_steps <= 0:  # the plan and its ETA need a number of steps per stage
            where = f"train.stages.{stage}.max_steps"
            raise ToolsftError("must be set to a number of steps", file=file, where=where)
    demo = DemoSettings(**_section(DemoSettings, data, "demo", file))
    for name, ok, want in demo.rules():
        if not ok:
            where, value = f"demo.{name}", getattr(demo, name)
            raise ToolsftError(f"must be {want}", file=file, where=where, value=value)
    return Budget(
        **top,
        file=path,
        gen=load_gen_config(path),
        train=train,
        eval=EvalSettings(**_section(EvalSettings, data, "eval", file)),
        demo=demo,
    )


def _section(cls: type, data: Mapping[str, Any], name: str, file: str) -> dict[str, Any]:
    section = data.get(name)
    section = {} if section is None else section
    return from_mapping(cls, section, file=file, prefix=f"{name}.")


def _describe(b: Budget) -> list[tuple[str, str]]:
    """The budget as the demo prints it before the run; a setting that differs between
    stages is shown per stage."""

    def per_stage(get: Callable[[TrainConfig], Any]) -> str:
        values = [str(get(c)) for c in b.train]
        return values[0] if len(set(values)) == 1 else " / ".join(values)

    first, demo, gen = b.train[0], b.demo, b.gen
    steps = " / ".join(map(str, b.max_steps))
    if demo.minutes:
        time_rows = [
            ("time budget", f"{demo.minutes:g} min in all, {demo.margin_s:.0f} s spare"),
            (
                "training time per stage",
                "what gen, exports and evaluations leave, split "
                + ":".join(f"{s:g}" for s in demo.stage_shares),
            ),
            ("optimizer steps per stage (at most)", steps),
        ]
    else:
        time_rows = [("optimizer steps per stage", steps)]
    bs, accum = first.batch_size, first.grad_accum
    per_step = "auto" if bs is None or accum is None else str(bs * accum)
    if first.share_prefix:
        rows = f"{per_step} pack(s) of rows that share the tool list, up to "
        rows += f"{per_stage(lambda c: c.max_length)} tokens"
    else:
        rows = f"{per_step} ({bs or 'auto'} x {accum or 'auto'} accumulation)"
    out = [
        ("budget", b.name),
        ("model", b.model),
        ("device", b.device),
        ("rows generated per stage", str(gen.per_stage)),
        *time_rows,
        ("rows per step", rows),
        ("max length (tokens)", per_stage(lambda c: c.max_length)),
    ]
    if first.share_prefix:
        grad = per_stage(lambda c: "yes" if c.prefix_grad else "no")
        out.append(("gradient through the shared prefix", grad))
    warmup = per_stage(lambda c: f", {100 * c.warmup_ratio:.0f}% warmup" if c.warmup_ratio else "")
    out += [
        (
            "learning rate",
            per_stage(lambda c: f"{c.learning_rate:g}")
            + ", "
            + per_stage(lambda c: c.lr_scheduler)
            + warmup,
        ),
        (
            "replay of earlier stages",
            per_stage(lambda c: f"{100 * c.replay_share:.0f}%") + " of stage 2 and 3 rows",
        ),
        ("loss weight of deciding tokens", _weights(b.train)),
        (
            "LoRA",
            f"{'last ' + str(first.lora_layers) if first.lora_layers else 'all'} layers, "
            + ",".join(first.target_modules),
        ),
        ("test rows per stage per eval", str(b.eval.rows)),
        (
            "tools shown",
            "all, in every stage" if gen.show_all else f"{gen.max_tools} in stage-1 rows",
        ),
        (
            "rows no tool fits",
            f"{100 * STAGE_KINDS[1]['no_tool']:g}% of stage 1"
            + (f", {100 * gen.no_tool_share:g}% of stages 2-3" if gen.no_tool_share else ""),
        ),
        (
            "two-call requests",
            f"{100 * STAGE_KINDS[1]['multi']:g}% of stages 1-2"
            + (f", and {100 * gen.multi_share:g}% of one-call rows" if gen.multi_share else ""),
        ),
        ("stage-3 answers from two results", f"{100 * gen.two_call:g}% of its rows"),
        ("eval engine", b.eval.engine),
    ]
    return out


def _weights(train: tuple[TrainConfig, ...]) -> str:
    weighted = {s: c.decision_weight for s, c in zip(STAGES, train, strict=True)}
    weighted = {s: w for s, w in weighted.items() if w != 1}
    if not weighted:
        return "1x (plain SFT loss)"
    what = " (a turn's first token, tool names, argument values)"
    if len(set(weighted.values())) == 1:
        w = next(iter(weighted.values()))
        return f"{w:g}x in stages {','.join(map(str, weighted))}{what}"
    return " / ".join(f"{c.decision_weight:g}x" for c in train) + what


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
    return b.with_model(model) if model else b
