"""`toolsft curve`: one training run, snapshots at geometric steps, every snapshot scored on
one fixed stratified episode set by one engine kept alive, and `curve.json` + a plot.

Layout under `--out`: `stage<N>/` (the run, as `toolsft train` writes it), `snapshots/`,
`curve/episodes.json` (the fixed set, picked once), `curve/points/<name>/results.json` (one
scored model each; a rerun skips what is there) and `curve/curve.json`, `curve.svg`, `curve.md`.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from toolsft.engines.base import Decoding
from toolsft.errors import ToolsftError
from toolsft.eval.curve import (
    Point,
    curve_document,
    curve_markdown,
    curve_page,
    curve_svg,
    point_entry,
)
from toolsft.eval.data import load_eval_data
from toolsft.eval.episode_set import stratified
from toolsft.io import atomic_write
from toolsft.schema.suite import load_suite
from toolsft.types import STAGES

logger = logging.getLogger(__name__)

EPISODES_SCHEMA = "toolsft.episodes/1"


@dataclass
class CurveConfig:
    """What `toolsft curve` trains and scores; every field is a CLI option."""

    suite: Path
    data: Path
    out: Path
    stages: Sequence[int] = STAGES
    split: str = "val"
    """Split the points are scored on: decisions are made on val, never on test."""
    episodes: int = 300
    """Episodes in the fixed set (at least)."""
    per_kind: int = 20
    """At least this many episodes of every kind (all of a kind that has fewer)."""
    first_point: int = 25
    """Snapshots at first_point, 2x, 4x, ... optimizer steps of each stage, plus its end."""
    engine: str = "vllm"
    engine_opts: dict[str, Any] = field(default_factory=dict)
    constrained: bool = False
    seed: int = 0
    score_data: Path | None = None
    """Score on this `toolsft gen` folder's split instead of `data`'s: two data variants
    trained on their own rows are then scored on the same episodes (a paired comparison)."""

    @property
    def folder(self) -> Path:
        return self.out / "curve"

    @property
    def scored(self) -> Path:
        """The data folder the episodes come from."""
        return self.score_data or self.data


def pick_episodes(cfg: CurveConfig) -> dict[str, Any]:
    """The fixed episode set: read from `curve/episodes.json` when it exists (a rerun scores
    the same episodes), else picked with `cfg.seed` and written there."""
    suite = load_suite(cfg.suite)
    data = load_eval_data(cfg.scored, cfg.split, STAGES, None, cfg.seed, suite.hash)
    file = cfg.folder / "episodes.json"
    if file.is_file():
        doc = json.loads(file.read_text(encoding="utf-8"))
        if doc.get("data_hash") != data.data_hash:
            raise ToolsftError(
                "the episode set was picked from other data; use a new --out",
                file=file,
                where="data_hash",
                value=doc.get("data_hash"),
            )
        return doc
    chosen = stratified(data.examples, cfg.episodes, cfg.per_kind, random.Random(cfg.seed))
    doc = {
        "schema": EPISODES_SCHEMA,
        "split": cfg.split,
        "seed": cfg.seed,
        "data_hash": data.data_hash,
        "n": len(chosen.ids),
        "by_kind": chosen.by_kind,
        "short_kinds": list(chosen.short_kinds),
        "ids": list(chosen.ids),
    }
    if chosen.short_kinds:
        logger.warning(
            "kinds with fewer than %d %s rows (all taken): %s",
            cfg.per_kind,
            cfg.split,
            ", ".join(chosen.short_kinds),
        )
    atomic_write(file, json.dumps(doc, indent=1) + "\n")
    return doc


def points_of(
    out: Path, stages: Sequence[int], home: Path | None = None
) -> list[tuple[Point, Path | None]]:
    """The base model, then each stage's snapshots and its finished folder, in training order,
    with the adapter each one serves (None: the base model). A stage that did not finish
    contributes the snapshots it saved (their tokenizer is made from the base model in `home`)."""
    from toolsft.train.artifacts import read_run
    from toolsft.train.snapshots import SNAPSHOT_INFO

    points: list[tuple[Point, Path | None]] = [(Point("base", 0, 0, 0, 0, ""), None)]
    offset, tokens_before = 0, 0
    for stage in stages:
        sdir = out / f"stage{stage}"
        complete = (sdir / "run.json").is_file()
        # An unfinished stage (a killed or stopped run) still shows the snapshots it saved.
        final = int(read_run(sdir)["metrics"]["global_step"]) if complete else 1 << 62
        for snap in sorted((out / "snapshots").glob(f"stage{stage}-step*[0-9]")):
            if not (snap / "tokenizer_config.json").is_file() and home is not None:
                _save_tokenizer(out, snap, home)
            info = json.loads((snap / SNAPSHOT_INFO).read_text(encoding="utf-8"))
            if info["step"] < final:
                point = Point(
                    snap.name,
                    stage,
                    info["step"],
                    offset + info["step"],
                    tokens_before + info["tokens_seen"],
                    "",
                )
                points.append((point, snap))
        if not complete:
            break
        metrics = json.loads((sdir / "metrics.json").read_text(encoding="utf-8"))
        tokens = int(metrics.get("tokens_seen") or 0)
        points.append(
            (Point(f"stage{stage}", stage, final, offset + final, tokens_before + tokens, ""), sdir)
        )
        offset, tokens_before = offset + final, tokens_before + tokens
    return points


def _save_tokenizer(out: Path, snap: Path, home: Path) -> None:
    """A snapshot of a stage that never finished has no tokenizer yet: the base model's,
    with the serving template that stage trained with (as `train` saves a finished one)."""
    import yaml
    from transformers import AutoTokenizer

    from toolsft.models import resolve_model
    from toolsft.train.templates import choose_template

    cfg = yaml.safe_load((out / snap.name.split("-")[0] / "config.yaml").read_text("utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(cfg["model"], home)))
    tokenizer.chat_template = choose_template(tokenizer, cfg.get("chat_template", "auto")).serve
    tokenizer.save_pretrained(str(snap))


ProgressFn = Callable[[str, int, int], None]
"""(point name, points done, points in all)."""


def score_points(
    cfg: CurveConfig,
    points: Sequence[tuple[Point, Path | None]],
    episodes: Mapping[str, Any],
    base_model: Path | str,
    progress: ProgressFn | None = None,
) -> list[dict[str, Any]]:
    """Score every point that has no results yet with one engine; return their entries."""
    from toolsft.eval.results import write_run
    from toolsft.eval.runner import EvalConfig, evaluate

    todo = [(p, a) for p, a in points if not _results_file(cfg, p).is_file()]
    server = _server(cfg, base_model, episodes) if todo else None
    try:
        for i, (point, adapter) in enumerate(todo):
            if progress:
                progress(point.name, i, len(todo))
            engine = server.serve(adapter)  # type: ignore[union-attr]
            ecfg = EvalConfig(
                suite=cfg.suite,
                data=cfg.scored,
                split=cfg.split,
                seed=cfg.seed,
                name=point.name,
                episodes=episodes["ids"],
                decoding=Decoding(constrained=cfg.constrained, seed=cfg.seed),
                model={"name": str(base_model), "adapter": str(adapter) if adapter else None},
            )
            write_run(evaluate(engine, ecfg), _results_file(cfg, point).parent)
        if progress and todo:
            progress("", len(todo), len(todo))
    finally:
        if server is not None:
            server.close()
    return [
        point_entry(_with_file(cfg, p), _load(_results_file(cfg, p)))
        for p, _ in points
        if _results_file(cfg, p).is_file()
    ]


def _server(cfg: CurveConfig, base_model: Path | str, episodes: Mapping[str, Any]) -> Any:
    from toolsft.engines.swap import AdapterServer

    opts = dict(cfg.engine_opts)
    if cfg.engine == "gold":
        from toolsft.eval.episode_set import select

        data = load_eval_data(cfg.scored, cfg.split, STAGES, None, cfg.seed, None)
        opts = {"examples": select(data.examples, episodes["ids"])}
    return AdapterServer(cfg.engine, base_model, cfg.folder / "scratch", **opts)


def _results_file(cfg: CurveConfig, point: Point) -> Path:
    return cfg.folder / "points" / point.name / "results.json"


def _with_file(cfg: CurveConfig, point: Point) -> Point:
    from dataclasses import replace

    rel = _results_file(cfg, point).relative_to(cfg.folder)
    return replace(point, results_file=str(rel))


def _load(file: Path) -> dict[str, Any]:
    return json.loads(file.read_text(encoding="utf-8"))


def write_curve(
    cfg: CurveConfig, entries: Sequence[Mapping[str, Any]], episodes: Mapping[str, Any]
) -> Path:
    """curve.json, curve.svg, curve.md and curve.html into `<out>/curve`; returns curve.json's
    path."""
    suite = load_suite(cfg.suite)
    run = {
        "suite": {"name": suite.name, "hash": suite.hash},
        "data": str(cfg.data),
        "scored_on": str(cfg.scored),
        "split": cfg.split,
        "engine": cfg.engine,
        "constrained": cfg.constrained,
        "seed": cfg.seed,
        "first_point": cfg.first_point,
    }
    summary = {k: episodes[k] for k in ("n", "by_kind", "short_kinds", "data_hash", "seed")}
    doc = curve_document(entries, run, summary)
    atomic_write(cfg.folder / "curve.json", json.dumps(doc, indent=1) + "\n")
    atomic_write(cfg.folder / "curve.svg", curve_svg(doc))
    atomic_write(cfg.folder / "curve.md", curve_markdown(doc))
    atomic_write(cfg.folder / "curve.html", curve_page(doc))
    return cfg.folder / "curve.json"


def train_points(
    cfg: CurveConfig,
    configs: Mapping[int, Any],
    home: Path,
    progress: Callable[[Any], None] | None = None,
) -> list[Any]:
    """Train `cfg.stages` in order into `cfg.out` (as `toolsft train --all --resume` would),
    saving snapshots on the geometric grid. A complete stage is skipped, so a killed curve
    continues where it stopped."""
    from toolsft.train import train_stage
    from toolsft.train.snapshots import SnapshotCallback, complete_snapshots

    results = []
    for stage in cfg.stages:
        snaps = SnapshotCallback(cfg.out / "snapshots", stage, cfg.first_point)
        result = train_stage(
            stage,
            cfg.data,
            cfg.out,
            configs[stage],
            home,
            resume=True,
            progress=progress,
            callbacks=[snaps],
        )
        complete_snapshots(cfg.out / "snapshots", stage, result.dir)
        results.append(result)
    return results
