"""Augmentations from the seed recipe: noise (typos, pinyin aliases), paraphrase wrappers,
earlier small-talk turns. Entity swap is the sampler's job (every row draws fresh entities);
each augmentation applied is recorded in the row's meta."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from toolsft.gen.sample import Context
from toolsft.schema.suite import Suite

WRAPPERS = {
    "zh": (
        ("请问", ""),
        ("麻烦", ""),
        ("你好，", ""),
        ("", "，谢谢"),
        ("帮个忙，", ""),
        ("", "，多谢"),
        ("我想问一下，", ""),
    ),
    "en": (
        ("Hi, ", ""),
        ("Hello! ", ""),
        ("", " Thanks!"),
        ("", " Thank you."),
        ("Hey, ", ""),
        ("Quick question: ", ""),
        ("", " Cheers."),
    ),
}
_WORD = re.compile(r"\b[a-z]{5,}\b")


def maybe_typo(
    text: str, ctx: Context, p: float, augs: list[str], protect: Iterable[str] = ()
) -> str:
    """English: swap two letters inside one plain word; Chinese: drop the punctuation."""
    if ctx.rng.random() >= p:
        return text
    if ctx.lang == "zh":
        stripped = re.sub(r"[，。？！]", " ", text).strip()
        if stripped != text:
            augs.append("noise:punct")
        return re.sub(r"\s+", " ", stripped)
    guarded = " ".join(protect).lower()
    words = [m for m in _WORD.finditer(text) if m.group(0) not in guarded]
    if not words:
        return text
    m = ctx.rng.choice(words)
    w = m.group(0)
    i = ctx.rng.randint(1, len(w) - 3)
    typo = w[:i] + w[i + 1] + w[i] + w[i + 2 :]
    augs.append("noise:typo")
    return text[: m.start()] + typo + text[m.end() :]


def maybe_paraphrase(text: str, ctx: Context, p: float, augs: list[str]) -> str:
    if ctx.rng.random() >= p:
        return text
    pre, post = ctx.rng.choice(WRAPPERS[ctx.lang])
    if ctx.lang == "en" and pre:
        text = lower_first(text)
    if post:
        text = text.rstrip("。.?？!！，, ") + _end_mark(text, ctx.lang) + post.lstrip("，")
        if ctx.lang == "zh":
            text = text.replace("。，", "，")
    augs.append("paraphrase:wrap")
    return pre + text


def maybe_context(suite: Suite, ctx: Context, p: float, augs: list[str]) -> list[dict[str, Any]]:
    """Earlier small-talk turns before the request (multi-turn context)."""
    pairs = (suite.config.get("context") or {}).get(ctx.lang) or []
    if not pairs or ctx.rng.random() >= p:
        return []
    pair = ctx.rng.choice(pairs)
    augs.append("context:smalltalk")
    return [
        {"role": "user", "content": str(pair["user"])},
        {"role": "assistant", "content": str(pair["assistant"])},
    ]


def _end_mark(text: str, lang: str) -> str:
    """Keep a question a question when a closing phrase is appended."""
    stripped = text.rstrip()
    if lang == "en":
        return "?" if stripped.endswith("?") else "."
    return "？" if stripped.endswith(("?", "？")) else "，"


# Sentence openers that may be lowercased mid-sentence; names and "I" never are.
_OPENERS = frozenset(
    [
        "can",
        "could",
        "would",
        "will",
        "please",
        "what",
        "what's",
        "where",
        "where's",
        "when",
        "how",
        "how's",
        "is",
        "are",
        "do",
        "does",
        "did",
        "check",
        "find",
        "show",
        "tell",
        "book",
        "search",
        "get",
        "look",
        "give",
        "help",
        "cancel",
        "convert",
        "any",
        "any's",
        "my",
        "i'd-not",
        "the",
        "a",
        "an",
        "which",
        "who",
        "is",
        "there",
    ]
)


def lower_first(text: str) -> str:
    """Lowercase the first word when it is a common opener ("Where is..." -> "where is...")."""
    first = text.split(" ", 1)[0]
    if first.lower().rstrip(",?") in _OPENERS and first[:1].isupper():
        return text[0].lower() + text[1:]
    return text
