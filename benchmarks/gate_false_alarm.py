"""The gate's false-alarm rate and power, measured on simulated runs of one model.

A simulated model has a fixed success probability per episode kind (select, fill, parallel,
no_tool, clarify, answer); every episode's outcomes (tool selection, arguments, schema validity,
abstaining, answer facts, ROUGE-L, compliance and task completion, with the dependencies real
runs have) are drawn from them with a run's own seed. Each trial gates one run against another
through `toolsft.eval.gate.run_gate` at the committed settings (evals/tolerances.yaml):
- false alarm: both runs come from the same model; any regression verdict is a false alarm;
- power: the new run's model is worse by 10 points of task completion (its chance of choosing
  the right action shrunk accordingly); a regression verdict is a detection.
Scenarios: `seeds` (one episode set, runs differ by seed) and `resampled` (a new episode set
every trial); `paired` gates against a baseline with per-episode outcomes, `unpaired` against
one without (a floor or an old baseline). `--concentration K` makes episodes differ in
difficulty around their kind's probability (Beta with K pseudo-counts; default: none).

    .venv/bin/python benchmarks/gate_false_alarm.py                # ~3 minutes on 2 cores
    .venv/bin/python benchmarks/gate_false_alarm.py --trials 100 --sizes 60

The bar (issue 17): false-alarm rate <= 5% at the committed settings.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
TOLERANCES = REPO / "evals" / "tolerances.yaml"

# kind: (share of episodes, stage, gold calls, chance of the right action)
KINDS: dict[str, tuple[float, int, int, float]] = {
    "select": (0.25, 1, 1, 0.75),
    "fill": (0.20, 2, 1, 0.65),
    "parallel": (0.10, 2, 2, 0.55),
    "no_tool": (0.10, 1, 0, 0.85),
    "clarify": (0.10, 2, 0, 0.60),
    "answer": (0.25, 3, 1, 0.70),
}
P_ARGS, P_EXACT, P_VALID, P_FACTS, P_VIOLATION = 0.9, 0.85, 0.97, 0.75, 0.02
DROP = 0.10


@dataclass
class V:
    """The parts of a `Verdict` that aggregation reads."""

    id: str
    sample: int
    ok: bool
    values: dict[str, list[float]]
    groups: dict[str, list[str]] = field(default_factory=dict)


def episode_set(n: int, rng: np.random.Generator, concentration: float | None) -> list[dict]:
    """n episodes: kind by share, and each one's chance of the right action."""
    names = list(KINDS)
    shares = np.array([KINDS[k][0] for k in names])
    out = []
    for i, kind in enumerate(rng.choice(names, size=n, p=shares / shares.sum())):
        _, stage, calls, p = KINDS[kind]
        if concentration:
            p = float(rng.beta(p * concentration, (1 - p) * concentration))
        out.append(
            {"id": f"sim-s{stage}-{i:06d}", "kind": kind, "stage": stage, "calls": calls, "p": p}
        )
    return out


def expected_task(episodes: list[dict]) -> float:
    """Expected task completion of a model: linear in each episode's chance of the right action."""
    total = 0.0
    for ep in episodes:
        if ep["calls"]:
            job = P_ARGS * P_VALID ** ep["calls"] * (P_FACTS if ep["stage"] == 3 else 1.0)
        else:
            job = 1.0
        total += ep["p"] * job * (1 - P_VIOLATION)
    return total / len(episodes)


def simulate(episodes: list[dict], rng: np.random.Generator, shrink: float = 0.0) -> list[V]:
    """One run: every episode's metric vectors (as `toolsft.eval.scoring` writes them)."""
    rows = []
    for ep in episodes:
        v: dict[str, list[float]] = {}
        right = rng.random() < ep["p"] * (1 - shrink)
        violation = rng.random() < P_VIOLATION
        ok = _calls(ep, right, rng, v) if ep["calls"] else _reply(right, rng, v)
        v["compliance"] = [float(not violation), 1]
        v["compliance_violations"] = [float(violation), 1]
        ok = ok and not violation
        v["task_completion"] = [float(ok), 1]
        rows.append(V(ep["id"], 0, ok, v))
    return rows


def _calls(ep: dict, right: bool, rng: np.random.Generator, v: dict) -> bool:
    g = ep["calls"]
    args = right and rng.random() < P_ARGS
    v["tool_selection"] = [float(right), 1]
    v["arg_accuracy"] = [float(args), 1]
    v["arg_exact"] = [float(args and rng.random() < P_EXACT), 1]
    emitted = g if right or rng.random() < 0.6 else 0
    valid = int(rng.binomial(emitted, P_VALID if right else 0.5))
    if emitted:
        v["schema_validity"] = [valid, emitted]
    else:
        v["irrelevance_precision"] = [0.0, 1]
    ok = args and valid == emitted
    if ep["stage"] == 3:
        facts = args and rng.random() < P_FACTS
        v["answer_facts"] = [float(facts), 1]
        v["rouge_l"] = [
            round(float(0.55 + 0.4 * rng.random() if facts else 0.3 * rng.random()), 6),
            1,
        ]
        ok = ok and facts
    return ok


