"""Generate every stage and split of a suite: plan rows, build, verify, collect stats.

Each row has its own RNG seeded from (seed, stage, split, index, attempt), so a row does not
depend on the rows before it and the same seed gives byte-identical output.
"""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from toolsft import __version__
from toolsft.errors import ToolsftError
from toolsft.gen.plan import plan_for
from toolsft.gen.sample import Context
from toolsft.gen.stages import Draft, Skip, StageConfig, build, pick_suite_kind
from toolsft.gen.verify import verify
from toolsft.options import (
    check_fields,
    fields_of,
    flag_name,
    from_mapping,
    load_yaml_file,
    option,
)
from toolsft.schema.suite import Suite
from toolsft.types import LANGS, STAGES, Example, ToolSpec

MAX_ROWS = 1_000_000
"""Upper bound of per_stage and group: far above any real dataset, and it keeps a typo (an
extra digit or ten) from running for hours."""


@dataclass(frozen=True)
class GenConfig:
    """What `toolsft gen` generates: every field is a `gen` option and a key of a config
    file's `gen` section (`load_gen_config`)."""

    seed: int = option(0, "Seed: the same suite and seed give identical files.")
    per_stage: int = option(
        1000,
        "Training rows per stage (validation and test rows: see the ratios).",
        low=1,
        high=MAX_ROWS,
    )
    val_ratio: float = option(0.1, "Validation rows per training row.", low=0, high=1)
    test_ratio: float = option(0.2, "Test rows per training row.", low=0, high=1)
    langs: tuple[str, ...] = option(
        ("zh", "en"),
        "Languages, taken in turn row by row (group by group with group > 1).",
        cli="--lang",
        choices=LANGS,
    )
    stages: tuple[int, ...] = option(
        (1, 2, 3), "Stages to generate: 1 select, 2 fill, 3 answer.", choices=STAGES
    )
    max_tools: int = option(
        0, "Tools shown in stage-1 rows (0: all; confusable tools always included).", low=0
    )
    noise: float = option(0.15, "Share of requests with typing noise.", low=0, high=1)
    entity_swap: float = option(
        0.5,
        "Share of free-text values (cities, products, addresses) that train/val rows replace "
        "with new values of the same shape, so the model learns to copy rather than recall "
        "the pool. The test split never swaps.",
        low=0,
        high=1,
    )
    paraphrase: float = option(0.25, "Share of requests in a paraphrase wrapper.", low=0, high=1)
    context: float = option(0.15, "Share of rows with earlier small talk.", low=0, high=1)
    two_call: float = option(
        0.0,
        "Share of stage-3 rows that answer from two tool results: a two-tool or parallel "
        "request, both calls, both results, one answer with every result's facts (how multi "
        "and parallel episodes end). 0 keeps stage 3 to one result a row.",
        low=0,
        high=1,
    )
    no_tool_share: float = option(
        0.0,
        "Share of stage-2 and stage-3 rows that are requests no tool fits, answered with the "
        "suite's no-tool reply (stage 1 has 30% of its own), so the later stages keep "
        "teaching when not to call.",
        low=0,
        high=1,
    )
    multi_share: float = option(
        0.0,
        "Share of stage-1 select rows that become requests for two tools at once, and of "
        "stage-2 fill rows that become requests for one tool twice (parallel calls), on top "
        "of the stage mix's 15% of each; the other kinds keep their shares. 0 adds none.",
        low=0,
        high=1,
    )
    max_attempts: int = option(30, "Tries per row before it is given up.", low=1, high=1000)
    show_all: bool = option(
        False,
        "Show every tool in every row of every stage, as a deployed model sees them "
        "(overrides max_tools and stage 2-3's short lists).",
    )
    suite_order: bool = option(
        False,
        "With show_all, list the tools in the suite's order in every row (as a deployment "
        "does) instead of shuffling them per group, so every prompt starts with the same "
        "tool list.",
    )
    group: int = option(
        1,
        "Rows per prompt group: consecutive rows share language, date and (with show_all) "
        "tool order, so `train --share-prefix` computes their common prompt once.",
        low=1,
        high=MAX_ROWS,
    )

    def validate(self, sources: Mapping[str, tuple[str | None, str]] | None = None) -> GenConfig:
        """This config with each stage once and in order, or a ToolsftError naming the file
        and key (or the option) that set the bad value (`sources`: field -> (file, where))."""
        check_fields(self, sources)
        src = dict(sources or {})
        rules = (
            ("langs", bool(self.langs), "names no language"),
            ("stages", bool(self.stages), "names no stage"),
            (
                "suite_order",
                self.show_all or not self.suite_order,
                f"needs {_name('show_all', src.get('suite_order'))} (rows otherwise show a few "
                "tools each)",
            ),
        )
        for name, ok, message in rules:
            if not ok:
                file, where = src.get(name, (None, name))
                raise ToolsftError(message, file=file, where=where, value=getattr(self, name))
        return replace(self, stages=tuple(sorted(set(self.stages))))

    def split_sizes(self) -> dict[str, int]:
        n = self.per_stage
        return {
            "train": n,
            "val": max(1, round(n * self.val_ratio)),
            "test": max(1, round(n * self.test_ratio)),
        }


