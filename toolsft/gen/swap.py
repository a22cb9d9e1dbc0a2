"""Entity swap: training rows say values that no pool lists, so the model learns to copy.

A suite's pools hold a dozen or so cities, products or addresses. Trained on those alone, a
small model learns the list instead of copying the request, and on held-out values writes a
pool value in their place (docs/experiments.md has the cases). So a share of free-text pool
draws in `train`/`val` rows is replaced by a new value of the same shape: each CJK character
kept or swapped for another from the suite's own Chinese text, digits redrawn, each Latin word
kept or spliced from two words of the suite's English text. The test split never swaps, and
a swap never produces a held-out value, so test rows and their train/test overlap check are
exactly as before.

Only values that are said as they are sent (a city's name, not an enum with a spoken form) are
swapped: a pool entry with an explicit `value` maps words to a fixed value the model must learn.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from toolsft.schema.pools import entry_values

_CJK = re.compile(r"[\u4e00-\u9fff]")
_WORD = re.compile(r"[A-Za-z]{4,}")
_SLOT = re.compile(r"\{[^}]*\}")
_TOKEN = re.compile(r"[A-Za-z]+|[0-9]|[\u4e00-\u9fff]|.", re.S)
KEEP = 0.5
"""Chance that each character or word of the original value survives a swap."""


@dataclass(frozen=True)
class Vocab:
    """What swapped values are made of, and what they must never be."""

    cjk: tuple[str, ...]
    words: tuple[str, ...]
    forbidden: frozenset[str]
    """Held-out values (the test split's) and every pool's own values."""


def suite_vocab(pools: Mapping[str, Any], texts: Iterable[str]) -> Vocab:
    """The characters and words of the suite's training text (pool values and `texts`, e.g. the
    training templates), never of its held-out values."""
    seen = [str(v) for p in pools.values() for e in p.get("values", ()) for v in entry_values(e)]
    corpus = " ".join([*seen, *(_SLOT.sub(" ", t) for t in texts)])
    held = {
        str(v).lower()
        for p in pools.values()
        for e in p.get("holdout", ())
        for v in entry_values(e)
    }
    cjk = sorted(set(_CJK.findall(corpus)))
    words = sorted({w.lower() for w in _WORD.findall(corpus)})
    return Vocab(tuple(cjk), tuple(words), frozenset(held | {s.lower() for s in seen}))


def swap_value(value: str, rng: random.Random, vocab: Vocab, tries: int = 8) -> str | None:
    """A new value shaped like `value`, or None when no new one came up in `tries`."""
    for _ in range(tries):
        out = "".join(_swap_token(t, rng, vocab) for t in _TOKEN.findall(value))
        if out != value and out.strip() and out.lower() not in vocab.forbidden:
            return out
    return None


def _swap_token(tok: str, rng: random.Random, vocab: Vocab) -> str:
    if tok.isdigit():
        return str(rng.randrange(10))
    if _CJK.fullmatch(tok):
        return tok if rng.random() < KEEP or not vocab.cjk else rng.choice(vocab.cjk)
    if tok.isalpha() and len(tok) >= 3 and vocab.words and rng.random() >= KEEP:
        a, b = rng.choice(vocab.words), rng.choice(vocab.words)
        word = a[: rng.randint(2, max(2, len(a) - 1))] + b[rng.randint(1, len(b) - 2) :]
        return word.capitalize() if tok[0].isupper() else word
    return tok