def _reply(right: bool, rng: np.random.Generator, v: dict) -> bool:
    v["irrelevance_recall"] = [float(right), 1]
    if right:
        v["irrelevance_precision"] = [1.0, 1]
    else:
        v["schema_validity"] = [int(rng.random() < 0.8), 1]
    return right


def results_doc(rows: list[V], seed: int) -> dict[str, Any]:
    from toolsft.eval.metrics import aggregate
    from toolsft.eval.runner import RESULTS_SCHEMA

    return {
        "schema": RESULTS_SCHEMA,
        "run": {
            "suite": {"name": "sim", "hash": "sim-suite"},
            "data": {"split": "test", "rows": len(rows), "data_hash": "sim-data"},
            "samples": 1,
            "seed": seed,
        },
        "metrics": aggregate(rows, seed, n_boot=50, dims=()),
        "rows": [{"id": r.id, "sample": 0, "values": r.values} for r in rows],
    }


def gate_fails(base_rows: list[V], new_rows: list[V], paired: bool, tol: dict, seed: int) -> bool:
    from toolsft.eval.baseline import baseline_from_results
    from toolsft.eval.gate import run_gate

    base = baseline_from_results(results_doc(base_rows, seed))
    if not paired:
        base.pop("rows")
    return bool(run_gate(base, results_doc(new_rows, seed + 1), tol).failed)


def measure(
    scenario: str,
    n: int,
    paired: bool,
    trials: int,
    seed: int,
    concentration: float | None = None,
    drop: float = DROP,
) -> dict[str, Any]:
    """False-alarm rate and power (a `drop` in task completion) over `trials` gate runs."""
    from toolsft.eval.gate import load_tolerances

    tol = load_tolerances(TOLERANCES)
    rng = np.random.default_rng([seed, n, int(paired), scenario == "seeds"])
    fixed = episode_set(n, rng, concentration)
    alarms = detections = 0
    for _ in range(trials):
        episodes = fixed if scenario == "seeds" else episode_set(n, rng, concentration)
        shrink = drop / expected_task(episodes)
        base = simulate(episodes, rng)
        alarms += gate_fails(base, simulate(episodes, rng), paired, tol, seed)
        detections += gate_fails(base, simulate(episodes, rng, shrink), paired, tol, seed)
    return {
        "scenario": scenario,
        "episodes": n,
        "tests": "paired" if paired else "unpaired",
        "trials": trials,
        "false_alarms": alarms,
        "false_alarm_rate": alarms / trials,
        "false_alarm_upper95": _upper95(alarms, trials),
        "power": detections / trials,
    }


def _upper95(k: int, n: int) -> float:
    """One-sided 95% Clopper-Pearson upper bound of a rate seen k times in n (by bisection)."""
    from toolsft.eval.stats import binom_sf

    if k >= n:
        return 1.0
    lo, hi = k / n, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        # P(X <= k | mid) = 1 - P(X >= k + 1 | mid); the bound is where it falls to 5%.
        lo, hi = (mid, hi) if 1 - binom_sf(k + 1, n, mid) > 0.05 else (lo, mid)
    return hi


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--trials", type=int, default=300, help="gate runs per cell (default 300)")
    ap.add_argument("--sizes", default="60,300", help="episodes per run, comma-separated")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--concentration", type=float, default=None)
    ap.add_argument("--drop", type=float, default=DROP, help="real drop for the power figure")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args()
    t0 = time.perf_counter()
    cells = []
    print(
        f"{'scenario':<10} {'n':>5} {'tests':<9} {'trials':>6} {'false alarm':>12} {'(95% up)':>9} {f'power {100 * args.drop:g}pt':>10}"
    )
    for n in (int(x) for x in args.sizes.split(",")):
        for scenario in ("seeds", "resampled"):
            for paired in (True, False):
                c = measure(
                    scenario, n, paired, args.trials, args.seed, args.concentration, args.drop
                )
                cells.append(c)
                print(
                    f"{scenario:<10} {n:>5} {c['tests']:<9} {c['trials']:>6} "
                    f"{100 * c['false_alarm_rate']:>11.1f}% {100 * c['false_alarm_upper95']:>8.1f}% "
                    f"{100 * c['power']:>9.1f}%"
                )
    worst = max(c["false_alarm_rate"] for c in cells)
    print(
        f"worst false-alarm rate {100 * worst:.1f}% (bar: <= 5%); {time.perf_counter() - t0:.0f} s"
    )
    if args.json:
        args.json.write_text(
            json.dumps({"cells": cells, "concentration": args.concentration}, indent=1)
        )
    if worst > 0.05 or math.isnan(worst):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
