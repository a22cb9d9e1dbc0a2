"""The metric registry and its aggregation: overall and per group, with 95% intervals.

Like lm-eval-harness, a metric is declared once (name, meaning, direction, how row values
reduce) and every report, table and gate reads the registry. Rows carry small vectors
(`Verdict.values`); a metric's value is `reduce(sum of row vectors)`.

Intervals: a per-episode pass/fail rate (every row `[0 or 1, 1]`) gets the Wilson score
interval, which stays honest at 0/n and n/n, where a percentile bootstrap collapses to a point
([0, 0] at 0/n). Other metrics (micro-averages, means, BLEU, counts) get a percentile bootstrap:
rows resampled with replacement by a seeded numpy Generator per metric and group, so adding a
metric never changes another one's interval.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from toolsft.eval.stats import wilson_interval
from toolsft.eval.text import bleu_from_stats

GROUP_DIMS = ("stage", "lang", "kind", "tool")
N_BOOTSTRAP = 1000


@dataclass(frozen=True)
class Metric:
    name: str
    label: str
    description: str
    higher_is_better: bool = True
    reduce: str = "rate"
    """`rate`: hits / n; `sum`: total count; `bleu`: corpus BLEU from sufficient statistics."""
    headline: bool = False
    short: str = ""
    """Column header in compact tables."""


SHORT = {
    "task_completion": "task",
    "tool_selection": "select",
    "irrelevance_recall": "irr-R",
    "irrelevance_precision": "irr-P",
    "arg_accuracy": "args",
    "arg_exact": "exact",
    "schema_validity": "schema",
    "answer_facts": "facts",
    "bleu": "BLEU",
    "rouge_l": "ROUGE-L",
    "compliance": "comply",
    "compliance_violations": "viol",
}

METRICS: dict[str, Metric] = {}


def register(metric: Metric) -> Metric:
    if not metric.short:
        metric = replace(metric, short=SHORT.get(metric.name, metric.name))
    METRICS[metric.name] = metric
    return metric


for _m in (
    Metric(
        "task_completion",
        "Task completion",
        "right calls (or none), valid, an answer "
        "stating the result's facts, no policy break: the whole job",
        headline=True,
    ),
    Metric("tool_selection", "Tool selection", "rows with gold calls: the same tools called"),
    Metric("irrelevance_recall", "Irrelevance recall", "rows where no call is right: no call made"),
    Metric(
        "irrelevance_precision",
        "Irrelevance precision",
        "rows where the model made no call: no call was right",
    ),
    Metric(
        "arg_accuracy",
        "Argument accuracy (BFCL)",
        "rows with gold calls: calls match under "
        "BFCL's AST rules (types, optional params, string normalisation, any order)",
    ),
    Metric("arg_exact", "Argument exact match", "rows with gold calls: identical JSON arguments"),
    Metric(
        "schema_validity",
        "Schema validity",
        "emitted calls that parse, name a shown tool and validate against its JSON Schema",
    ),
    Metric("answer_facts", "Answer facts", "answers after tool results: every fact stated"),
    Metric(
        "bleu",
        "BLEU-4",
        "stage-3 answers vs reference, corpus BLEU (zh: characters)",
        reduce="bleu",
    ),
    Metric("rouge_l", "ROUGE-L", "stage-3 answers vs reference, mean LCS F1"),
    Metric("compliance", "Compliance", "rows with no forbidden phrase, PII or unconfirmed call"),
    Metric(
        "compliance_violations",
        "Compliance violations",
        "total violations",
        higher_is_better=False,
        reduce="sum",
    ),
):
    register(_m)


def reduce_values(metric: Metric, sums: np.ndarray) -> np.ndarray:
    """Reduce summed vectors (shape [..., d]) to metric values (shape [...])."""
    if metric.reduce == "sum":
        return sums[..., 0].astype(float)
    if metric.reduce == "bleu":
        flat = sums.reshape(-1, sums.shape[-1])
        return np.array([bleu_from_stats(row) for row in flat]).reshape(sums.shape[:-1])
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sums[..., 1] > 0, sums[..., 0] / np.maximum(sums[..., 1], 1e-12), np.nan)


def summarize(
    metric: Metric,
    rows: Sequence[Sequence[float]],
    seed: int,
    tag: str = "",
    n_boot: int = N_BOOTSTRAP,
) -> dict[str, Any] | None:
    """Value, 95% interval and row count of one metric over `rows` (None when no row applies)."""
    if not rows:
        return None
    x = np.asarray(rows, dtype=float)
    value = float(reduce_values(metric, x.sum(axis=0)))
    if is_binary(metric, x):
        lo, hi = wilson_interval(float(x[:, 0].sum()), len(x))
        return {"value": _num(value), "ci": [_num(lo), _num(hi)], "n": len(x)}
    rng = np.random.default_rng([seed, zlib.crc32(f"{metric.name}|{tag}".encode())])
    counts = rng.multinomial(len(x), np.full(len(x), 1.0 / len(x)), size=n_boot)
    boot = reduce_values(metric, counts @ x)
    boot = boot[~np.isnan(boot)]
    lo, hi = np.percentile(boot, [2.5, 97.5]) if len(boot) else (math.nan, math.nan)
    return {"value": _num(value), "ci": [_num(lo), _num(hi)], "n": len(x)}


def is_binary(metric: Metric, rows: np.ndarray) -> bool:
    """Rows of a pass/fail rate: each `[0, 1]` or `[1, 1]` (one episode, one outcome)."""
    if metric.reduce != "rate" or rows.ndim != 2 or rows.shape[1] != 2:
        return False
    return bool(np.all(rows[:, 1] == 1) and np.all((rows[:, 0] == 0) | (rows[:, 0] == 1)))


def aggregate(
    verdicts: Iterable[Any], seed: int, n_boot: int = N_BOOTSTRAP, dims: Sequence[str] = GROUP_DIMS
) -> dict[str, Any]:
    """All registered metrics, overall and per group dimension."""
    verdicts = list(verdicts)
    out: dict[str, Any] = {}
    for name, metric in METRICS.items():
        rows = [v.values[name] for v in verdicts if name in v.values]
        overall = summarize(metric, rows, seed, "all", n_boot)
        if overall is None:
            continue
        overall["by"] = {dim: _by(metric, verdicts, dim, seed, n_boot) for dim in dims}
        out[name] = overall
    return out


def _by(metric: Metric, verdicts: list[Any], dim: str, seed: int, n_boot: int) -> dict[str, Any]:
    keys = sorted({k for v in verdicts for k in v.groups.get(dim, [])}, key=_natural)
    res = {}
    for key in keys:
        rows = [
            v.values[metric.name]
            for v in verdicts
            if key in v.groups.get(dim, []) and metric.name in v.values
        ]
        s = summarize(metric, rows, seed, f"{dim}={key}", n_boot)
        if s is not None:
            res[key] = s
    return res


def pass_hat_k(verdicts: Iterable[Any], seed: int, n_boot: int = N_BOOTSTRAP) -> dict[str, Any]:
    """τ-bench's pass^k for k = 1..samples: the chance that k i.i.d. tries ALL succeed,
    estimated per row as C(c, k) / C(n, k) from c successes in n samples."""
    by_row: dict[str, list[bool]] = {}
    for v in verdicts:
        by_row.setdefault(v.id, []).append(v.ok)
    n = min((len(x) for x in by_row.values()), default=0)
    metric = Metric("pass^k", "pass^k", "")
    out = {}
    for k in range(1, n + 1):
        rows = [[math.comb(sum(x[:n]), k) / math.comb(n, k), 1] for x in by_row.values()]
        s = summarize(metric, rows, seed, f"k={k}", n_boot)
        if s is not None:
            out[f"pass^{k}"] = s
    return out


def percentiles(values: Iterable[float | None], qs: Sequence[float] = (50, 95)) -> dict[str, Any]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {f"p{int(q)}": None for q in qs} | {"mean": None, "n": 0}
    arr = np.asarray(vals)
    out: dict[str, Any] = {f"p{int(q)}": _num(np.percentile(arr, q)) for q in qs}
    return out | {"mean": _num(arr.mean()), "n": len(vals)}


def metric_rows(results: Mapping[str, Any]) -> list[tuple[Metric, Mapping[str, Any]]]:
    """(metric, summary) pairs of a results.json in registry order (for tables)."""
    m = results.get("metrics") or {}
    return [(METRICS[k], m[k]) for k in METRICS if k in m]


def _num(x: Any) -> float | None:
    x = float(x)
    return None if math.isnan(x) else round(x, 6)


def _natural(key: str) -> tuple[int, str]:
    return (0, f"{int(key):08d}") if key.isdigit() else (1, key)
