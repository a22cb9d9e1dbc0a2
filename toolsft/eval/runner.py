"""`evaluate`: suite + rows + engine -> the results.json document.

The CLI builds the engine (model resolution, adapters, backend options) and hands it in, so
this module stays free of heavy imports and is what tests call with the replay engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.engines.base import Decoding, Engine
from toolsft.eval.data import EvalData, load_eval_data
from toolsft.eval.episodes import MAX_TURNS, BatchStat, Episode, run_episodes
from toolsft.eval.metrics import N_BOOTSTRAP, aggregate, pass_hat_k, percentiles
from toolsft.eval.scoring import Verdict, score_episode
from toolsft.schema.suite import Suite, load_suite
from toolsft.types import STAGES

logger = logging.getLogger(__name__)

RESULTS_SCHEMA = "toolsft.eval/1"


@dataclass
class EvalConfig:
    suite: Path
    data: Path
    split: str = "test"
    stages: Sequence[int] = STAGES
    limit: int | None = None
    """Rows per stage (a seeded sample); None: all."""
    samples: int = 1
    seed: int = 0
    max_turns: int = MAX_TURNS
    decoding: Decoding = field(default_factory=Decoding)
    n_boot: int = N_BOOTSTRAP
    name: str = ""
    model: Mapping[str, Any] = field(default_factory=dict)
    """What identifies the model (`toolsft.models.model_identity`), recorded as is."""


def evaluate(
    engine: Engine, cfg: EvalConfig, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    suite = load_suite(cfg.suite)
    data = load_eval_data(cfg.data, cfg.split, cfg.stages, cfg.limit, cfg.seed, suite.hash)
    logger.info(
        "evaluating %d rows x %d samples with %s", len(data.examples), cfg.samples, engine.name
    )
    episodes, stats = run_episodes(
        engine, data.examples, suite.executor, cfg.decoding, cfg.samples, cfg.max_turns, progress
    )
    verdicts = [score_episode(ep, suite.policy, suite) for ep in episodes]
    return build_results(cfg, suite, data, engine.info(), verdicts, episodes, stats)


def build_results(
    cfg: EvalConfig,
    suite: Suite,
    data: EvalData,
    engine_info: Mapping[str, Any],
    verdicts: list[Verdict],
    episodes: list[Episode],
    stats: list[BatchStat],
) -> dict[str, Any]:
    from toolsft import __version__

    metrics = aggregate(verdicts, cfg.seed, cfg.n_boot)
    return {
        "schema": RESULTS_SCHEMA,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "run": {
            "name": cfg.name,
            "suite": {"name": suite.name, "path": str(cfg.suite), "hash": suite.hash},
            "data": {
                "path": str(cfg.data),
                "split": cfg.split,
                "stages": list(cfg.stages),
                "limit": cfg.limit,
                "files": data.files,
                "rows": len(data.examples),
                "data_hash": data.data_hash,
                "manifest_hash": data.manifest_hash,
            },
            "model": {k: v for k, v in cfg.model.items() if k != "adapter"}
            or {"name": engine_info.get("model")},
            "adapter": (cfg.model or {}).get("adapter") or engine_info.get("adapter"),
            "engine": dict(engine_info),
            "decoding": cfg.decoding.as_dict(),
            "samples": cfg.samples,
            "seed": cfg.seed,
            "max_turns": cfg.max_turns,
            "toolsft_version": __version__,
        },
        "metrics": metrics,
        "pass_k": pass_hat_k(verdicts, cfg.seed, cfg.n_boot) if cfg.samples > 1 else {},
        "perf": perf_summary(episodes, stats),
        "rows": [v.to_json() for v in verdicts],
    }


def perf_summary(episodes: Sequence[Episode], stats: Sequence[BatchStat]) -> dict[str, Any]:
    """Throughput from the batches' wall time; latency from the engine's own request timings."""
    gens = [t.gen for ep in episodes for t in ep.turns]
    # Scripted engines (replay, gold) measure nothing: report no throughput rather than noise.
    wall = sum(s.wall_s for s in stats) if any(g.latency_s is not None for g in gens) else 0.0
    out_tokens = sum(g.output_tokens for g in gens)
    ep_lat = {id(ep): _episode_latency(ep) for ep in episodes}
    stages = sorted({str(ep.example.meta.get("stage", "?")) for ep in episodes})
    return {
        "requests": len(gens),
        "episodes": len(episodes),
        "batches": [
            {"turn": s.turn, "requests": s.requests, "wall_s": round(s.wall_s, 4)} for s in stats
        ],
        "wall_s": round(wall, 4),
        "requests_per_s": round(len(gens) / wall, 4) if wall > 0 else None,
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
        "output_tokens": out_tokens,
        "output_tokens_per_s": round(out_tokens / wall, 2) if wall > 0 else None,
        "ttft_s": percentiles(g.ttft_s for g in gens),
        "latency_s": percentiles(g.latency_s for g in gens),
        "episode_latency_s": percentiles(ep_lat.values()),
        "episode_latency_s_by_stage": {
            st: percentiles(
                ep_lat[id(ep)] for ep in episodes if str(ep.example.meta.get("stage", "?")) == st
            )
            for st in stages
        },
        "latency_hist_s": [round(g.latency_s, 4) for g in gens if g.latency_s is not None],
    }


def _episode_latency(ep: Episode) -> float | None:
    """Sum of the turns' latencies (None when the engine timed none of them)."""
    if not ep.turns or any(t.gen.latency_s is None for t in ep.turns):
        return None
    return sum(t.gen.latency_s or 0.0 for t in ep.turns)
