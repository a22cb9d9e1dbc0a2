"""A self-contained HTML report from one or more results.json (inline SVG, no JS).

The first run is the reference for deltas (e.g. the base model), later runs are compared to it
side by side: headline metrics with CIs, task completion per stage and per tool, a latency
histogram per run, and the most common failures of the last run. The page is the Jinja2
template `templates/report.html.j2` (autoescaped); this module computes what it shows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from toolsft.eval.metrics import METRICS
from toolsft.eval.results import failure_reasons, fmt_ci, fmt_value, perf_rows

PALETTE = ("#9aa5b1", "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#edc948", "#b07aa1")
BAR_METRICS = (
    "task_completion",
    "tool_selection",
    "irrelevance_recall",
    "arg_accuracy",
    "schema_validity",
    "answer_facts",
    "compliance",
    "rouge_l",
    "bleu",
)


@lru_cache(maxsize=1)
def _template() -> Any:
    from jinja2 import Environment, PackageLoader, StrictUndefined

    env = Environment(
        loader=PackageLoader("toolsft.eval", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    return env.get_template("report.html.j2")


def _value(
    run: Mapping[str, Any], name: str, dim: str | None = None, key: str = ""
) -> float | None:
    s = (run.get("metrics") or {}).get(name)
    if s is None:
        return None
    if dim is not None:
        s = ((s.get("by") or {}).get(dim) or {}).get(key)
    return None if s is None else s.get("value")


def _f(x: float) -> str:
    return f"{x:.1f}"


def grouped_bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    title: str,
    width: int = 1000,
    height: int = 260,
) -> dict[str, Any]:
    """A grouped bar chart of values in [0, 1] (missing values leave a gap), as the template's
    `bar_chart` macro draws it."""
    left, bottom, top = 40, 60, 24
    plot_h = height - bottom - top
    group_w = (width - left) / max(1, len(categories))
    bar_w = max(2.0, (group_w * 0.8) / max(1, len(series)))
    ticks = [
        {"y": _f(y), "text_y": _f(y + 4), "label": f"{int(t * 100)}%"}
        for t in (0, 0.5, 1.0)
        for y in [top + plot_h * (1 - t)]
    ]
    groups = []
    for i, cat in enumerate(categories):
        x0 = left + i * group_w + group_w * 0.1
        bars = []
        for j, (label, values) in enumerate(series):
            v = values[i]
            if v is None:
                continue
            h = plot_h * max(0.0, min(1.0, v))
            bars.append(
                {
                    "x": _f(x0 + j * bar_w),
                    "y": _f(top + plot_h - h),
                    "w": _f(bar_w - 1),
                    "h": _f(h),
                    "fill": PALETTE[j % len(PALETTE)],
                    "tip": f"{label} · {cat}: {100 * v:.1f}%",
                }
            )
        groups.append({"bars": bars, "x": _f(x0), "y": height - bottom + 14, "label": cat})
    return {
        "width": width,
        "height": height,
        "left": left,
        "title": title,
        "ticks": ticks,
        "groups": groups,
    }


def histogram(
    values: Sequence[float],
    title: str,
    color: str,
    bins: int = 20,
    width: int = 480,
    height: int = 180,
) -> dict[str, Any]:
    """A histogram of request latencies (seconds), as the template's `histogram` macro draws
    it; no values: no bins (the page says so)."""
    chart: dict[str, Any] = {"title": title, "color": color, "width": width, "height": height}
    if not values:
        return {**chart, "bins": []}
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    peak, plot_h, bw = max(counts), height - 40, (width - 20) / bins
    chart["bins"] = [
        {"x": _f(10 + i * bw), "y": _f(20 + plot_h - h), "w": _f(bw - 1), "h": _f(h), "count": c}
        for i, c in enumerate(counts)
        for h in [plot_h * c / peak]
    ]
    return {**chart, "low": f"{1000 * lo:.0f} ms", "high": f"{1000 * hi:.0f} ms"}


def _compare_rows(runs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per metric present in any run: its label and, per run, value, CI and delta vs the
    first run (`cls` up/down says whether the change is good)."""
    out = []
    for name, m in METRICS.items():
        if not any(name in (r.get("metrics") or {}) for r in runs):
            continue
        base = _value(runs[0], name)
        cells = []
        for r in runs:
            s = (r.get("metrics") or {}).get(name)
            cell = {
                "value": fmt_value(m, s["value"]) if s else None,
                "ci": fmt_ci(m, s) if s else "",
            }
            v = s["value"] if s else None
            delta, cls = "", ""
            if base is not None and v is not None and r is not runs[0]:
                d = v - base
                if abs(d) > 1e-9:
                    delta = f"{d * (1 if m.reduce == 'sum' else 100):+.1f}"
                    cls = "up" if (d > 0) == m.higher_is_better else "down"
                else:
                    delta = "±0"
            cells.append({**cell, "delta": delta, "cls": cls})
        out.append({"label": m.label, "cells": cells})
    return out


def _charts(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> list[dict[str, Any]]:
    pairs = list(zip(names, runs, strict=True))
    series = [(n, [_value(r, k) for k in BAR_METRICS]) for n, r in pairs]
    charts = [grouped_bars([METRICS[k].label for k in BAR_METRICS], series, "Headline metrics")]
    for dim in ("stage", "tool", "kind"):
        keys = sorted(
            {
                k
                for r in runs
                for k in ((r.get("metrics") or {}).get("task_completion", {}).get("by") or {}).get(
                    dim, {}
                )
            }
        )
        by_key = [(n, [_value(r, "task_completion", dim, k) for k in keys]) for n, r in pairs]
        charts.append(grouped_bars(keys, by_key, f"Task completion by {dim}"))
    return charts


def render_html(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    tables = [dict(perf_rows(r)) for r in runs]  # runs may cover different stages
    labels = list(dict.fromkeys(k for t in tables for k in t))
    last = runs[-1]["run"]
    return str(
        _template().render(
            suite=last["suite"]["name"],
            split=last["data"]["split"],
            rows=last["data"]["rows"],
            runs=[{"name": n, "color": PALETTE[i % len(PALETTE)]} for i, n in enumerate(names)],
            compare=_compare_rows(runs),
            charts=_charts(runs, names),
            histograms=[
                histogram(
                    (r.get("perf") or {}).get("latency_hist_s") or [],
                    f"{n}: request latency",
                    PALETTE[i % len(PALETTE)],
                )
                for i, (n, r) in enumerate(zip(names, runs, strict=True))
            ],
            perf=[(k, [t.get(k, "–") for t in tables]) for k in labels],
            failures=failure_reasons(runs[-1]),
        )
    )


def compare_markdown(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The comparison as a Markdown table (values in %, CIs dropped for width)."""
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, m in METRICS.items():
        if any(name in (r.get("metrics") or {}) for r in runs):
            lines.append(
                f"| {m.label} | " + " | ".join(fmt_value(m, _value(r, name)) for r in runs) + " |"
            )
    return "\n".join(lines) + "\n"
