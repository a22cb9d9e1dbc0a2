"""Learning curves: one results.json per snapshot -> curve.json, a table and an SVG plot.

Each point is one model (the base, a snapshot at some optimizer step, a finished stage)
scored on the same fixed episode set, so points differ only in training, and every figure
carries its interval and n.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CURVE_SCHEMA = "toolsft.curve/1"
CURVE_METRICS = (
    "task_completion",
    "tool_selection",
    "irrelevance_recall",
    "schema_validity",
    "arg_accuracy",
)
"""The metrics a curve follows (where a run has them)."""
PLOT_COLORS = ("#e15759", "#4e79a7", "#59a14f", "#f28e2b", "#b07aa1")


@dataclass(frozen=True)
class Point:
    """One scored model on the curve."""

    name: str
    stage: int
    """0 for the base model."""
    step: int
    """Optimizer step within its stage (0 for the base model)."""
    global_step: int
    """Steps since the base model, over all stages."""
    tokens_seen: int
    results_file: str


def _figure(entry: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if not entry:
        return None
    return {"value": entry.get("value"), "ci": entry.get("ci"), "n": entry.get("n")}


def point_entry(point: Point, results: Mapping[str, Any]) -> dict[str, Any]:
    """curve.json's record of one point: headline figures, and task completion by stage and
    by kind of episode, each with its interval and n."""
    metrics = results.get("metrics") or {}
    tc_by = (metrics.get("task_completion") or {}).get("by") or {}
    return {
        "name": point.name,
        "stage": point.stage,
        "step": point.step,
        "global_step": point.global_step,
        "tokens_seen": point.tokens_seen,
        "results": point.results_file,
        "metrics": {k: _figure(metrics.get(k)) for k in CURVE_METRICS if metrics.get(k)},
        "task_completion_by": {
            dim: {k: _figure(v) for k, v in (tc_by.get(dim) or {}).items()}
            for dim in ("stage", "kind")
        },
    }


def curve_document(
    entries: Sequence[Mapping[str, Any]], run: Mapping[str, Any], episodes: Mapping[str, Any]
) -> dict[str, Any]:
    """The whole curve.json: what was scored (suite, split, episode set, engine) and the
    points in training order."""
    return {
        "schema": CURVE_SCHEMA,
        "run": dict(run),
        "episodes": dict(episodes),
        "points": sorted(entries, key=lambda e: (e["global_step"], e["stage"])),
    }


def curve_rows(curve: Mapping[str, Any]) -> list[list[str]]:
    """A table (header first) of the headline figures per point, values in %."""
    head = ["point", "stage", "step", "tokens", *CURVE_METRICS]
    rows = [head]
    for p in curve.get("points", []):
        cells = [p["name"], str(p["stage"]), str(p["global_step"]), f"{p['tokens_seen']:,}"]
        for k in CURVE_METRICS:
            cells.append(_pct((p.get("metrics") or {}).get(k)))
        rows.append(cells)
    return rows


def _pct(fig: Mapping[str, Any] | None) -> str:
    if not fig or fig.get("value") is None:
        return "-"
    ci = fig.get("ci") or [None, None]
    if ci[0] is None or ci[1] is None:
        return f"{100 * fig['value']:.1f}"
    return f"{100 * fig['value']:.1f} [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def curve_markdown(curve: Mapping[str, Any]) -> str:
    rows = curve_rows(curve)
    out = ["| " + " | ".join(rows[0]) + " |", "|" + "---|" * len(rows[0])]
    out += ["| " + " | ".join(r) + " |" for r in rows[1:]]
    return "\n".join(out) + "\n"


def curve_svg(curve: Mapping[str, Any], width: int = 640, height: int = 320) -> str:
    """Each headline metric against optimizer steps (over all stages), with its 95% interval
    as a band; dashed verticals mark where a stage ends."""
    points = list(curve.get("points", []))
    pad_l, pad_r, pad_t, pad_b = 44, 150, 16, 34
    w, h = width - pad_l - pad_r, height - pad_t - pad_b
    xmax = max((p["global_step"] for p in points), default=1) or 1

    def x(step: float) -> float:
        return pad_l + w * step / xmax

    def y(v: float) -> float:
        return pad_t + h * (1 - v)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        'font-family="sans-serif" font-size="11">',
        f'<rect x="{pad_l}" y="{pad_t}" width="{w}" height="{h}" fill="none" stroke="#bbb"/>',
    ]
    for v in (0, 0.25, 0.5, 0.75, 1.0):
        parts.append(
            f'<line x1="{pad_l}" x2="{pad_l + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
            'stroke="#eee"/>'
            f'<text x="{pad_l - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{int(100 * v)}%</text>'
        )
    for step in sorted({p["global_step"] for p in points}):
        parts.append(
            f'<text x="{x(step):.1f}" y="{pad_t + h + 13}" text-anchor="middle">{step}</text>'
        )
    for end in _stage_ends(points):
        parts.append(
            f'<line x1="{x(end):.1f}" x2="{x(end):.1f}" y1="{pad_t}" y2="{pad_t + h}" '
            'stroke="#999" stroke-dasharray="4 3"/>'
        )
    parts.append(
        f'<text x="{pad_l + w / 2:.0f}" y="{height - 6}" text-anchor="middle">'
        "optimizer steps (all stages)</text>"
    )
    for i, metric in enumerate(CURVE_METRICS):
        parts += _series(points, metric, PLOT_COLORS[i % len(PLOT_COLORS)], x, y)
        ly = pad_t + 14 * i + 8
        parts.append(
            f'<rect x="{pad_l + w + 10}" y="{ly - 8}" width="10" height="10" '
            f'fill="{PLOT_COLORS[i % len(PLOT_COLORS)]}"/>'
            f'<text x="{pad_l + w + 24}" y="{ly + 1}">{html.escape(metric)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _stage_ends(points: Sequence[Mapping[str, Any]]) -> list[int]:
    ends: dict[int, int] = {}
    for p in points:
        if p["stage"] > 0:
            ends[p["stage"]] = max(ends.get(p["stage"], 0), p["global_step"])
    return sorted(ends.values())[:-1]


def _series(points: Sequence[Mapping[str, Any]], metric: str, color: str, x: Any, y: Any) -> list:
    pts = []
    for p in points:
        fig = (p.get("metrics") or {}).get(metric)
        if fig and _finite(fig.get("value")):
            ci = fig.get("ci") or [None, None]
            lo = ci[0] if _finite(ci[0]) else fig["value"]
            hi = ci[1] if _finite(ci[1]) else fig["value"]
            pts.append((p["global_step"], fig["value"], lo, hi))
    if not pts:
        return []
    band = [f"{x(s):.1f},{y(hi):.1f}" for s, _, _, hi in pts]
    band += [f"{x(s):.1f},{y(lo):.1f}" for s, _, lo, _ in reversed(pts)]
    line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v, _, _ in pts)
    dots = "".join(
        f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}"/>' for s, v, _, _ in pts
    )
    return [
        f'<polygon points="{" ".join(band)}" fill="{color}" fill-opacity="0.12" stroke="none"/>',
        f'<polyline points="{line}" fill="none" stroke="{color}" stroke-width="1.6"/>',
        dots,
    ]


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def load_curve(path: str | Path) -> dict[str, Any]:
    """A curve.json, or the one-line error naming what is wrong with it."""
    import json

    from toolsft.errors import ToolsftError

    file = Path(path)
    if file.is_dir():
        file = file / "curve.json"
    try:
        doc = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ToolsftError(f"cannot read ({exc.strerror})", file=file) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise ToolsftError(f"not JSON ({exc})", file=file) from exc
    if not isinstance(doc, dict) or doc.get("schema") != CURVE_SCHEMA:
        got = doc.get("schema") if isinstance(doc, dict) else type(doc).__name__
        raise ToolsftError(
            f"not a curve (expected {CURVE_SCHEMA})", file=file, where="schema", value=got
        )
    if not isinstance(doc.get("points"), list) or not doc["points"]:
        raise ToolsftError("no points", file=file, where="points")
    return doc


def curve_html(curve: Mapping[str, Any]) -> str:
    """The learning-curve section of the HTML report: the plot, the headline table, and task
    completion by kind of episode at every point."""
    rows = curve_rows(curve)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in rows[1:]
    )
    points = curve.get("points", [])
    kinds = sorted({k for p in points for k in (p.get("task_completion_by") or {}).get("kind", {})})
    kind_head = "".join(f"<th>{html.escape(k)}</th>" for k in kinds)
    kind_body = "".join(
        f"<tr><td>{html.escape(p['name'])}</td>"
        + "".join(
            f"<td>{html.escape(_pct(((p.get('task_completion_by') or {}).get('kind') or {}).get(k)))}</td>"
            for k in kinds
        )
        + "</tr>"
        for p in points
    )
    eps = curve.get("episodes", {})
    return (
        "<h2>Learning curve</h2>"
        f"<p>{eps.get('n', '?')} {html.escape(str(curve.get('run', {}).get('split', '')))} "
        "episodes, the same at every point; values in %, 95% intervals in brackets.</p>"
        f"{curve_svg(curve)}<table><tr>{head}</tr>{body}</table>"
        f"<h3>Task completion by kind</h3><table><tr><th>point</th>{kind_head}</tr>{kind_body}</table>"
    )


def curve_page(curve: Mapping[str, Any]) -> str:
    """A standalone page holding `curve_html`."""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>toolsft learning curve</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px}"
        "table{border-collapse:collapse;margin:1rem 0}td,th{border:1px solid #ddd;"
        "padding:.25rem .5rem;font-size:.85rem}</style></head><body>"
        f"{curve_html(curve)}</body></html>\n"
    )
