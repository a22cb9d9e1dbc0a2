"""Rich tables of a results.json, for the CLI (library code never prints; the CLI does)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from toolsft.eval.metrics import METRICS, metric_rows
from toolsft.eval.results import fmt_value, headline_rows, perf_rows

COMPACT = (
    "task_completion",
    "tool_selection",
    "irrelevance_recall",
    "arg_accuracy",
    "schema_validity",
    "answer_facts",
    "rouge_l",
    "compliance",
)


def headline_table(results: Mapping[str, Any]) -> Any:
    from rich.table import Table

    run = results["run"]
    title = f"{run.get('name') or run['model'].get('name')} · {run['engine'].get('engine')}"
    if run["decoding"].get("constrained"):
        title += " · constrained"
    table = Table(title=title)
    for col, just in (
        ("metric", "left"),
        ("value %", "right"),
        ("95% CI", "right"),
        ("n", "right"),
    ):
        table.add_column(col, justify=just)  # type: ignore[arg-type]
    for row in headline_rows(results):
        table.add_row(*row)
    return table


def group_rich(results: Mapping[str, Any], dim: str) -> Any:
    """Groups of `dim` as rows, the key metrics as (short) columns: fits an 80-column terminal."""
    from rich import box
    from rich.table import Table

    present = [(m, s) for m, s in metric_rows(results) if m.name in COMPACT]
    keys: list[str] = []
    for _, s in present:
        keys += [k for k in (s.get("by") or {}).get(dim, {}) if k not in keys]
    table = Table(title=f"by {dim} (%)", box=box.SIMPLE_HEAD, padding=(0, 1))
    table.add_column(dim, no_wrap=True, max_width=16)
    for m, _ in present:
        table.add_column(m.short, justify="right", no_wrap=True, min_width=5)
    for key in keys:
        cells = []
        for m, s in present:
            g = ((s.get("by") or {}).get(dim) or {}).get(key)
            cells.append(fmt_value(m, g["value"]) if g else "–")
        table.add_row(key, *cells)
    return table


def perf_table(results: Mapping[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title="latency and throughput")
    table.add_column("")
    table.add_column("", justify="right")
    for row in perf_rows(results):
        table.add_row(*row)
    return table


def compare_table(runs: Sequence[Mapping[str, Any]], labels: Sequence[str]) -> Any:
    """Metrics as rows, runs as columns (base vs stages side by side)."""
    from rich.table import Table

    table = Table(title="comparison (%)")
    table.add_column("metric")
    for label in labels:
        table.add_column(label, justify="right")
    for name, metric in METRICS.items():
        if not any(name in (r.get("metrics") or {}) for r in runs):
            continue
        table.add_row(
            metric.label,
            *[fmt_value(metric, (r.get("metrics") or {}).get(name, {}).get("value")) for r in runs],
        )
    return table
