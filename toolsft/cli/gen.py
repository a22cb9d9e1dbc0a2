"""`toolsft gen`: a suite in, staged verified data out."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from toolsft.types import LANGS, STAGES

MAX_ROWS = 1_000_000
"""Upper bound of --per-stage and --group: far above any real dataset, and it keeps a typo
(an extra digit or ten) from running for hours."""


@click.command("gen")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=click.Path(path_type=Path),
    help="Suite folder, e.g. tool_schemas/commerce.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder, e.g. datasets/commerce (stage1/ stage2/ stage3/ manifest.json). "
    "Built beside it and swapped in whole at the end; must be new or empty unless --overwrite.",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace the dataset already in --out, whole (no file of it is kept).",
)
@click.option("--seed", default=0, show_default=True, help="Same suite + seed -> identical files.")
@click.option(
    "--per-stage",
    default=1000,
    show_default=True,
    type=click.IntRange(1, MAX_ROWS),
    help="Training rows per stage (val: 10%, test: 20% of this).",
)
@click.option("--lang", default="zh,en", show_default=True, help="Comma-separated languages.")
@click.option("--stages", default="1,2,3", show_default=True, help="Stages to generate.")
@click.option(
    "--max-tools",
    default=0,
    show_default=True,
    help="Tools shown in stage-1 rows (0: all; confusable tools always included).",
)
@click.option(
    "--show-all",
    is_flag=True,
    help="Show every tool in every row of every stage, as a deployed model sees them "
    "(overrides --max-tools).",
)
@click.option(
    "--suite-order",
    is_flag=True,
    help="With --show-all, list the tools in the suite's order in every row (as a deployment "
    "does) instead of shuffling them per group, so every prompt starts with the same tool list.",
)
@click.option(
    "--group",
    default=1,
    show_default=True,
    type=click.IntRange(1, MAX_ROWS),
    help="Rows per prompt group: consecutive rows share language, date and (with --show-all) "
    "tool order, so `train --share-prefix` computes their common prompt once.",
)
@click.option(
    "--entity-swap",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of free-text values (cities, products, addresses) that train/val rows replace "
    "with new values of the same shape, so the model learns to copy rather than recall the "
    "pool. The test split never swaps.",
)
@click.option(
    "--format",
    "fmt",
    default="jsonl",
    show_default=True,
    type=click.Choice(["jsonl", "hf", "sharegpt"]),
    help="JSONL is always written; hf adds save_to_disk folders, sharegpt adds "
    "LLaMA-Factory files with dataset_info.json.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="YAML whose `gen` section sets these options (per_stage, max_tools, group, show_all, "
    "suite_order, entity_swap, lang, stages), e.g. configs/demo/cpu.yaml; options given on "
    "the command line win.",
)
@click.pass_context
def gen(
    ctx: click.Context,
    config_file: Path | None,
    suite_path: Path,
    out: Path,
    overwrite: bool,
    seed: int,
    per_stage: int,
    lang: str,
    stages: str,
    max_tools: int,
    show_all: bool,
    suite_order: bool,
    group: int,
    entity_swap: float,
    fmt: str,
) -> None:
    """Generate staged, verified SFT data from a tool suite.

    Stage 1 teaches tool selection, stage 2 parameter filling, stage 3 answering from tool
    results. Every row is verified before it is written; rejections are counted by reason.

    Example: toolsft gen --suite tool_schemas/commerce --out datasets/commerce --seed 0
    """
    from toolsft.gen.pipeline import GenConfig, generate
    from toolsft.gen.writer import DatasetWriter
    from toolsft.schema.suite import load_suite

    if config_file is not None:
        cfg = _config_section(ctx, config_file)
        per_stage = cfg.get("per_stage", per_stage)
        max_tools = cfg.get("max_tools", max_tools)
        group = cfg.get("group", group)
        show_all = cfg.get("show_all", show_all)
        suite_order = cfg.get("suite_order", suite_order)
        entity_swap = cfg.get("entity_swap", entity_swap)
        lang = cfg.get("lang", lang)
        stages = cfg.get("stages", stages)
    console = Console()
    langs = tuple(x.strip() for x in lang.split(",") if x.strip())
    bad = [x for x in langs if x not in LANGS]
    if bad or not langs:
        raise click.BadParameter(
            f"unknown language(s) {bad} (known: {', '.join(LANGS)})", param_hint="--lang"
        )
    try:
        stage_t = tuple(int(s) for s in stages.split(","))
    except ValueError as exc:
        raise click.BadParameter(
            f"{stages!r} is not a list like 1,2,3", param_hint="--stages"
        ) from exc
    if not stage_t or any(s not in STAGES for s in stage_t):
        raise click.BadParameter(
            f"{stages!r}: stages are {', '.join(map(str, STAGES))}", param_hint="--stages"
        )
    stage_t = tuple(sorted(set(stage_t)))  # a stage named twice is generated once
    if max_tools < 0:
        raise click.BadParameter(
            f"must be 0 (all) or more, got {max_tools}", param_hint="--max-tools"
        )
    if suite_order and not show_all:
        raise click.BadParameter(
            "needs --show-all (rows otherwise show a few tools each)", param_hint="--suite-order"
        )
    suite = load_suite(suite_path)
    cfg = GenConfig(
        seed=seed,
        per_stage=per_stage,
        langs=langs,
        stages=stage_t,
        max_tools=max_tools,
        show_all=show_all,
        suite_order=suite_order,
        group=group,
        entity_swap=entity_swap,
    )
    total = sum(cfg.split_sizes().values()) * len(stage_t)
    # The writer refuses a non-empty --out before any work, builds the dataset beside it and
    # swaps it in only once manifest.json is written: a killed run leaves --out as it was.
    with DatasetWriter(out, fmt, overwrite) as writer:
        with Progress(
            TextColumn("[bold]gen[/] {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task(suite.name, total=total)
            result = generate(
                suite, cfg, progress=lambda n: bar.advance(task, n), on_split=writer.add
            )
        manifest = writer.commit(result.manifest(suite, cfg))
    console.print(summary_table(manifest))
    if manifest["rejections"]:
        rej = ", ".join(f"{k}: {v}" for k, v in manifest["rejections"].items())
        console.print(f"[yellow]rejected (not written):[/] {rej}")
    ov = manifest["overlap"]
    console.print(f"train/test overlap: templates {ov['templates']}, values {ov['values']}")
    console.print(
        f"[green]wrote[/] {out}: {len(manifest['files'])} files, each with its sha256 in "
        f"{out}/manifest.json"
    )


def summary_table(manifest: dict) -> Table:
    table = Table(title=f"toolsft gen: {manifest['suite']} (seed {manifest['seed']})")
    for col in ("stage", "split", "rows", "zh", "en", "kinds"):
        table.add_column(col, justify="right" if col in ("rows", "zh", "en") else "left")
    for stage, splits in manifest["counts"].items():
        for split, c in splits.items():
            kinds = " ".join(f"{k}:{v}" for k, v in c["kind"].items())
            table.add_row(
                stage,
                split,
                str(c["total"]),
                str(c["lang"].get("zh", 0)),
                str(c["lang"].get("en", 0)),
                kinds,
            )
    return table


CONFIG_KEYS = {
    "per_stage": int,
    "max_tools": int,
    "group": int,
    "show_all": bool,
    "suite_order": bool,
    "entity_swap": float,
    "lang": str,
    "stages": str,
}


CONFIG_RANGES: dict[str, tuple[float | None, float | None]] = {
    "per_stage": (1, MAX_ROWS),
    "group": (1, MAX_ROWS),
    "max_tools": (0, None),
    "entity_swap": (0, 1),
}
"""The bounds the command line's option types enforce, for the same values from a file."""


