"""`toolsft bfcl-score` and `toolsft export-bfcl`: BFCL in, BFCL out."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table


@click.command("bfcl-score")
@click.option(
    "--bfcl",
    "bfcl_dir",
    default="../shared/bfcl",
    show_default=True,
    type=click.Path(path_type=Path),
    help="BFCL data folder: BFCL_v4_<category>.json and possible_answer/.",
)
@click.option("--category", required=True, help="BFCL category, e.g. simple_python, parallel.")
@click.option(
    "--predictions",
    required=True,
    type=click.Path(path_type=Path),
    help='JSON Lines: {"id", "calls": [{"name", "arguments"}]}; empty calls = no call.',
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help='Verdicts, one JSON line per prediction in input order: {"id", "valid", "error_type"}.',
)
@click.option("--with-errors", is_flag=True, help="Add BFCL's error message to each verdict line.")
@click.option(
    "--underscore-to-dot",
    is_flag=True,
    help="Score as BFCL scores FC models: a dotted name must be answered with each dot written "
    "as an underscore (math.factorial -> math_factorial). Default: names exactly as given, as "
    "BFCL scores prompt-style models.",
)
def bfcl_score(
    bfcl_dir: Path,
    category: str,
    predictions: Path,
    out: Path,
    with_errors: bool,
    underscore_to_dot: bool,
) -> None:
    """Score BFCL predictions made elsewhere with BFCL's AST rules.

    Each prediction line is scored on its own (an id may repeat, e.g. several samples).
    Function names are compared in one of BFCL's two name modes, never both: as given
    (default), or with dots written as underscores (--underscore-to-dot).

    Example: toolsft bfcl-score --category simple_python --predictions preds.jsonl
    --out verdicts.jsonl
    """
    from toolsft.eval.bfcl import load_category, read_predictions, score_predictions
    from toolsft.io import atomic_write, check_writable

    check_writable(out, option="--out")  # before any scoring work
    entries = load_category(bfcl_dir, category)
    preds = read_predictions(predictions)
    verdicts = score_predictions(
        category, entries, preds, source=str(predictions), underscore_to_dot=underscore_to_dot
    )
    lines = []
    for pred, verdict in zip(preds, verdicts, strict=True):
        row = {"id": pred.id, "valid": verdict.valid, "error_type": verdict.error_type}
        if with_errors:
            row["error"] = verdict.error
        # ASCII escapes: a model's lone surrogate in an error message stays writable.
        lines.append(json.dumps(row) + "\n")
    atomic_write(out, "".join(lines))

    console = Console()
    n, valid = len(verdicts), sum(v.valid for v in verdicts)
    table = Table(title="BFCL AST score")
    for col in ("category", "n", "valid", "accuracy"):
        table.add_column(col, justify="left" if col == "category" else "right")
    table.add_row(category, str(n), str(valid), f"{valid / n:.2%}" if n else "-")
    table.caption = "names: " + ("dots as underscores (FC)" if underscore_to_dot else "as given")
    console.print(table)
    errors = Counter(v.error_type for v in verdicts if not v.valid)
    if errors:
        console.print("errors: " + ", ".join(f"{k} {c}" for k, c in errors.most_common()))
    missing = len({e.id for e in entries} - {p.id for p in preds})
    if missing:
        console.print(f"[yellow]{missing} of {len(entries)} {category} ids have no prediction[/]")
    console.print(f"[green]wrote[/] {out}")


@click.command("export-bfcl")
@click.option(
    "--data",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Generated dataset folder, e.g. datasets/commerce (its name is the suite).",
)
@click.option("--stage", default="all", show_default=True, help="Stage number, or 'all'.")
@click.option("--split", default="test", show_default=True, help="Split to export.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path, file_okay=False),
    help="Output folder for BFCL_v4_toolsft_<suite>*.json and possible_answer/.",
)
def export_bfcl(data: Path, stage: str, split: str, out: Path) -> None:
    """Write a generated split as BFCL question + possible_answer files.

    One-call rows go to BFCL_v4_toolsft_<suite>_multiple.json, several-call rows to ..._parallel.json
    (scored in any order) and no-call rows to ..._irrelevance.json (no answers).

    Example: toolsft export-bfcl --data datasets/commerce --stage all --out bfcl_out
    """
    from toolsft.gen.export_bfcl import export

    if stage != "all" and not stage.isdigit():
        raise click.BadParameter(
            f"{stage!r} is neither a stage number nor 'all'", param_hint="--stage"
        )
    categories = export(data, stage, split, out)  # a bad dataset raises DataError, naming it
    table = Table(title=f"export-bfcl: {data} stage {stage} {split}")
    for col in ("category", "entries", "answers"):
        table.add_column(col, justify="left" if col == "category" else "right")
    for cat in categories:
        answers = "-" if cat.answers is None else str(len(cat.answers))
        table.add_row(cat.name, str(len(cat.entries)), answers)
    console = Console()
    console.print(table)
    console.print(f"[green]wrote[/] {out}")
