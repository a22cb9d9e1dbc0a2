"""The CI gate: compare a run's metrics with a committed baseline, metric by metric.

Both files are validated first (`toolsft.eval.validate`); runs over another suite, split or
episode set are refused, never compared. A metric regresses when the new run is worse by more
than its tolerance AND the drop is significant: a one-sided test per metric, at level alpha for
the whole gate (Holm's adjustment across the gated metrics), so a same-model rerun fails the
build at most alpha of the time. Where both runs kept per-episode outcomes of the same episodes
the tests are paired (exact McNemar for pass/fail rates, a sign-flip randomization test for the
rest); a baseline without them (a floor, an old baseline) gets Newcombe's Wilson-score test for
rates and an exact test for counts. See docs/metrics.md, "The gate's statistics".
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from toolsft.errors import ToolsftError
from toolsft.eval.baseline import BASELINE_SCHEMAS, baseline_from_results
from toolsft.eval.metrics import METRICS, Metric, is_binary, reduce_values
from toolsft.eval.runner import RESULTS_SCHEMA
from toolsft.eval.stats import count_rate_p, holm, mcnemar_p, newcombe_p, sign_flip_p
from toolsft.eval.text import BLEU_STATS
from toolsft.eval.validate import read_json, validate_doc

DEFAULT_TOLERANCE = 0.02
DEFAULT_ALPHA = 0.05
N_PERM = 2000
EPS = 1e-9

TESTS = {
    "mcnemar": "exact McNemar",
    "sign-flip": "sign-flip",
    "newcombe": "Newcombe-Wilson",
    "count": "exact count",
}
"""Short names of the tests, for tables; `method_line` says which are paired."""


class GateRefused(ToolsftError, ValueError):
    """The two runs are not comparable (or a file is unusable); exit code 2."""


@dataclass(frozen=True)
class Check:
    metric: str
    label: str
    baseline: float | None
    new: float | None
    tolerance: float
    verdict: str
    """pass, improved, regression, missing (in the baseline, not in the run), new."""
    p: float | None = None
    """One-sided p-value of "the new run is worse", Holm-adjusted across the gate."""
    p_raw: float | None = None
    test: str = ""
    """A key of TESTS."""

    @property
    def failed(self) -> bool:
        return self.verdict in ("regression", "missing")

    @property
    def delta(self) -> float | None:
        return None if self.baseline is None or self.new is None else self.new - self.baseline


@dataclass
class GateResult:
    checks: list[Check]
    alpha: float
    paired: int | None
    """Episodes the tests were paired on; None: unpaired (the baseline kept no outcomes)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.failed]


def load_tolerances(path: str | Path | None) -> dict[str, Any]:
    """`{default, alpha, metrics: {name: tol}, ignore: [names]}` from YAML; defaults if None."""
    defaults = {"default": DEFAULT_TOLERANCE, "alpha": DEFAULT_ALPHA, "metrics": {}, "ignore": []}
    if path is None:
        return defaults
    from toolsft.eval.tolerances import parse_tolerances

    return parse_tolerances(Path(path), defaults, GateRefused)


def load_baseline(path: str | Path) -> dict[str, Any]:
    """A baseline file (or a results.json used as one), validated."""
    file = Path(path)
    if not file.exists():
        raise GateRefused(
            "no such baseline; create it with "
            "`toolsft gate <results.json> --baseline FILE --update`",
            file=file,
        )
    data = read_json(file, GateRefused, "baseline")
    if isinstance(data, dict) and data.get("schema") == RESULTS_SCHEMA:
        validate_doc(data, str(file), GateRefused, (RESULTS_SCHEMA,), rows_required=True)
        return dict(baseline_from_results(data), _file=str(file))
    validate_doc(data, str(file), GateRefused, (*BASELINE_SCHEMAS, RESULTS_SCHEMA), False)
    return dict(data, _file=str(file))


def floor_baseline(base: Mapping[str, Any], results: Mapping[str, Any]) -> dict[str, Any]:
    """The existing baseline lowered to this run wherever this run is worse: a floor that every
    reference run clears. CPU training is not bit-reproducible, and an under-trained model's
    figures swing between runs of one budget, so one run is no bar for the next. A floor mixes
    runs, so it keeps no per-episode outcomes (the gate then tests unpaired). Refuses runs that
    are not comparable."""
    new = baseline_from_results(results)
    refuse_incomparable(base, dict(new, _file=results.get("_file")), verb="merge")
    merged = dict(new, metrics=dict(new["metrics"]))
    merged.pop("rows")
    for name, old in (base.get("metrics") or {}).items():
        cur = merged["metrics"].get(name)
        if cur is None:
            merged["metrics"][name] = old
            continue
        sign = 1 if METRICS[name].higher_is_better else -1
        if sign * (old["value"] - cur["value"]) < 0:  # the old baseline is the worse one
            merged["metrics"][name] = old
    merged["floor_of"] = [*base.get("floor_of", [base.get("created")]), new.get("created")]
    return merged


