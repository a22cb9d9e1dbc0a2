"""Write and read a run's artifacts: results.json, report.md and predictions.jsonl.

predictions.jsonl holds every model turn under its replay key, so `--engine replay
--predictions <run>/predictions.jsonl` re-scores a run exactly without the model.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from toolsft.engines.replay import request_key
from toolsft.errors import ToolsftError
from toolsft.eval.metrics import Metric, metric_rows
from toolsft.eval.runner import RESULTS_SCHEMA
from toolsft.eval.validate import read_json, validate_doc
from toolsft.io import atomic_write


class ResultsError(ToolsftError, ValueError):
    """A results.json that cannot be used; the message names the file and field."""


def load_results(path: str | Path) -> dict[str, Any]:
    """A results.json (or the folder holding one), validated: the schema, every metric finite
    and in range with n > 0, and every figure equal to what its per-episode rows give."""
    file = Path(path)
    if file.is_dir():
        file = file / "results.json"
    data = read_json(file, ResultsError, "results file")
    validate_doc(data, str(file), ResultsError, (RESULTS_SCHEMA,), rows_required=True)
    data["_file"] = str(file)
    return data


def write_run(results: Mapping[str, Any], out: str | Path, *, predictions: bool = True) -> Path:
    """results.json, report.md and predictions.jsonl into `out`; returns results.json's path.

    `predictions=False` keeps the predictions.jsonl that `evaluate(out=...)` wrote as the run
    went (exact texts and timings, what `--resume` reads) instead of rewriting it from rows.
    """
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "results.json", json.dumps(results, ensure_ascii=False, indent=1) + "\n")
    atomic_write(folder / "report.md", render_markdown(results))
    if not predictions:
        return folder / "results.json"
    atomic_write(
        folder / "predictions.jsonl",
        "".join(
            json.dumps(
                {"key": request_key(r["id"], r["sample"], i), "text": t["text"]}, ensure_ascii=False
            )
            + "\n"
            for r in results["rows"]
            for i, t in enumerate(r.get("turns", []))
        ),
    )
    return folder / "results.json"


def fmt_value(metric: Metric | None, value: float | None) -> str:
    if value is None:
        return "–"
    if metric is not None and metric.reduce == "sum":
        return f"{value:g}"
    return f"{100 * value:.1f}"


def fmt_ci(metric: Metric | None, s: Mapping[str, Any]) -> str:
    lo, hi = (s.get("ci") or [None, None])[:2]
    if lo is None or hi is None:
        return ""
    return f"[{fmt_value(metric, lo)}, {fmt_value(metric, hi)}]"


def headline_rows(results: Mapping[str, Any]) -> list[list[str]]:
    """Metric, value, 95% CI, n for every metric present (rates in %)."""
    rows = [
        [m.label, fmt_value(m, s["value"]), fmt_ci(m, s), str(s["n"])]
        for m, s in metric_rows(results)
    ]
    for k, s in (results.get("pass_k") or {}).items():
        rows.append([k, fmt_value(None, s["value"]), fmt_ci(None, s), str(s["n"])])
    return rows


def group_table(results: Mapping[str, Any], dim: str) -> tuple[list[str], list[list[str]]]:
    """Metrics as rows, the groups of `dim` as columns."""
    keys: list[str] = []
    for _, s in metric_rows(results):
        keys += [k for k in (s.get("by") or {}).get(dim, {}) if k not in keys]
    rows = []
    for m, s in metric_rows(results):
        by = (s.get("by") or {}).get(dim, {})
        rows.append([m.label] + [fmt_value(m, by[k]["value"]) if k in by else "–" for k in keys])
    return [dim] + keys, rows


def perf_rows(results: Mapping[str, Any]) -> list[list[str]]:
    p = results.get("perf") or {}

    def ms(d: Mapping[str, Any] | None, q: str) -> str:
        v = (d or {}).get(q)
        return "–" if v is None else f"{1000 * v:.0f} ms"

    return [
        ["requests", str(p.get("requests", "–"))],
        ["requests/s", _g(p.get("requests_per_s"))],
        ["output tokens/s", _g(p.get("output_tokens_per_s"))],
        ["TTFT p50 / p95", f"{ms(p.get('ttft_s'), 'p50')} / {ms(p.get('ttft_s'), 'p95')}"],
        ["latency p50 / p95", f"{ms(p.get('latency_s'), 'p50')} / {ms(p.get('latency_s'), 'p95')}"],
        [
            "episode latency p50 / p95",
            f"{ms(p.get('episode_latency_s'), 'p50')} / {ms(p.get('episode_latency_s'), 'p95')}",
        ],
        ["generation wall time", f"{p.get('wall_s', 0):.1f} s"],
    ] + [
        [f"episode latency p50, stage {st}", ms(d, "p50")]
        for st, d in (p.get("episode_latency_s_by_stage") or {}).items()
    ]


def failure_reasons(results: Mapping[str, Any], top: int = 10) -> list[tuple[str, int]]:
    """Most common failure reasons, with values stripped so similar reasons group."""
    c: Counter[str] = Counter()
    for r in results.get("rows", []):
        for reason in r.get("reasons", []):
            c[reason.split(":")[0] if ":" in reason else reason[:60]] += 1
    return c.most_common(top)


def _adapter_path(adapter: Any) -> Any:
    return adapter.get("path") if isinstance(adapter, Mapping) else adapter


def _g(v: Any) -> str:
    return "–" if v is None else f"{v:.2f}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def render_markdown(results: Mapping[str, Any]) -> str:
    run = results["run"]
    parts = [
        f"# toolsft eval: {run.get('name') or run['model'].get('name')}\n",
        f"- suite: `{run['suite']['name']}` (hash `{run['suite']['hash'][:12]}`)",
        f"- data: `{run['data']['path']}` split `{run['data']['split']}`, "
        f"{run['data']['rows']} rows (data hash `{run['data']['data_hash'][:12]}`)",
        f"- model: `{run['model'].get('name')}`, adapter: `{_adapter_path(run.get('adapter'))}`, "
        f"engine: `{run['engine'].get('engine')}`",
        f"- decoding: `{json.dumps(run['decoding'])}`, samples: {run['samples']}\n",
        "## Metrics (%, 95% CI: Wilson for pass/fail rates, bootstrap otherwise)\n",
        _md_table(["metric", "value", "95% CI", "n"], headline_rows(results)),
    ]
    for dim in ("stage", "kind", "lang", "tool"):
        header, rows = group_table(results, dim)
        if len(header) > 1:
            parts += [f"## By {dim}\n", _md_table(header, rows)]
    parts += ["## Latency and throughput\n", _md_table(["", ""], perf_rows(results))]
    reasons = failure_reasons(results)
    if reasons:
        parts += [
            "## Most common failures\n",
            _md_table(["reason", "rows"], [[r, str(n)] for r, n in reasons]),
        ]
    return "\n".join(parts)
