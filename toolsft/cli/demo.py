"""`toolsft demo`: for now, generate data for every shipped suite and print the summaries.

The full loop (gen -> eval base -> train 1..3 -> eval -> export -> report -> gate) replaces
this once training and evaluation land.
"""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console


@click.command("demo")
@click.option(
    "--suites",
    default="tool_schemas",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Folder whose sub-folders are suites.",
)
@click.option(
    "--out",
    default="datasets",
    show_default=True,
    type=click.Path(path_type=Path),
    help="Where datasets/<suite>/ are written.",
)
@click.option("--per-stage", default=1000, show_default=True, help="Training rows per stage.")
@click.option("--seed", default=0, show_default=True)
def demo(suites: Path, out: Path, per_stage: int, seed: int) -> None:
    """Generate staged, verified data for every shipped suite and print the summaries."""
    from toolsft.cli.gen import gen

    names = sorted(p.name for p in suites.iterdir() if (p / "suite.yaml").is_file())
    if not names:
        raise click.ClickException(f"{suites}: no suite folders (with suite.yaml) found")
    ctx = click.get_current_context()
    for name in names:
        Console().rule(f"[bold]{name}")
        ctx.invoke(
            gen,
            suite_path=suites / name,
            out=out / name,
            seed=seed,
            per_stage=per_stage,
            lang="zh,en",
            stages="1,2,3",
            max_tools=0,
            fmt="jsonl",
        )
