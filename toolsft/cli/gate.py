"""`toolsft gate`: exit 0 when no metric regresses, 1 when one does, 2 when a file is unusable
or the runs cannot be compared (another suite, split or episode set): never 0 on a file it
could not compare."""

from __future__ import annotations

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
    help="YAML of allowed drops per metric and alpha (default: the shipped evals/tolerances.yaml).",
)
@click.option(
    "--update",
    is_flag=True,
    help="Write the run (after validating it) as the new baseline, print what changed, exit 0.",
)
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
    """Compare a run with a baseline; exit 1 on regression, 2 when they cannot be compared.

    A metric regresses when it is worse by more than its tolerance AND the drop is
    significant (one-sided tests at alpha 0.05 for the whole gate, Holm-adjusted; paired on
    the episodes both runs scored where the baseline kept them). Both files are validated
    first; runs on another suite, split or episode set are refused (exit 2).

    Example: toolsft gate reports/new/results.json --baseline evals/baselines/commerce.json
    """
    from toolsft.eval.gate import (
        gate_markdown,
        load_baseline,
        load_tolerances,
        method_line,
        run_gate,
    )
    from toolsft.eval.results import load_results
    from toolsft.io import check_writable

    console = Console()
    if floor and not update:
        raise click.UsageError("--floor only goes with --update")
    # Where the gate writes is checked before it prints anything: no table, then an error.
    if update:
        check_writable(baseline, option="--baseline")
    if markdown:
        check_writable(markdown, option="--markdown", special=True)  # appended: a pipe is fine
    new = load_results(results)
    if update:
        _update(console, new, baseline, floor)
        return
    if tolerances is None:
        from toolsft.shipped import shipped_tolerances

        tolerances = shipped_tolerances()
    tol = load_tolerances(tolerances)
    result = run_gate(load_baseline(baseline), new, tol)
    if markdown:  # before the table: a write that still fails must not follow a full report
        markdown.parent.mkdir(parents=True, exist_ok=True)
        with open(markdown, "a", encoding="utf-8") as fh:
            fh.write(gate_markdown(result))
    console.print(_table(result))
    console.print(f"[dim]{method_line(result)}[/]")
    for w in result.warnings:
        console.print(f"[yellow]warning:[/] {w}")
    if result.failed:
        console.print(f"[red bold]gate failed:[/] {', '.join(c.label for c in result.failed)}")
        sys.exit(EXIT_REGRESSION)
    console.print("[green bold]gate passed[/]")


def _update(console: Console, new: dict, baseline: Path, floor: bool) -> None:
    """Write the (already validated) run as the baseline, atomically, and say what changed.
    An unusable old baseline is replaced (and said so), except by --floor, which needs it."""
    from toolsft.eval.baseline import (
        baseline_changes,
        baseline_from_results,
        dump_baseline,
        portable,
    )
    from toolsft.eval.gate import GateRefused, floor_baseline, load_baseline
    from toolsft.io import atomic_write

    old = None
    if baseline.exists():
        try:
            old = load_baseline(baseline)
        except GateRefused as exc:
            if floor:
                raise
            console.print(f"[yellow]replacing an unusable baseline:[/] {exc}")
    doc = floor_baseline(old, new) if floor and old is not None else baseline_from_results(new)
    # Paths under the working directory (a checkout) are written relative: baselines are committed.
    doc = {**doc, "run": portable(doc.get("run"), Path.cwd())}
    atomic_write(baseline, dump_baseline(doc))
    changes = baseline_changes(old, doc)
    console.print(f"wrote baseline [bold]{baseline}[/] ({len(doc.get('rows') or [])} episodes)")
    for line in changes or ["no metric changed"]:
        console.print(f"  {line}")


def _table(result: object) -> object:  # GateResult -> rich Table
    from rich.table import Table

    from toolsft.eval.gate import TESTS, fmt_p
    from toolsft.eval.metrics import METRICS

    style = {
        "pass": "green",
        "improved": "green",
        "new": "cyan",
        "regression": "red",
        "missing": "red",
    }
    table = Table(title="gate")
    for col in ("metric", "baseline", "new", "Δ", "tol", "p (Holm)", "test", "verdict"):
        table.add_column(col, justify="left" if col in ("metric", "test", "verdict") else "right")
    for c in result.checks:  # type: ignore[attr-defined]
        count = METRICS[c.metric].reduce == "sum"

        def f(v: float | None, count: bool = count) -> str:
            return "–" if v is None else (f"{v:g}" if count else f"{100 * v:.1f}")

        table.add_row(
            c.label,
            f(c.baseline),
            f(c.new),
            f(c.delta),
            f(c.tolerance),
            fmt_p(c.p),
            TESTS.get(c.test, "–"),
            f"[{style[c.verdict]}]{c.verdict}[/]",
        )
    return table
