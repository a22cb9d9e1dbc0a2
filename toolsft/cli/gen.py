"""`toolsft gen`: a suite in, staged verified data out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from toolsft.cli.options import dataclass_options, given, labels
from toolsft.cli.params import SUITE, SUITE_HELP
from toolsft.cli.progress import StepBar
from toolsft.gen.pipeline import GenConfig


@click.command("gen")
@click.option(
    "--suite",
    "suite_path",
    required=True,
    type=SUITE,
    help=SUITE_HELP,
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
@dataclass_options(GenConfig)
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
    help="YAML whose `gen` section sets any of the options above by field name (per_stage: "
    "500, langs: [en], show_all: true), e.g. configs/demo/cpu.yaml; options given on the "
    "command line win.",
)
def gen(
    config_file: Path | None, suite_path: Path, out: Path, overwrite: bool, fmt: str, **opts: Any
) -> None:
    """Generate staged, verified SFT data from a tool suite.

    Stage 1 teaches tool selection, stage 2 parameter filling, stage 3 answering from tool
    results. Every row is verified before it is written; rejections are counted by reason.

    Example: toolsft gen --suite tool_schemas/commerce --out datasets/commerce --seed 0
    """
    from toolsft.gen.pipeline import generate, load_gen_config
    from toolsft.gen.writer import DatasetWriter
    from toolsft.schema.suite import load_suite

    cfg = load_gen_config(config_file, given(GenConfig, opts), labels(GenConfig))
    console = Console()
    suite = load_suite(suite_path)
    total = sum(cfg.split_sizes().values()) * len(cfg.stages)
    # The writer refuses a non-empty --out before any work, builds the dataset beside it and
    # swaps it in only once manifest.json is written: a killed run leaves --out as it was.
    with DatasetWriter(out, fmt, overwrite) as writer:
        with StepBar(console, f"gen {suite.name}", total=total, unit="rows", transient=True) as bar:
            result = generate(
                suite, cfg, progress=lambda n: bar.update(advance=n), on_split=writer.add
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
