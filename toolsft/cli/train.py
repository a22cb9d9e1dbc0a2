"""`toolsft train` (one curriculum stage, or --all) and `toolsft export` (merge for serving).

Thin: options -> TrainConfig -> one library call -> rich output. torch/trl load inside the
commands, so `toolsft --help` stays instant.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskID, TextColumn
from rich.table import Table

from toolsft.cli.home import toolsft_home

# CLI option -> TrainConfig field, for options that override the config file.
OVERRIDES = {
    "model": "model",
    "lr": "learning_rate",
    "epochs": "epochs",
    "max_steps": "max_steps",
    "max_time": "max_time",
    "batch_size": "batch_size",
    "grad_accum": "grad_accum",
    "max_length": "max_length",
    "max_rows": "max_train_rows",
    "max_val_rows": "max_val_rows",
    "replay_share": "replay_share",
    "decision_weight": "decision_weight",
    "save_steps": "save_steps",
    "method": "method",
    "lora_r": "lora_r",
    "lora_alpha": "lora_alpha",
    "lora_layers": "lora_layers",
    "lora_dropout": "lora_dropout",
    "warmup_ratio": "warmup_ratio",
    "lr_scheduler": "lr_scheduler",
    "chat_template": "chat_template",
    "seed": "seed",
}


# TrainConfig field -> the option that sets it, so a bad value names what the user typed.
LABELS = {field: "--" + opt.replace("_", "-") for opt, field in OVERRIDES.items()} | {
    "target_modules": "--target-modules",
    "modules_to_save": "--modules-to-save",
    "use_dora": "--dora",
    "use_rslora": "--rslora",
    "share_prefix": "--share-prefix",
    "prefix_grad": "--no-prefix-grad",
    "answer_loss_only": "--answer-loss-only",
    "early_stopping_patience": "--no-early-stopping",
}


def _passive_omp() -> None:
    """OpenMP threads that sleep instead of spinning while they wait for work.

    Must be set before torch loads libgomp. On a busy machine spinning threads fight over the
    cores: with the load average at 6 on 2 cores, a SmolLM2-135M forward over 900 tokens took
    ~20 s spinning and ~2 s passive. An explicit OMP_WAIT_POLICY in the environment wins.
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _flag_overrides(opts: dict[str, Any]) -> dict[str, Any]:
    out = {field: opts[opt] for opt, field in OVERRIDES.items() if opts.get(opt) is not None}
    if opts.get("target_modules"):
        out["target_modules"] = [m.strip() for m in opts["target_modules"].split(",") if m.strip()]
    if opts.get("modules_to_save"):
        out["modules_to_save"] = [
            m.strip() for m in opts["modules_to_save"].split(",") if m.strip()
        ]
    for flag in ("dora", "rslora"):
        if opts.get(flag):
            out[f"use_{flag}"] = True
    if opts.get("share_prefix"):
        out["share_prefix"] = True
    if opts.get("no_prefix_grad"):
        out["prefix_grad"] = False
    if opts.get("answer_loss_only"):
        out["answer_loss_only"] = True
    if opts.get("no_early_stopping"):
        out["early_stopping_patience"] = 0
    return out


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
    "--model", help="Base model: smollm2-135m (default), tiny-random, an HF id or a folder."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="YAML with TrainConfig fields, and `stages: {1: {...}}` per-stage overrides.",
)
@click.option(
    "--no-manifest",
    is_flag=True,
    help="Train on data without manifest.json (not from `toolsft gen`): its files go unverified.",
)
@click.option("--resume", is_flag=True, help="Skip complete stages; continue an interrupted one.")
@click.option("--overwrite", is_flag=True, help="Delete and retrain stages that already exist.")
@click.option("--max-steps", type=int, help="Optimizer steps per stage (default: epochs).")
@click.option(
    "--max-time",
    type=float,
    metavar="SECONDS",
    help="Stop each stage after this many seconds of steps (loading not counted); the "
    "schedule then decays over the time, not the steps.",
)
@click.option("--epochs", type=float, help="Epochs per stage [1].")
@click.option("--lr", type=float, help="Peak learning rate [2e-4].")
@click.option("--batch-size", type=int, help="Rows per micro-batch [auto].")
@click.option("--grad-accum", type=int, help="Micro-batches per step [auto: ~16 rows per step].")
@click.option(
    "--max-length", type=int, help="Longest row in tokens; longer rows are dropped [2048]."
)
@click.option("--max-rows", type=int, help="Use at most N of the stage's own training rows.")
@click.option(
    "--max-val-rows", type=int, help="Validation rows for eval loss [auto: 16 CPU, 64 GPU]."
)
@click.option(
    "--warmup-ratio",
    type=float,
    help="Share of steps (of the time with --max-time) in linear warmup [0.1].",
)
@click.option(
    "--lr-scheduler",
    help="Learning-rate schedule, a transformers name: cosine, linear, constant, ... [cosine].",
)
@click.option("--replay-share", type=float, help="Share of earlier stages' rows in the mix [0.2].")
@click.option(
    "--answer-loss-only",
    is_flag=True,
    help="In this stage's own rows with a tool result (stage 3), train the answers only, not "
    "the calls before the results; replayed rows keep every turn.",
)
@click.option(
    "--decision-weight",
    type=float,
    help="Loss weight of the tokens that decide a row (a turn's first token, tool names, "
    "argument values and the character after each, the character after each call) against 1 "
    "for the rest [1]; needs --share-prefix.",
)
@click.option("--save-steps", type=int, help="Checkpoint and evaluate every K steps [50].")
@click.option("--method", type=click.Choice(["lora", "qlora", "full"]), help="[lora]")
@click.option("--lora-r", type=int, help="LoRA rank [16].")
@click.option("--lora-alpha", type=int, help="LoRA alpha [32].")
@click.option(
    "--lora-dropout",
    type=float,
    help="Dropout on the LoRA path [0.05]; 0 saves ~15% of a CPU step on short runs.",
)
@click.option(
    "--lora-layers", type=int, help="LoRA on the last N layers only (0: all) [0]; faster steps."
)
@click.option(
    "--share-prefix",
    is_flag=True,
    help="Pack rows that share their prompt (data from `gen --show-all --group N`) into one "
    "sequence with a mask that keeps them apart: same loss, far fewer tokens. --batch-size "
    "then counts packs and --max-length caps a pack.",
)
@click.option(
    "--no-prefix-grad",
    is_flag=True,
    help="With --share-prefix: run each pack's shared prefix without gradient (same loss, "
    "1.34x faster CPU steps; the prefix's keys and values get no gradient).",
)
@click.option("--dora", is_flag=True, help="DoRA (weight-decomposed LoRA).")
@click.option("--rslora", is_flag=True, help="rsLoRA scaling.")
@click.option(
    "--target-modules", help="Comma-separated LoRA targets [q_proj,k_proj,v_proj,o_proj]."
)
@click.option(
    "--modules-to-save", help="Comma-separated modules trained in full (then serve via --merge)."
)
@click.option("--chat-template", type=click.Choice(["auto", "toolsft", "model"]), help="[auto]")
@click.option("--no-early-stopping", is_flag=True, help="Do not stop early on val loss.")
@click.option("--seed", type=int, help="[0]")
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

    stages = (1, 2, 3) if all_stages else (stage,)
    # The options first (instant), then, before any model loads, the manifest's hashes and
    # every row these stages train on.
    given = _flag_overrides(opts)
    configs = {s: load_config(config_file, s, given, LABELS) for s in stages}
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
    """Draw a progress bar fed by the library's Progress records."""
    from toolsft.train.callbacks import Progress as Update

    columns = (
        TextColumn("[bold]stage {task.fields[stage]}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} steps"),
        TextColumn("loss {task.fields[loss]}"),
        TextColumn("{task.fields[tps]} tok/s"),
        TextColumn("ETA {task.fields[eta]}"),
    )
    # Started on the first step, not before: an error while loading is then the only output.
    bar = Progress(*columns, console=console, transient=False)
    task: dict[str, TaskID] = {}
    printed = {"tenth": 0}

    def sink(p: Update) -> None:
        fields = {
            "stage": p.stage,
            "loss": "-" if p.loss is None else f"{p.loss:.4f}",
            "tps": f"{p.tokens_per_s:,.0f}",
            # the callback's ETA: the time left under --max-time, else steps left x pace
            "eta": "-:--" if p.eta_s is None else f"{int(p.eta_s) // 60}:{int(p.eta_s) % 60:02d}",
        }
        if "id" not in task:
            bar.start()
            task["id"] = bar.add_task("train", total=p.total_steps, **fields)
        bar.update(task["id"], completed=p.step, total=p.total_steps, **fields)
        # A log file or CI gets no live bar: a line every tenth of the run instead, on the
        # step's own event (its log event, if any, repeats the step).
        tenth = _tenth(p)
        if not console.is_terminal and p.event == "step" and tenth > printed["tenth"]:
            printed["tenth"] = tenth
            console.print(
                f"stage {p.stage}: step {p.step}/{p.total_steps}, loss {fields['loss']}, "
                f"{fields['tps']} tok/s"
            )

    try:
        return call(sink)
    finally:
        if task:
            bar.stop()


def _tenth(p: Any) -> int:
    """Tenths of the stage done (1-10) by its ETA, which follows --max-time when that comes
    first; by steps before the ETA is known. A line goes to a log at each new tenth."""
    if p.eta_s is not None and p.elapsed_s + p.eta_s > 0:
        return min(10, int(10 * p.elapsed_s / (p.elapsed_s + p.eta_s)) + (p.eta_s == 0))
    return int(10 * p.step / p.total_steps) if p.total_steps else 0


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
