"""Verified examples per second on one core: generation vs validation time.

Usage: python benchmarks/gen_throughput.py [--suite tool_schemas/commerce] [--rows 3000]
Goal (issue #2): >= 20,000 verified examples/s on one core.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import time
from pathlib import Path

from toolsft.gen.pipeline import _date_range, to_example
from toolsft.gen.sample import Context
from toolsft.gen.stages import Skip, StageConfig, build, kind_weights, pick_kind
from toolsft.gen.verify import verify
from toolsft.schema.suite import load_suite

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--suite", default=str(ROOT / "tool_schemas" / "commerce"))
    ap.add_argument("--rows", type=int, default=3000, help="rows per stage")
    args = ap.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core, as the goal states
    suite = load_suite(args.suite)
    lo, hi = _date_range(suite)
    t_gen = t_ver = 0.0
    ok = 0
    scfg = StageConfig()
    for stage in (1, 2, 3):
        weights = kind_weights(suite, stage)
        for i in range(args.rows):
            rng = random.Random(f"bench|{stage}|{i}")
            today = lo + dt.timedelta(days=rng.randint(0, (hi - lo).days))
            ctx = Context(("zh", "en")[i % 2], False, today, rng, scfg.noise)
            t0 = time.perf_counter()
            try:
                draft = build(suite, stage, pick_kind(stage, rng, weights), ctx, scfg)
                ex = to_example(suite, draft, "train", f"b{i}")
                ex.to_row()
            except Skip:
                draft = None
            t1 = time.perf_counter()
            if draft is not None and verify(suite, draft) is None:
                ok += 1
            t_ver += time.perf_counter() - t1
            t_gen += t1 - t0
    total = t_gen + t_ver
    print(f"suite {suite.name}: {ok} verified rows of {3 * args.rows} on one core")
    print(f"generation  {t_gen:7.2f} s  ({3 * args.rows / t_gen:9.0f} rows/s)")
    print(f"validation  {t_ver:7.2f} s  ({3 * args.rows / t_ver:9.0f} rows/s)")
    print(f"total       {total:7.2f} s  ({ok / total:9.0f} verified examples/s; goal 20000)")


if __name__ == "__main__":
    main()
