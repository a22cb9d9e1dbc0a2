"""A fixed, stratified episode set: the same episodes for every point of a learning curve.

A rate on 36-60 episodes moves +-15 points between identical runs, so a curve is scored on
one set of at least `total` episodes with at least `per_kind` of every kind (select, fill,
no tool, result, parallel, ...), picked once with a seeded rng and written down by id.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass

from toolsft.errors import ToolsftError
from toolsft.types import Example


@dataclass(frozen=True)
class EpisodeSet:
    ids: tuple[str, ...]
    """Row ids (`stage<N>:<id>`), in the order they were read."""
    by_kind: dict[str, int]
    """Episodes per kind in the set."""
    short_kinds: tuple[str, ...]
    """Kinds with fewer rows in the split than `per_kind` (all of them are in the set)."""


def row_key(example: Example) -> str:
    """An id unique across stages: row ids repeat between stage files."""
    return f"stage{example.meta.get('stage', '?')}:{example.meta.get('id', '?')}"


def kind_of(example: Example) -> str:
    return str(example.meta.get("kind", "?"))


def stratified(
    examples: Sequence[Example], total: int, per_kind: int, rng: random.Random
) -> EpisodeSet:
    """At least `per_kind` of each kind (all of a kind that has fewer), then the rest of
    `total` drawn from the remaining rows in proportion to the split, without replacement."""
    if total <= 0 or per_kind < 0:
        raise ToolsftError("episodes must be > 0 and per-kind >= 0", value=(total, per_kind))
    if not examples:
        raise ToolsftError("no rows to pick episodes from")
    by_kind: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        by_kind.setdefault(kind_of(ex), []).append(i)
    picked: set[int] = set()
    short = []
    for kind in sorted(by_kind):
        idx = by_kind[kind]
        if len(idx) <= per_kind:
            short.append(kind)
            picked.update(idx)
        else:
            picked.update(rng.sample(idx, per_kind))
    rest = [i for i in range(len(examples)) if i not in picked]
    need = max(0, total - len(picked))
    picked.update(rng.sample(rest, min(need, len(rest))))
    order = sorted(picked)
    counts: dict[str, int] = {}
    for i in order:
        counts[kind_of(examples[i])] = counts.get(kind_of(examples[i]), 0) + 1
    return EpisodeSet(tuple(row_key(examples[i]) for i in order), counts, tuple(short))


def select(examples: Sequence[Example], ids: Sequence[str]) -> list[Example]:
    """The rows of `ids`, in data order; every id must be found."""
    wanted = set(ids)
    out = [ex for ex in examples if row_key(ex) in wanted]
    found = {row_key(ex) for ex in out}
    missing = [i for i in ids if i not in found]
    if missing:
        raise ToolsftError(
            f"{len(missing)} episode id(s) of the set are not in the data "
            "(was it regenerated with another seed?)",
            value=missing[0],
        )
    return out
