"""The CI gate: compare a run's metrics with a committed baseline, metric by metric.

A higher-is-better metric regresses when it falls more than its tolerance below the baseline
AND the baseline lies above the new run's whole 95% bootstrap interval, so sampling noise on a
small test split does not fail a build while a real drop does. Count metrics (compliance
violations) have no noise allowance: any increase beyond the tolerance fails.
Runs over a different suite or different rows are refused, never compared.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from toolsft.eval.metrics import METRICS, Metric

BASELINE_SCHEMA = "toolsft.baseline/1"
DEFAULT_TOLERANCE = 0.02
MIN_N = 10
"""A rate over fewer items than this in either run is reported, not gated ("too few"): two
otherwise equal CPU demo runs gave irrelevance precision 2/2 and 2/5, which is noise."""


class GateRefused(ValueError):
    """The two runs are not comparable (or a file is unusable); exit code 2."""


@dataclass(frozen=True)
class Check:
    metric: str
    label: str
    baseline: float | None
    new: float | None
    ci: tuple[float | None, float | None]
    tolerance: float
    verdict: str
    """pass, improved, regression, missing (in the baseline, not in the run), new, too few."""

    @property
    def failed(self) -> bool:
        return self.verdict in ("regression", "missing")

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.new is None else self.new - self.baseline


def load_tolerances(path: str | Path | None) -> dict[str, Any]:
    """`{default: 0.02, metrics: {name: tol}, ignore: [names]}` from YAML; defaults if None."""
    if path is None:
        return {"default": DEFAULT_TOLERANCE, "metrics": {}, "ignore": []}
    import yaml

    file = Path(path)
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise GateRefused(f"{file}: cannot read ({exc.strerror})") from exc
    except yaml.YAMLError as exc:
        raise GateRefused(f"{file}: invalid YAML ({exc})") from exc
    if not isinstance(raw, Mapping):
        raise GateRefused(f"{file}: must be a mapping with default, metrics, ignore")
    unknown = [k for k in raw if k not in ("default", "metrics", "ignore")]
    if unknown:
        raise GateRefused(f"{file}: unknown key(s) {unknown} (allowed: default, metrics, ignore)")
    tols = dict(raw.get("metrics") or {})
    for name, tol in tols.items():
        if name not in METRICS and not name.startswith("pass^"):
            raise GateRefused(
                f"{file}: metrics.{name}: unknown metric (known: {', '.join(METRICS)})"
            )
        if not isinstance(tol, int | float) or tol < 0:
            raise GateRefused(f"{file}: metrics.{name} = {tol!r}: a tolerance is a number >= 0")
    return {
        "default": float(raw.get("default", DEFAULT_TOLERANCE)),
        "metrics": tols,
        "ignore": list(raw.get("ignore") or []),
    }


def baseline_from_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """What a baseline keeps of a run: comparability info and overall metrics (no rows)."""
    run = results["run"]
    metrics = {
        k: {"value": s["value"], "ci": s.get("ci"), "n": s.get("n")}
        for k, s in (results.get("metrics") or {}).items()
    }
    return {
        "schema": BASELINE_SCHEMA,
        "created": results.get("created"),
        "run": {
            k: run.get(k)
            for k in (
                "name",
                "suite",
                "data",
                "model",
                "adapter",
                "engine",
                "decoding",
                "samples",
                "seed",
            )
        },
        "metrics": metrics,
    }


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file, or a results.json used as one."""
    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise GateRefused(
            f"{file}: cannot read baseline ({exc.strerror}); create it with "
            "`toolsft gate <results.json> --baseline FILE --update`"
        ) from exc
    except json.JSONDecodeError as exc:
        raise GateRefused(f"{file}: not JSON ({exc.msg} at line {exc.lineno})") from exc
    if isinstance(data, dict) and data.get("schema") == BASELINE_SCHEMA:
        return data
    if isinstance(data, dict) and "run" in data and "metrics" in data:
        return baseline_from_results(data)
    raise GateRefused(
        f"{file}: field schema = {data.get('schema') if isinstance(data, dict) else None!r}, "
        f"expected {BASELINE_SCHEMA!r} or a results.json"
    )