def _name(field_name: str, source: tuple[str | None, str] | None) -> str:
    """Another field, named as the user wrote the one it is checked with: an option or a
    file's key."""
    if source is not None and source[0] is None and source[1].startswith("--"):
        return flag_name(fields_of(GenConfig)[field_name])
    return field_name


def load_gen_config(
    path: Path | None,
    overrides: Mapping[str, Any] | None = None,
    labels: Mapping[str, str] | None = None,
) -> GenConfig:
    """Defaults < the file's `gen` section < `overrides` (the command line's values, named in
    errors by `labels`: field -> option), validated."""
    values: dict[str, Any] = {}
    sources: dict[str, tuple[str | None, str]] = {}
    if path is not None:
        file = str(path)
        data = load_yaml_file(Path(path))
        if not isinstance(data, Mapping):
            raise ToolsftError("top level must be a mapping", file=file, value=data)
        section = data.get("gen")
        section = {} if section is None else section
        found = from_mapping(
            GenConfig, section, file=file, prefix="gen.", command="toolsft gen --help"
        )
        values.update(found)
        sources.update({k: (file, f"gen.{k}") for k in found})
    for key, value in (overrides or {}).items():
        values[key] = value
        sources[key] = (None, (labels or {}).get(key, key))
    return GenConfig(**values).validate(sources)


@dataclass
class GenResult:
    rows: dict[tuple[int, str], list[Example]] = field(default_factory=dict)
    rejections: Counter[str] = field(default_factory=Counter)
    templates: dict[str, set[str]] = field(default_factory=dict)
    entities: dict[str, set[str]] = field(default_factory=dict)

    def manifest(self, suite: Suite, cfg: GenConfig) -> dict[str, Any]:
        counts: dict[str, Any] = {}
        for (stage, split), rows in sorted(self.rows.items()):
            c = counts.setdefault(f"stage{stage}", {}).setdefault(split, {"total": len(rows)})
            for key in ("lang", "kind"):
                c[key] = dict(sorted(Counter(str(r.meta[key]) for r in rows).items()))
        train_t = self.templates.get("train", set()) | self.templates.get("val", set())
        train_e = self.entities.get("train", set()) | self.entities.get("val", set())
        return {
            "suite": suite.name,
            "suite_hash": suite.hash,
            "seed": cfg.seed,
            "toolsft_version": __version__,
            # The suite's tools as the rows show them: `train` validates every label against
            # them without needing the suite folder.
            "suite_tools": [t.to_openai() for t in suite.tools],
            "config": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(cfg).items()},
            "counts": counts,
            "rejections": dict(sorted(self.rejections.items())),
            "overlap": {
                "templates": len(train_t & self.templates.get("test", set())),
                "values": len(train_e & self.entities.get("test", set())),
            },
        }


def generate(
    suite: Suite,
    cfg: GenConfig,
    progress: Callable[[int], None] | None = None,
    on_split: Callable[[int, str, list[Example]], None] | None = None,
) -> GenResult:
    """Every stage and split of `cfg`. `on_split(stage, split, rows)` receives each split as
    soon as it is complete (the writer writes it then)."""
    result = GenResult()
    scfg = StageConfig(
        cfg.max_tools,
        cfg.noise,
        cfg.paraphrase,
        cfg.context,
        cfg.two_call,
        cfg.no_tool_share,
        cfg.multi_share,
    )
    lo, hi = _date_range(suite)
    for stage in cfg.stages:
        for split, n in cfg.split_sizes().items():
            rows = result.rows.setdefault((stage, split), [])
            for i in range(n):
                ex = _one_row(suite, cfg, scfg, stage, split, i, lo, hi, result)
                if ex is not None:
                    rows.append(ex)
                if progress:
                    progress(1)
            if on_split:
                on_split(stage, split, rows)
    return result


