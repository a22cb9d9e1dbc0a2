"""Run a model on BFCL's public data and score it with BFCL's AST rules.

Entries become ordinary requests (BFCL's type dialect converted to JSON Schema by
`toolsft.eval.bfcl`), so any engine serves them; one batched engine call covers the whole
category (BFCL's AST categories are single-turn). toolsft engines pass tools the FC way, so
the run is an FC run in BFCL's terms: dotted names are shown with underscores and scored in
BFCL's `underscore_to_dot` name mode. Accuracy is the share of entries whose calls pass
BFCL's checker: comparable with the leaderboard's AST columns (FC models) for the category.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from toolsft.chat.parse import parse_assistant
from toolsft.engines.base import Decoding, Engine, Request
from toolsft.engines.replay import request_key
from toolsft.eval.metrics import Metric, percentiles, summarize

BFCL_SCHEMA = "toolsft.bfcl/1"


def load_entries(folder: str | Path, category: str, limit: int | None = None) -> list[Any]:
    """The category's entries (the first `limit`), or BfclDataError naming the folder or file:
    called before an engine is built, so a wrong folder or category costs no model load."""
    from toolsft.eval.bfcl import PREFIX, BfclDataError, load_category

    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BfclDataError("must be a whole number of entries >= 1", where="--limit", value=limit)
    if not Path(folder).is_dir():
        raise BfclDataError(
            f"not a folder (BFCL's data folder holds {PREFIX}<category>.json files)", file=folder
        )
    entries = load_category(folder, category)
    if not entries:
        raise BfclDataError(f"category {category!r} has no entries", file=folder)
    return entries if limit is None else entries[:limit]


def run_bfcl(
    engine: Engine,
    folder: str | Path,
    category: str,
    decoding: Decoding,
    limit: int | None = None,
    seed: int = 0,
    entries: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Run and score the category; `entries` are those `load_entries` already read."""
    from toolsft.eval.bfcl import Prediction, score_one

    if entries is None:
        entries = load_entries(folder, category, limit)
    requests = [
        Request(
            e.messages(),
            [t.to_openai() for t in e.tools(underscore_to_dot=True)],
            request_key(e.id, 0, 0),
        )
        for e in entries
    ]
    t0 = time.perf_counter()
    gens = engine.generate(requests, decoding)
    wall = time.perf_counter() - t0
    rows = []
    for entry, gen in zip(entries, gens, strict=True):
        parsed = parse_assistant(gen.text)
        pred = Prediction(entry.id, tuple(parsed.calls), decode_error="; ".join(parsed.errors))
        # Output that does not parse is BFCL's decoding failure: a miss, or a pass where
        # the right answer is no call (irrelevance).
        verdict = score_one(category, entry, pred, underscore_to_dot=True)
        rows.append(
            {
                "id": entry.id,
                "text": gen.text,
                "calls": [c.as_dict() for c in parsed.calls],
                "valid": verdict.valid,
                "error_type": verdict.error_type,
                "error": verdict.error,
            }
        )
    acc = summarize(
        Metric("bfcl_accuracy", "BFCL AST accuracy", ""),
        [[float(r["valid"]), 1] for r in rows],
        seed,
        category,
    )
    return {
        "schema": BFCL_SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "category": category,
        "name_mode": "underscore_to_dot",
        "folder": str(folder),
        "engine": engine.info(),
        "decoding": decoding.as_dict(),
        "accuracy": acc,
        "errors": dict(Counter(r["error_type"] for r in rows if not r["valid"]).most_common()),
        "perf": {
            "requests": len(gens),
            "wall_s": round(wall, 3),
            "requests_per_s": round(len(gens) / wall, 3) if wall > 0 else None,
            "output_tokens_per_s": round(sum(g.output_tokens for g in gens) / wall, 2)
            if wall > 0
            else None,
            "ttft_s": percentiles(g.ttft_s for g in gens),
            "latency_s": percentiles(g.latency_s for g in gens),
        },
        "rows": rows,
    }
