"""`toolsft train` (one curriculum stage, or --all) and `toolsft export` (merge for serving).

Thin: options -> TrainConfig -> one library call -> rich output. torch/trl load inside the
commands, so `toolsft --help` stays instant.
"""

from __future__ import annotations

import os
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from toolsft.cli.home import toolsft_home
from toolsft.cli.options import dataclass_options, given, labels
from toolsft.train.config import ConfigError, TrainConfig

BAR = ("loss", "tok/s")
"""What a stage's progress bar shows beside its steps."""


def _passive_omp() -> None:
    """OpenMP threads that sleep while they wait (set before torch loads libgomp): spinning
    threads fight over a busy machine's cores. An explicit OMP_WAIT_POLICY wins."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


@click.command("train")
@click.option(
    "--stage", type=click.IntRange(1, 3), help="Curriculum stage: 1 select, 2 fill, 3 answer."
)
@click.option("--all", "all_stages", is_flag=True, help="Train stages 1, 2, 3 in order.")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path, exists=True, file_okay=False),
    help="Generated data, e.g. datasets/commerce (stage1/ stage2/ stage3/).",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Run folder, e.g. runs/commerce; each stage writes <out>/stage<N>/.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML whose keys are the options below by field name (learning_rate: 1e-4), with "
    "`stages: {1: {...}}` per stage, or a demo budget (its train section); options given on "
    "the command line win.",
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help="Train on data without manifest.json (not from `toolsft gen`): its files go unverified.",
)
@click.option("--resume", is_flag=True, help="Skip complete stages; continue an interrupted one.")
@click.option("--overwrite", is_flag=True, help="Delete and retrain stages that already exist.")
@dataclass_options(TrainConfig)
def train(
    stage: int | None,
    all_stages: bool,
    data: Path,
    out: Path,
    config_file: Path | None,
    resume: bool,
    overwrite: bool,
    **opts: Any,
) -> None:
    """Train one curriculum stage (or --all) as a LoRA adapter.

    Stage N > 1 continues stage N-1's adapter in the same --out and replays a share of earlier
    stages' rows. Before training, the assistant-only loss mask and template/parser parity are
    checked on real rows.

    Example: toolsft train --stage 1 --data datasets/commerce --out runs/commerce
    """
    if (stage is None) == (not all_stages):
        raise click.UsageError("give exactly one of --stage N or --all")
    _passive_omp()
    from toolsft.train.config import load_config
    from toolsft.train.data import check_dataset

    stages: tuple[int, ...] = (1, 2, 3) if all_stages or stage is None else (stage,)
    # The options first (instant), then, before any model loads, the manifest's hashes and
    # every row these stages train on.
    overrides = given(TrainConfig, opts, ConfigError)
    configs = {s: load_config(config_file, s, overrides, labels(TrainConfig)) for s in stages}
    check_dataset(data, stages, require_manifest=not opts.pop("no_manifest"))
    from toolsft.train import train_stage  # transformers loads here: after the cheap checks
    from toolsft.train.distributed import is_main

    console = Console(stderr=True)
    home = toolsft_home()
    main = is_main()  # under torchrun / accelerate launch only rank 0 draws and sums up
    for s in stages:

        def call(sink: Any, s: int = s) -> Any:
            return train_stage(
                s, data, out, configs[s], home, resume=resume, overwrite=overwrite, progress=sink
            )

        result = _run(console, call) if main else call(None)
        if main:
            _summary(console, result)


def _run(console: Console, call: Any) -> Any:
    """Run `call` with a progress bar fed by the library's Progress records."""
    from toolsft.cli.progress import StepBar
    from toolsft.train.callbacks import Progress as Update

    with ExitStack() as stack:
        bars: list[StepBar] = []
        done = [0.0]

        def sink(p: Update) -> None:
            if not bars:  # started on the first step: an error while loading is the only output
                bar = StepBar(console, f"stage {p.stage}", p.total_steps, unit="steps", fields=BAR)
                bars.append(stack.enter_context(bar))
            if p.event == "step":  # a log event repeats its step: the step's own record counts
                done[0] = _done(p)
            # eta_s: the time left under --max-time, else steps left x pace; `done` follows
            # it, so a log gets a line per tenth of the time budget, not of an unreached cap
            values: dict[str, Any] = {
                "loss": "-" if p.loss is None else f"{p.loss:.4f}",
                "tok/s": f"{p.tokens_per_s:,.0f}",
            }
            bars[0].update(p.step, total=p.total_steps, eta_s=p.eta_s, fraction=done[0], **values)

        return call(sink)


def _done(p: Any) -> float:
    """The share of the stage done (0-1) by its ETA, which follows --max-time when that
    comes first; by steps before the ETA is known."""
    if p.eta_s is not None and p.elapsed_s + p.eta_s > 0:
        return 1.0 if p.eta_s == 0 else p.elapsed_s / (p.elapsed_s + p.eta_s)
    return p.step / p.total_steps if p.total_steps else 0.0


def _summary(console: Console, result: Any) -> None:
    if result.skipped:
        console.print(f"stage {result.stage}: already complete at {result.dir} (skipped)")
        return
    m = result.metrics
    table = Table(title=f"stage {result.stage} -> {result.dir}", show_header=False)
    rows = [
        ("steps", m.get("global_step")),
        ("train loss", m.get("train_loss")),
        ("val loss", m.get("eval_loss")),
        ("tokens/s", m.get("tokens_per_s")),
        ("peak memory (GB)", m.get("peak_memory_gb")),
        ("rows by stage", result.run["data"]["train_rows"]),
        ("trainable params", m.get("trainable_params")),
    ]
    for key, value in rows:
        table.add_row(key, _fmt(key, value))
    console.print(table)


def _fmt(key: str, value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return str(value)
    if key == "tokens/s" or isinstance(value, int):
        return f"{value:,.0f}"
    return f"{value:.2f}" if "memory" in key else f"{value:.4f}"


@click.command("export")
@click.option(
    "--run",
    "run_dir",
    required=True,
    type=click.Path(path_type=Path, exists=True),
    help="Run folder, e.g. runs/commerce.",
)
@click.option("--stage", required=True, type=click.IntRange(1, 3), help="Stage to export.")
@click.option(
    "--merge",
    is_flag=True,
    help="Fold the adapter into the base model (vLLM/transformers load it).",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="New output folder.")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier export in --out (only a folder that export wrote).",
)
def export(run_dir: Path, stage: int, merge: bool, out: Path, overwrite: bool) -> None:
    """Merge a trained adapter into its base model for serving.

    Example: toolsft export --run runs/commerce --stage 3 --merge --out runs/commerce/merged
    """
    _passive_omp()
    from toolsft.train import export_merged

    path = export_merged(run_dir, stage, out, toolsft_home(), merge=merge, overwrite=overwrite)
    Console(stderr=True).print(
        f"exported stage {stage} ({'merged' if merge else 'adapter'}) to {path}"
    )