def _config_section(ctx: click.Context, file: Path) -> dict[str, object]:
    """The `gen` section of a config file, less the options given on the command line."""
    from toolsft.errors import ToolsftError
    from toolsft.train.config import read_config_yaml

    data = read_config_yaml(file)
    section = data.get("gen", {}) if isinstance(data, dict) else None
    if not isinstance(section, dict):
        raise ToolsftError("must be a mapping of gen options", file=file, where="gen")
    out: dict[str, object] = {}
    for key, value in section.items():
        kind = CONFIG_KEYS.get(key)
        if kind is None:
            raise ToolsftError(
                f"unknown gen option (known: {', '.join(CONFIG_KEYS)})",
                file=file,
                where=f"gen.{key}",
            )
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if kind is str and isinstance(value, list):
            value = ",".join(map(str, value))
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise ToolsftError(
                f"must be {kind.__name__}", file=file, where=f"gen.{key}", value=value
            )
        low, high = CONFIG_RANGES.get(key, (None, None))
        # Written so that NaN fails too: every comparison with it is False.
        if not ((low is None or low <= value) and (high is None or value <= high)):
            bound = f"at least {low}" if high is None else f"from {low} to {high}"
            raise ToolsftError(f"must be {bound}", file=file, where=f"gen.{key}", value=value)
        source = ctx.get_parameter_source(key)
        if source is not click.core.ParameterSource.COMMANDLINE:
            out[key] = value
    return out