def refuse_incomparable(base: Mapping[str, Any], new: Mapping[str, Any], verb: str) -> None:
    """Raise GateRefused naming the run file, the field and both values when the runs are
    over another suite, split or episode set."""
    b, n = base["run"], new["run"]
    problems = []
    for where, label, get in (
        ("run.suite.hash", "suite hash", lambda r: (r.get("suite") or {}).get("hash")),
        ("run.data.data_hash", "data hash", lambda r: (r.get("data") or {}).get("data_hash")),
        ("run.data.split", "split", lambda r: (r.get("data") or {}).get("split")),
    ):
        if get(b) != get(n) and not (label == "split" and None in (get(b), get(n))):
            problems.append(
                (where, f"{label} differs: baseline {str(get(b))[:12]!r}, run {str(get(n))[:12]!r}")
            )
    if base.get("rows") and new.get("rows"):
        ids_b = {r["id"] for r in base["rows"]}
        ids_n = {r["id"] for r in new["rows"]}
        if ids_b != ids_n:
            parts = [
                f"{len(only)} only in the {side} (e.g. {min(only)!r})"
                for side, only in (("baseline", ids_b - ids_n), ("run", ids_n - ids_b))
                if only
            ]
            problems.append(("rows", "episode sets differ: " + ", ".join(parts)))
    if problems:
        hint = (
            " (suite or data changed since the baseline: regenerate it with --update)"
            if problems[0][0] != "rows"
            else ""
        )
        raise GateRefused(
            f"refusing to {verb} with baseline {base.get('_file', '?')}: "
            + "; ".join(p for _, p in problems)
            + hint,
            file=new.get("_file"),
            where=problems[0][0],
        )


