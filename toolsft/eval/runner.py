"""`evaluate`: suite + rows + engine -> the results.json document.

The CLI builds the engine (model resolution, adapters, backend options) and hands it in, so
this module stays free of heavy imports and is what tests call with the replay engine.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.engines.base import Decoding, Engine, EngineError
from toolsft.engines.predictions import GEN_FIELDS
from toolsft.errors import ToolsftError
from toolsft.eval.data import EvalData, load_eval_data
from toolsft.eval.episodes import MAX_TURNS, BatchStat, Episode, describe, run_episodes
from toolsft.eval.metrics import N_BOOTSTRAP, aggregate, pass_hat_k, percentiles
from toolsft.eval.resume import PredictionLog
from toolsft.eval.scoring import Verdict, groups_of, score_episode
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
    episodes: Sequence[str] | None = None
    """A fixed episode set (`stage<N>:<id>` ids, `toolsft.eval.episode_set`) instead of
    `limit`: every point of a learning curve scores the same episodes."""
    require_manifest: bool = True
    """Refuse a dataset without manifest.json (`eval --no-manifest` turns it off)."""


def evaluate(
    engine: Engine,
    cfg: EvalConfig,
    progress: Callable[[int, int], None] | None = None,
    *,
    out: Path | None = None,
    resume: bool = False,
    deadline_s: float | None = None,
) -> dict[str, Any]:
    """Run and score every episode; the results.json document.

    With `out`, every prediction is appended to `out/predictions.jsonl` as it is made, and
    `resume` continues the interrupted run found there (the same run, or `ResumeError`).
    `deadline_s` bounds the whole evaluation (checked between engine batches).
    """
    suite = load_suite(cfg.suite)
    data = load_eval_data(
        cfg.data, cfg.split, cfg.stages, cfg.limit, cfg.seed, suite.hash, cfg.require_manifest
    )
    if cfg.episodes is not None:
        data = only_episodes(data, cfg.episodes)
    logger.info(
        "evaluating %d rows x %d samples with %s", len(data.examples), cfg.samples, engine.name
    )
    if deadline_s is not None and not deadline_s > 0:
        raise ToolsftError("--deadline must be a positive number of seconds", value=deadline_s)
    _unique_ids(data)
    info = engine.info()
    deadline = None if deadline_s is None else time.monotonic() + deadline_s
    log = PredictionLog(out, run_identity(cfg, suite, data, info), resume) if out else None
    try:
        episodes, stats = run_episodes(
            engine,
            data.examples,
            suite.executor,
            cfg.decoding,
            cfg.samples,
            cfg.max_turns,
            progress,
            done=log.done if log else None,
            record=log.append if log else None,
            deadline=deadline,
        )
        if log:
            log.finish()
    except EngineError as exc:
        if log is None or not (log.done or log.written):
            raise
        raise EngineError(
            f"{exc}; the {len(log.done) + log.written} predictions made are kept in "
            f"{log.file}: rerun with --resume to go on"
        ) from exc
    finally:
        if log:
            log.close()
    verdicts = [score_safely(ep, suite) for ep in episodes]
    return build_results(cfg, suite, data, info, verdicts, episodes, stats)


def _unique_ids(data: EvalData) -> None:
    """Predictions are keyed by row id (replay, --resume): two rows with one id would share."""
    seen: set[str] = set()
    for ex in data.examples:
        rid = str(ex.meta.get("id", ""))
        if rid in seen:
            raise ToolsftError(
                "two rows have this id; predictions are keyed by it, so ids must be unique",
                file=", ".join(data.files) or None,
                where="id",
                value=rid,
            )
        seen.add(rid)


def run_identity(
    cfg: EvalConfig, suite: Suite, data: EvalData, engine_info: Mapping[str, Any]
) -> dict[str, Any]:
    """What must be equal for `--resume` to continue a run; options first, so a refusal
    names the option that changed before the row hash it changed."""
    model = {k: v for k, v in cfg.model.items() if k not in ("path", "note", "adapter")}
    adapter = cfg.model.get("adapter")
    engine: dict[str, Any] = {"engine": engine_info.get("engine")}
    if engine_info.get("engine") == "replay":  # its model is the predictions file it reads
        engine["predictions"] = engine_info.get("model")
    return {
        "split": cfg.split,
        "stages": list(cfg.stages),
        "limit": cfg.limit,
        "seed": cfg.seed,
        "samples": cfg.samples,
        "max_turns": cfg.max_turns,
        "decoding": cfg.decoding.as_dict(),
        "model": model,
        "adapter": adapter.get("sha256") if isinstance(adapter, Mapping) else adapter,
        "engine": engine,
        "suite": suite.hash,
        "rows": data.data_hash,
    }


def score_safely(ep: Episode, suite: Suite) -> Verdict:
    """The episode's verdict; a failure while scoring fails this row alone, with the reason,
    and so does anything the run itself could not handle (`Episode.failures`)."""
    try:
        verdict = score_episode(ep, suite.policy, suite)
    except Exception as exc:  # noqa: BLE001 (one hostile reply must not stop the run)
        logger.warning("row %s: scoring failed: %s", ep.row_id, describe(exc))
        verdict = _failed(ep, f"scoring failed: {describe(exc)}")
    if ep.failures:
        verdict.ok = False
        verdict.reasons = [*ep.failures, *verdict.reasons]
        verdict.values["task_completion"] = [0.0, 1]
    try:
        json.dumps(verdict.to_json(), ensure_ascii=False).encode("utf-8")
    except (ValueError, TypeError, RecursionError, UnicodeError) as exc:
        logger.warning("row %s: verdict not writable: %s", ep.row_id, describe(exc))
        verdict = _failed(ep, f"result not writable as JSON: {describe(exc)}", verdict.reasons)
    return verdict


def _failed(ep: Episode, reason: str, more: Sequence[str] = ()) -> Verdict:
    """A failed verdict that keeps what can always be written: each turn's text and timing."""
    turns = [
        {"text": t.text, **{k: getattr(t.gen, k) for k in GEN_FIELDS}, "calls": []}
        for t in ep.turns
    ]
    try:
        groups = groups_of(ep.example.meta, ep.example.expected.calls)
    except Exception:  # noqa: BLE001 (the row's own data is what failed: group it as unknown)
        groups = {"stage": [str(ep.example.meta.get("stage", "?"))]}
    reasons = [reason, *(r for r in more if r != reason)]
    return Verdict(
        ep.row_id,
        ep.sample,
        groups,
        False,
        [" ".join(r.split())[:300] for r in reasons],
        {"task_completion": [0.0, 1]},
        {"turns": turns, "answer": ""},
    )


