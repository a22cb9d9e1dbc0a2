"""Paired comparison of two runs scored on the same episodes (two results.json files).

For each kind and in all: completed episodes of each run, those only A and only B completed,
and the exact two-sided McNemar p-value. Used for the decisions in docs/experiments.md:

    python scripts/paired.py runA/curve/points/stage3/results.json \
        runB/curve/points/stage3/results.json [--metric task_completion]
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

from toolsft.errors import ToolsftError
from toolsft.eval.results import load_results
from toolsft.eval.stats import mcnemar_p


def outcomes(path: Path, metric: str) -> dict[str, tuple[str, bool]]:
    """episode key -> (kind, passed) for every row that has the metric; a file that is not a
    valid results.json (or a folder holding one) is refused with its name."""
    try:
        doc = load_results(path)
    except ToolsftError as exc:
        raise SystemExit(f"error: {exc}") from exc
    out = {}
    for row in doc["rows"]:
        value = row["values"].get(metric)
        if value is None:
            continue
        kind = (row.get("groups") or {}).get("kind", ["?"])[0]
        out[f"{row['id']}#{row.get('sample', 0)}"] = (str(kind), value[0] >= value[1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--metric", default="task_completion")
    args = ap.parse_args()
    a, b = outcomes(args.a, args.metric), outcomes(args.b, args.metric)
    shared = sorted(set(a) & set(b))
    if not shared:
        raise SystemExit("the two runs share no episode: not a paired comparison")
    cells: dict[str, list[int]] = defaultdict(lambda: [0] * 5)  # n, A, B, only A, only B
    for key in shared:
        kind, pa = a[key]
        pb = b[key][1]
        for k in (kind, "all"):
            c = cells[k]
            c[0] += 1
            c[1] += pa
            c[2] += pb
            c[3] += pa and not pb
            c[4] += pb and not pa
    print(f"{args.metric}: {len(shared)} shared episodes (A: {args.a}, B: {args.b})")
    print(f"{'kind':<12}{'n':>5}{'A':>6}{'B':>6}{'only A':>8}{'only B':>8}{'p (two-sided)':>15}")
    for kind in sorted(cells, key=lambda k: (k == "all", k)):
        n, pa, pb, oa, ob = cells[kind]
        p = min(1.0, 2 * mcnemar_p(max(oa, ob), min(oa, ob))) if oa + ob else 1.0
        print(f"{kind:<12}{n:>5}{pa:>6}{pb:>6}{oa:>8}{ob:>8}{p:>15.4f}")


if __name__ == "__main__":
    main()