def comparability_warnings(base: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    b, n = base["run"], new["run"]
    out = []
    for key in ("decoding", "samples"):
        if b.get(key) != n.get(key):
            out.append(f"{key} differs: baseline {b.get(key)} vs run {n.get(key)}")
    return out


def run_gate(
    base: Mapping[str, Any], new: Mapping[str, Any], tolerances: Mapping[str, Any]
) -> GateResult:
    """Every metric of either run, checked. Raises GateRefused for unusable or incomparable
    runs, and when nothing is left to compare."""
    validate_doc(
        base, base.get("_file", "baseline"), GateRefused, (*BASELINE_SCHEMAS, RESULTS_SCHEMA), False
    )
    validate_doc(new, new.get("_file", "results"), GateRefused, (RESULTS_SCHEMA,), True)
    refuse_incomparable(base, new, verb="compare")
    pairs = _pairs(base, new)
    warnings = comparability_warnings(base, new)
    bm, nm = base["metrics"], new["metrics"]
    ignore = set(tolerances.get("ignore") or [])
    names = [n for n in METRICS if n not in ignore and (n in bm or n in nm)]
    if not any(n in bm and n in nm for n in names):
        raise GateRefused(
            "nothing to compare: no metric is in both runs and not ignored",
            file=new.get("_file"),
            where="metrics",
        )
    raw: dict[str, tuple[float, str]] = {}
    for name in names:
        if name in bm and name in nm:
            raw[name] = _p_value(METRICS[name], bm[name], nm[name], pairs)
    adjusted = dict(zip(raw, holm([p for p, _ in raw.values()]), strict=True))
    alpha = float(tolerances.get("alpha", DEFAULT_ALPHA))
    checks = []
    for name in names:
        tol = float(
            tolerances.get("metrics", {}).get(name, tolerances.get("default", DEFAULT_TOLERANCE))
        )
        p_raw, test = raw.get(name, (None, ""))
        checks.append(
            _verdict(
                METRICS[name],
                bm.get(name),
                nm.get(name),
                tol,
                alpha,
                adjusted.get(name),
                p_raw,
                test,
            )
        )
    return GateResult(checks, alpha, None if pairs is None else len(pairs[0]), warnings)


def _verdict(
    metric: Metric,
    base: Mapping[str, Any] | None,
    new: Mapping[str, Any] | None,
    tol: float,
    alpha: float,
    p: float | None,
    p_raw: float | None,
    test: str,
) -> Check:
    bv = None if base is None else float(base["value"])
    nv = None if new is None else float(new["value"])
    args = (metric.name, metric.label, bv, nv, tol)
    if bv is None:
        return Check(*args, "new")
    if nv is None:
        return Check(*args, "missing")
    worse = (1 if metric.higher_is_better else -1) * (bv - nv)
    regressed = worse > tol + EPS and p is not None and p < alpha
    verdict = "regression" if regressed else ("improved" if worse < -EPS else "pass")
    return Check(*args, verdict, p, p_raw, test)


Pairs = tuple[list[tuple[str, int]], dict[tuple[str, int], Any], dict[tuple[str, int], Any]]


def _pairs(base: Mapping[str, Any], new: Mapping[str, Any]) -> Pairs | None:
    """Episode keys and both runs' per-episode values, when both runs scored the same
    episodes (the same samples too); None otherwise."""
    if not base.get("rows"):
        return None
    b = {(r["id"], r.get("sample", 0)): r["values"] for r in base["rows"]}
    n = {(r["id"], r.get("sample", 0)): r["values"] for r in new["rows"]}
    if set(b) != set(n):
        return None
    return sorted(b), b, n


def _p_value(
    metric: Metric, base: Mapping[str, Any], new: Mapping[str, Any], pairs: Pairs | None
) -> tuple[float, str]:
    """One-sided p-value of "the new run is worse" and the test that gave it."""
    up = metric.higher_is_better
    if pairs is None:
        bv, nv, bn, nn = base["value"], new["value"], base["n"], new["n"]
        if metric.reduce == "sum":
            return (
                count_rate_p(bv, bn, nv, nn) if up is False else count_rate_p(nv, nn, bv, bn)
            ), "count"
        if up:
            return newcombe_p(bv, bn, nv, nn), "newcombe"
        return newcombe_p(1 - bv, bn, 1 - nv, nn), "newcombe"
    keys, b_rows, n_rows = pairs
    name = metric.name
    zero = [0.0] * (BLEU_STATS if metric.reduce == "bleu" else 2)
    b = np.array([b_rows[k].get(name, zero) for k in keys], dtype=float)
    n = np.array([n_rows[k].get(name, zero) for k in keys], dtype=float)
    scored = np.array([name in b_rows[k] for k in keys])
    same = all((name in n_rows[k]) == s for k, s in zip(keys, scored, strict=True))
    if same and is_binary(metric, b[scored]) and is_binary(metric, n[scored]):
        # Both runs scored the same episodes, each pass/fail: exact McNemar on them.
        lost = int(np.sum((b[:, 0] == 1) & (n[:, 0] == 0) & scored))
        won = int(np.sum((b[:, 0] == 0) & (n[:, 0] == 1) & scored))
        return (mcnemar_p(lost, won) if up else mcnemar_p(won, lost)), "mcnemar"
    sign = 1.0 if up else -1.0

    def worse(bs: np.ndarray, ns: np.ndarray) -> np.ndarray:
        return sign * (reduce_values(metric, bs) - reduce_values(metric, ns))

    rng = np.random.default_rng(zlib.crc32(metric.name.encode()))
    return sign_flip_p(b, n, worse, rng, N_PERM), "sign-flip"


def gate_markdown(result: GateResult) -> str:
    def f(c: Check, v: float | None) -> str:
        if v is None:
            return "–"
        return f"{v:g}" if METRICS[c.metric].reduce == "sum" else f"{100 * v:.1f}"

    icon = {
        "pass": "✅ pass",
        "improved": "🟢 improved",
        "regression": "❌ regression",
        "missing": "❌ missing",
        "new": "🆕 new",
    }
    lines = [
        "| metric | baseline | new | Δ | tolerance | p (Holm) | test | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in result.checks:
        lines.append(
            f"| {c.label} | {f(c, c.baseline)} | {f(c, c.new)} | {f(c, c.delta)} | "
            f"{f(c, c.tolerance)} | {fmt_p(c.p)} | {TESTS.get(c.test, '–')} | {icon[c.verdict]} |"
        )
    failed = [c.label for c in result.failed]
    lines += ["", f"**Gate: {'FAILED (' + ', '.join(failed) + ')' if failed else 'passed'}**"]
    lines.append(f"- {method_line(result)}")
    lines += [f"- warning: {w}" for w in result.warnings]
    return "\n".join(lines) + "\n"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def method_line(result: GateResult) -> str:
    """How the verdicts were reached, for the output under the table."""
    gated = sum(1 for c in result.checks if c.p is not None)
    how = (
        f"paired on {result.paired} episodes (exact McNemar on pass/fail outcomes, "
        "sign-flip randomization otherwise)"
        if result.paired is not None
        else "unpaired, the baseline keeps no per-episode outcomes (Newcombe-Wilson for "
        "rates, an exact test for counts)"
    )
    return (
        f"regression = worse by more than the tolerance and significant: one-sided tests, "
        f"alpha {result.alpha:g} for the whole gate (Holm across {gated} metrics), {how}"
    )
