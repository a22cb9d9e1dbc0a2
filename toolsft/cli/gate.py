"""`toolsft gate`: exit 0 when no metric regresses past its tolerance, 1 when one does,
2 when the runs cannot be compared (other suite or rows) or a file is unusable."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

EXIT_PASS, EXIT_REGRESSION, EXIT_REFUSED = 0, 1, 2


@click.command("gate")
@click.argument("results", type=click.Path(path_type=Path))
@click.option(
    "--baseline",
    required=True,
    type=click.Path(path_type=Path),
    help="Baseline file, e.g. evals/baselines/commerce.json (or a results.json).",
)
@click.option(
    "--tolerances",
    type=click.Path(path_type=Path),
    help="YAML of allowed drops per metric (default: evals/tolerances.yaml if present).",
)
@click.option("--update", is_flag=True, help="Write the run as the new baseline and exit 0.")
@click.option(
    "--floor",
    is_flag=True,
    help="With --update: keep the existing baseline's figure wherever it is lower than this "
    "run's, so the baseline is a floor that several reference runs all clear (for noisy, "
    "not bit-reproducible CPU runs).",
)
@click.option(
    "--markdown",
    type=click.Path(path_type=Path),
    help="Also write the table as Markdown (e.g. $GITHUB_STEP_SUMMARY).",
)
def gate(
    results: Path,
    baseline: Path,
    tolerances: Path | None,
    update: bool,
    floor: bool,
    markdown: Path | None,
) -> None:
    """Compare a run with a baseline; exit 1 on regression.

    A metric regresses when it drops more than its tolerance AND the baseline lies outside
    the run's 95% bootstrap interval. Runs on another suite or other rows are refused (exit 2).

    Example: toolsft gate reports/new/results.json --baseline evals/baselines/commerce.json
    """
    from toolsft.eval.gate import (
        GateRefused,
        baseline_from_results,
        comparability_warnings,
        floor_baseline,
        gate_markdown,
        load_baseline,
        load_tolerances,
        run_gate,
    )
    from toolsft.eval.results import ResultsError, load_results

    console = Console()
    if floor and not update:
        raise click.UsageError("--floor only goes with --update")
    try:
        new = load_results(results)
        if update:
            baseline.parent.mkdir(parents=True, exist_ok=True)
            doc = (
                floor_baseline(load_baseline(baseline), new)
                if floor and baseline.is_file()
                else baseline_from_results(new)
            )
            baseline.write_text(
                json.dumps(doc, ensure_ascii=False, indent=1) + "\n", encoding="utf-8"
            )
            console.print(f"wrote baseline [bold]{baseline}[/]")
            return
        if tolerances is None and Path("evals/tolerances.yaml").is_file():
            tolerances = Path("evals/tolerances.yaml")
        base = load_baseline(baseline)
        checks = run_gate(base, new, load_tolerances(tolerances))
    except (GateRefused, ResultsError) as exc:
        console.print(f"[red]gate refused:[/] {exc}")
        sys.exit(EXIT_REFUSED)
    warnings = comparability_warnings(base, new)
    console.print(_table(checks))
    for w in warnings:
        console.print(f"[yellow]warning:[/] {w}")
    md = gate_markdown(checks, warnings)
    if markdown:
        with open(markdown, "a", encoding="utf-8") as fh:
            fh.write(md)
    failed = [c.label for c in checks if c.failed]
    if failed:
        console.print(f"[red bold]gate failed:[/] {', '.join(failed)}")
        sys.exit(EXIT_REGRESSION)
    console.print("[green bold]gate passed[/]")


def _table(checks: list) -> object:  # list[Check]
    from rich.table import Table

    from toolsft.eval.metrics import METRICS

    style = {
        "pass": "green",
        "improved": "green",
        "new": "cyan",
        "too few": "dim",
        "regression": "red",
        "missing": "red",
    }
    table = Table(title="gate")
    for col in ("metric", "baseline", "new", "Δ", "tol", "verdict"):
        table.add_column(col, justify="left" if col in ("metric", "verdict") else "right")
    for c in checks:
        count = METRICS[c.metric].reduce == "sum"

        def f(v: float | None, count: bool = count) -> str:
            return "–" if v is None else (f"{v:g}" if count else f"{100 * v:.1f}")

        table.add_row(
            c.label,
            f(c.baseline),
            f(c.new),
            f(c.delta),
            f(c.tolerance),
            f"[{style[c.verdict]}]{c.verdict}[/]",
        )
    return table
