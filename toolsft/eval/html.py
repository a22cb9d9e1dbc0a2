"""A self-contained HTML report from one or more results.json (inline SVG, no JS, no deps).

The first run is the reference for deltas (e.g. the base model), later runs are compared to it
side by side: headline metrics with CIs, task completion per stage and per tool, a latency
histogram per run, and the most common failures of the last run.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
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
CSS = """body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;padding:4px 8px;
text-align:right}td:first-child,th:first-child{text-align:left}.up{color:#2a7d2a}
.down{color:#b22}.ci{color:#888;font-size:85%}h2{margin-top:2rem}.legend span{margin-right:1rem}"""


def _value(
    run: Mapping[str, Any], name: str, dim: str | None = None, key: str = ""
) -> float | None:
    s = (run.get("metrics") or {}).get(name)
    if s is None:
        return None
    if dim is not None:
        s = ((s.get("by") or {}).get(dim) or {}).get(key)
    return None if s is None else s.get("value")


def grouped_bars(
    categories: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    title: str,
    width: int = 1000,
    height: int = 260,
) -> str:
    """An SVG grouped bar chart of values in [0, 1] (missing values leave a gap)."""
    left, bottom, top = 40, 60, 24
    plot_h = height - bottom - top
    group_w = (width - left) / max(1, len(categories))
    bar_w = max(2.0, (group_w * 0.8) / max(1, len(series)))
    parts = [
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-size="11"><text x="{left}" y="14" font-weight="bold">{html.escape(title)}</text>'
    ]
    for tick in (0, 0.5, 1.0):
        y = top + plot_h * (1 - tick)
        parts.append(
            f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="4" y="{y + 4:.1f}">{int(tick * 100)}%</text>'
        )
    for i, cat in enumerate(categories):
        x0 = left + i * group_w + group_w * 0.1
        for j, (label, values) in enumerate(series):
            v = values[i]
            if v is None:
                continue
            h = plot_h * max(0.0, min(1.0, v))
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{bar_w - 1:.1f}" height="{h:.1f}" '
                f'fill="{PALETTE[j % len(PALETTE)]}"><title>{html.escape(label)} · '
                f"{html.escape(cat)}: {100 * v:.1f}%</title></rect>"
            )
        parts.append(
            f'<text x="{x0:.1f}" y="{height - bottom + 14}" transform="rotate(20 '
            f'{x0:.1f},{height - bottom + 14})">{html.escape(cat)}</text>'
        )
    return "".join(parts) + "</svg>"


def histogram(
    values: Sequence[float],
    title: str,
    color: str,
    bins: int = 20,
    width: int = 480,
    height: int = 180,
) -> str:
    """An SVG histogram of request latencies (seconds)."""
    if not values:
        return f"<p>{html.escape(title)}: no latency data</p>"
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    counts = [0] * bins
    for v in values:
        counts[min(bins - 1, int((v - lo) / span * bins))] += 1
    peak, plot_h, bw = max(counts), height - 40, (width - 20) / bins
    parts = [
        f'<svg width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg" '
        f'font-size="11"><text x="10" y="14" font-weight="bold">{html.escape(title)}</text>'
    ]
    for i, c in enumerate(counts):
        h = plot_h * c / peak
        parts.append(
            f'<rect x="{10 + i * bw:.1f}" y="{20 + plot_h - h:.1f}" width="{bw - 1:.1f}" '
            f'height="{h:.1f}" fill="{color}"><title>{c}</title></rect>'
        )
    parts.append(
        f'<text x="10" y="{height - 4}">{1000 * lo:.0f} ms</text>'
        f'<text x="{width - 70}" y="{height - 4}">{1000 * hi:.0f} ms</text>'
    )
    return "".join(parts) + "</svg>"


def _compare_rows(runs: Sequence[Mapping[str, Any]]) -> list[tuple[str, list[str], list[str]]]:
    """(label, value cells, delta-vs-first cells) per metric present in any run."""
    out = []
    for name, m in METRICS.items():
        if not any(name in (r.get("metrics") or {}) for r in runs):
            continue
        base = _value(runs[0], name)
        cells, deltas = [], []
        for r in runs:
            s = (r.get("metrics") or {}).get(name)
            cells.append(
                fmt_value(m, s["value"]) + f' <span class="ci">{fmt_ci(m, s)}</span>' if s else "–"
            )
            v = s["value"] if s else None
            if base is None or v is None or r is runs[0]:
                deltas.append("")
                continue
            d = v - base
            good = (d > 0) == m.higher_is_better
            deltas.append(
                f'<span class="{"up" if good else "down"}">{d * (1 if m.reduce == "sum" else 100):+.1f}</span>'
                if abs(d) > 1e-9
                else "±0"
            )
        out.append((m.label, cells, deltas))
    return out


def render_html(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    body = []
    for label, cells, deltas in _compare_rows(runs):
        tds = "".join(f"<td>{c} {d}</td>" for c, d in zip(cells, deltas, strict=True))
        body.append(f"<tr><td>{html.escape(label)}</td>{tds}</tr>")
    legend = "".join(
        f'<span style="color:{PALETTE[i % len(PALETTE)]}">■ {html.escape(n)}</span>'
        for i, n in enumerate(names)
    )
    series = [(n, [_value(r, k) for k in BAR_METRICS]) for n, r in zip(names, runs, strict=True)]
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
        charts.append(
            grouped_bars(
                keys,
                [
                    (n, [_value(r, "task_completion", dim, k) for k in keys])
                    for n, r in zip(names, runs, strict=True)
                ],
                f"Task completion by {dim}",
            )
        )
    hists = "".join(
        histogram(
            (r.get("perf") or {}).get("latency_hist_s") or [],
            f"{n}: request latency",
            PALETTE[i % len(PALETTE)],
        )
        for i, (n, r) in enumerate(zip(names, runs, strict=True))
    )
    perf = _perf_html(runs, names)
    fails = "".join(
        f"<tr><td>{html.escape(k)}</td><td>{c}</td></tr>" for k, c in failure_reasons(runs[-1])
    )
    run0 = runs[-1]["run"]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>toolsft report</title>"
        f"<style>{CSS}</style></head><body><h1>toolsft report</h1>"
        f"<p>suite <code>{html.escape(run0['suite']['name'])}</code> · split "
        f"<code>{html.escape(run0['data']['split'])}</code> · {run0['data']['rows']} rows · "
        f"values in %, 95% CI in grey, deltas vs <b>{html.escape(names[0])}</b></p>"
        f"<h2>Comparison</h2><table><tr><th>metric</th>{head}</tr>{''.join(body)}</table>"
        f"<h2>Charts</h2><p class='legend'>{legend}</p>{''.join(charts)}"
        f"<h2>Latency</h2>{hists}{perf}"
        f"<h2>Most common failures ({html.escape(names[-1])})</h2>"
        f"<table><tr><th>reason</th><th>rows</th></tr>{fails}</table></body></html>\n"
    )


def _perf_html(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    tables = [dict(perf_rows(r)) for r in runs]  # runs may cover different stages
    labels = list(dict.fromkeys(k for t in tables for k in t))
    head = "".join(f"<th>{html.escape(n)}</th>" for n in names)
    rows = "".join(
        f"<tr><td>{html.escape(k)}</td>"
        + "".join(f"<td>{html.escape(t.get(k, '–'))}</td>" for t in tables)
        + "</tr>"
        for k in labels
    )
    return f"<table><tr><th></th>{head}</tr>{rows}</table>"


def compare_markdown(runs: Sequence[Mapping[str, Any]], names: Sequence[str]) -> str:
    """The comparison as a Markdown table (values in %, CIs dropped for width)."""
    lines = ["| metric | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for name, m in METRICS.items():
        if any(name in (r.get("metrics") or {}) for r in runs):
            lines.append(
                f"| {m.label} | " + " | ".join(fmt_value(m, _value(r, name)) for r in runs) + " |"
            )
    return "\n".join(lines) + "\n"