def floor_baseline(base: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """The existing baseline lowered to this run wherever this run is worse: a floor that every
    reference run clears. CPU training is not bit-reproducible, and an under-trained model's
    figures swing between runs of one budget (answer facts 12/20 in one demo run, 6/20 in the
    next), so one run is no bar for the next. Refuses runs that are not comparable."""
    new = baseline_from_results(results)
    errors = comparability_errors(base, new)
    if errors:
        raise GateRefused("refusing to merge: " + "; ".join(errors))
    merged = dict(new, metrics=dict(new["metrics"]))
    for name, old in (base.get("metrics") or {}).items():
        cur = merged["metrics"].get(name)
        metric = METRICS.get(name)
        if cur is None or metric is None or old.get("value") is None or cur.get("value") is None:
            merged["metrics"].setdefault(name, old)
            continue
        sign = 1 if metric.higher_is_better else -1
        if sign * (old["value"] - cur["value"]) < 0:  # the old baseline is the worse one
            merged["metrics"][name] = old
    merged["floor_of"] = [*base.get("floor_of", [base.get("created")]), new.get("created")]
    return merged


def comparability_errors(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Why the runs must not be compared: another suite or other rows."""
    b, n = base["run"], new["run"]
    errors = []
    bh, nh = (b.get("suite") or {}).get("hash"), (n.get("suite") or {}).get("hash")
    if bh != nh:
        errors.append(
            f"suite hash differs: baseline {str(bh)[:12]} vs run {str(nh)[:12]} "
            f"(suite {(n.get('suite') or {}).get('path')} changed since the baseline)"
        )
    bd, nd = (b.get("data") or {}).get("data_hash"), (n.get("data") or {}).get("data_hash")
    if bd != nd:
        errors.append(
            f"data hash differs: baseline {str(bd)[:12]} vs run {str(nd)[:12]} "
            "(other rows: regenerated data, another split, --stages or --limit)"
        )
    return errors


def comparability_warnings(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    b, n = base["run"], new["run"]
    out = []
    for key in ("decoding", "samples"):
        if b.get(key) != n.get(key):
            out.append(f"{key} differs: baseline {b.get(key)} vs run {n.get(key)}")
    return out


def check_metric(
    metric: Metric, base: Mapping[str, Any] | None, new: Mapping[str, Any] | None, tol: float
) -> Check:
    bv = base.get("value") if base else None
    nv = new.get("value") if new else None
    ci = tuple((new or {}).get("ci") or (None, None))[:2]
    if bv is None:
        return Check(metric.name, metric.label, bv, nv, ci, tol, "new")  # type: ignore[arg-type]
    if nv is None:
        return Check(metric.name, metric.label, bv, nv, ci, tol, "missing")  # type: ignore[arg-type]
    if metric.reduce == "rate" and min(_n(base), _n(new)) < MIN_N:
        return Check(metric.name, metric.label, bv, nv, ci, tol, "too few")  # type: ignore[arg-type]
    sign = 1 if metric.higher_is_better else -1
    worse = sign * (bv - nv)  # > 0: the new run is worse
    if metric.reduce == "sum":
        regressed = worse > tol
    else:
        hi = ci[1] if metric.higher_is_better else ci[0]
        outside = hi is None or sign * (bv - hi) > 0
        regressed = worse > tol + 1e-12 and outside
    verdict = "regression" if regressed else ("improved" if worse < -1e-12 else "pass")
    return Check(metric.name, metric.label, bv, nv, ci, tol, verdict)  # type: ignore[arg-type]


def _n(stats: Mapping[str, Any] | None) -> float:
    """Items behind a rate; unknown counts (older baselines) never block the gate."""
    n = (stats or {}).get("n")
    return float("inf") if n is None else float(n)


def run_gate(
    base: Mapping[str, Any], new: Mapping[str, Any], tolerances: Mapping[str, Any]
) -> list[Check]:
    """Every metric of either run, checked. Raises GateRefused for incomparable runs."""
    errors = comparability_errors(base, new)
    if errors:
        raise GateRefused("refusing to compare: " + "; ".join(errors))
    bm, nm = base.get("metrics") or {}, new.get("metrics") or {}
    checks = []
    for name, metric in METRICS.items():
        if name in tolerances.get("ignore", []) or (name not in bm and name not in nm):
            continue
        tol = float(
            tolerances.get("metrics", {}).get(name, tolerances.get("default", DEFAULT_TOLERANCE))
        )
        checks.append(check_metric(metric, bm.get(name), nm.get(name), tol))
    return checks


def gate_markdown(checks: list[Check], warnings: list[str]) -> str:
    def f(c: Check, v: float | None) -> str:
        m = METRICS.get(c.metric)
        if v is None:
            return "–"
        return f"{v:g}" if m and m.reduce == "sum" else f"{100 * v:.1f}"

    icon = {
        "pass": "✅ pass",
        "improved": "🟢 improved",
        "regression": "❌ regression",
        "missing": "❌ missing",
        "new": "🆕 new",
        "too few": "➖ too few to gate",
    }
    lines = ["| metric | baseline | new | Δ | tolerance | verdict |", "|---|---|---|---|---|---|"]
    for c in checks:
        lines.append(
            f"| {c.label} | {f(c, c.baseline)} | {f(c, c.new)} | "
            f"{f(c, c.delta) if c.delta is not None else '–'} | {f(c, c.tolerance)} | "
            f"{icon[c.verdict]} |"
        )
    failed = [c.label for c in checks if c.failed]
    lines.append("")
    lines.append(f"**Gate: {'FAILED (' + ', '.join(failed) + ')' if failed else 'passed'}**")
    lines += [f"- warning: {w}" for w in warnings]
    return "\n".join(lines) + "\n"
