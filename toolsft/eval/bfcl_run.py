"""Run a model on BFCL's public data and score it with BFCL's AST rules.

Entries become ordinary requests (BFCL's type dialect converted to JSON Schema, dotted names
made OpenAI-safe and mapped back before checking, by `toolsft.eval.bfcl`), so any engine
serves them; one batched engine call covers the whole category (BFCL's AST categories are
single-turn). Accuracy is the share of entries whose calls pass BFCL's checker: comparable
with the leaderboard's AST columns for the same category.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from pathlib import Path
from typing import Any

from toolsft.chat.parse import parse_assistant
from toolsft.engines.base import Decoding, Engine, Request
from toolsft.engines.replay import request_key
from toolsft.eval.metrics import Metric, percentiles, summarize

BFCL_SCHEMA = "toolsft.bfcl/1"


def run_bfcl(
    engine: Engine,
    folder: str | Path,
    category: str,
    decoding: Decoding,
    limit: int | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    from toolsft.eval.bfcl import load_category

    entries = load_category(folder, category)
    if limit is not None:
        entries = entries[:limit]
    requests = [
        Request(
            e.messages(),
            [t.to_openai() for t in e.tools(openai_names=True)],
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
        verdict = entry.check(category, parsed.calls) if not parsed.errors else None
        rows.append(
            {
                "id": entry.id,
                "text": gen.text,
                "calls": [c.as_dict() for c in parsed.calls],
                "valid": bool(verdict and verdict.valid),
                "error_type": "parse_error" if verdict is None else verdict.error_type,
                "error": "; ".join(parsed.errors) if verdict is None else verdict.error,
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