def row_rng(seed: int, stage: int, split: str, i: int, attempt: int) -> random.Random:
    """The RNG of one attempt at one row. A str seed is hashed with SHA-512, never `hash()`,
    so it is the same in every process and on every platform. (Seeding the Mersenne Twister
    costs ~4 us whatever the seed; hashing the key to an int first saves nothing.)"""
    return random.Random(f"{seed}|{stage}|{split}|{i}|{attempt}")


def draft_row(
    suite: Suite,
    cfg: GenConfig,
    scfg: StageConfig,
    stage: int,
    split: str,
    i: int,
    attempt: int,
    lo: dt.date,
    span: int,
) -> Draft:
    """One attempt at row `i` (unverified): "today" is `lo` plus up to `span` days.
    Raises `Skip` when this attempt cannot be built."""
    rng = row_rng(cfg.seed, stage, split, i, attempt)
    if cfg.group > 1:  # what the group shares comes from the group's RNG, on every attempt
        g = cfg.group
        shared = random.Random(f"{cfg.seed}|{stage}|{split}|group {i // g}")
        lang = cfg.langs[(i // g) % len(cfg.langs)]
    else:
        shared = rng
        lang = cfg.langs[i % len(cfg.langs)] if attempt == 0 else rng.choice(cfg.langs)
    today = lo + dt.timedelta(days=shared.randint(0, span))
    names = plan_for(suite).names
    if not cfg.show_all:
        order: tuple[str, ...] = ()
    else:
        order = names if cfg.suite_order else tuple(shared.sample(names, len(names)))
    ctx = Context(lang, split == "test", today, rng, scfg.noise, order, cfg.entity_swap)
    return build(
        suite,
        stage,
        pick_suite_kind(suite, stage, rng, scfg.two_call, scfg.no_tool_share, scfg.multi_share),
        ctx,
        scfg,
    )


def _one_row(
    suite: Suite,
    cfg: GenConfig,
    scfg: StageConfig,
    stage: int,
    split: str,
    i: int,
    lo: dt.date,
    hi: dt.date,
    result: GenResult,
) -> Example | None:
    for attempt in range(cfg.max_attempts):
        try:
            draft = draft_row(suite, cfg, scfg, stage, split, i, attempt, lo, (hi - lo).days)
        except Skip as skip:
            result.rejections[skip.reason] += 1
            continue
        reason = verify(suite, draft)
        if reason is not None:
            result.rejections[reason] += 1
            continue
        _record(result, split, draft)
        return to_example(suite, draft, split, f"{suite.name}-s{stage}-{split}-{i:06d}")
    result.rejections["gave_up"] += 1
    return None


def _record(result: GenResult, split: str, draft: Draft) -> None:
    result.templates.setdefault(split, set()).update(u.template for u in draft.utterances)
    result.entities.setdefault(split, set()).update(
        e for u in draft.utterances for e in u.draw.entities
    )


def to_example(suite: Suite, draft: Draft, split: str, row_id: str) -> Example:
    augs = list(
        dict.fromkeys(
            draft.augmentations + [a for u in draft.utterances for a in u.draw.augmentations]
        )
    )
    meta = {
        "id": row_id,
        "suite": suite.name,
        "stage": draft.stage,
        "split": split,
        "lang": draft.lang,
        "kind": draft.kind,
        "tools": [u.tool for u in draft.utterances],
        "templates": [u.template_id for u in draft.utterances],
        "values": [u.draw.args for u in draft.utterances],
        "augmentations": augs,
        "today": draft.today.isoformat(),
        "prompt_len": draft.prompt_len,
        "expected": draft.expected.to_json(),
    }
    specs = plan_for(suite).specs
    tools: tuple[ToolSpec, ...] = tuple([specs[n] for n in draft.shown])
    return Example(tuple(draft.messages), tools, meta)


def _date_range(suite: Suite) -> tuple[dt.date, dt.date]:
    dates = suite.config.get("dates") or ["2026-01-01", "2026-12-31"]
    return dt.date.fromisoformat(str(dates[0])), dt.date.fromisoformat(str(dates[1]))