def only_episodes(data: EvalData, ids: Sequence[str]) -> EvalData:
    from dataclasses import replace

    from toolsft.eval.data import rows_hash
    from toolsft.eval.episode_set import select

    examples = select(data.examples, ids)
    return replace(data, examples=examples, data_hash=rows_hash(examples))


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
    # Turns a resumed run read back cost no wall time now: throughput counts the new ones.
    new = [g for g in gens if not g.extra.get("resumed")]
    # Scripted engines (replay, gold) measure nothing: report no throughput rather than noise.
    wall = sum(s.wall_s for s in stats) if any(g.latency_s is not None for g in new) else 0.0
    out_tokens = sum(g.output_tokens for g in gens)
    new_tokens = sum(g.output_tokens for g in new)
    ep_lat = {id(ep): _episode_latency(ep) for ep in episodes}
    stages = sorted({str(ep.example.meta.get("stage", "?")) for ep in episodes})
    return {
        "requests": len(gens),
        "resumed_requests": len(gens) - len(new),
        "episodes": len(episodes),
        "batches": [
            {"turn": s.turn, "requests": s.requests, "wall_s": round(s.wall_s, 4)} for s in stats
        ],
        "wall_s": round(wall, 4),
        "requests_per_s": round(len(new) / wall, 4) if wall > 0 else None,
        "prompt_tokens": sum(g.prompt_tokens for g in gens),
        "output_tokens": out_tokens,
        "output_tokens_per_s": round(new_tokens / wall, 2) if wall > 0 else None,
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
