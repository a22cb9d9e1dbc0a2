"""Per-token loss weights that single out the tokens where a tool-calling row is decided.

Most labelled tokens of a tool-calling row are boilerplate the model learns in a few dozen
steps: `<tool_call>`, the JSON keys and braces, end-of-turn. The tokens that decide an episode
are few: the first token of each assistant turn (call a tool or talk), the tool's name, every
argument value, the character after each value (`,` for another argument or `}` for none: an
optional argument left out is decided there) and the one after each `</tool_call>` (another
call, or the end of the turn). Under a plain loss they stay underfit while the boilerplate
around them is learnt (docs/experiments.md). `decision_weight` multiplies their loss; the sum
is still divided by the labelled tokens, so 1 is the plain SFT loss.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

# A JSON member's value after its key: a string, number, boolean or null. Keys, braces and
# containers stay at weight 1; the leaves inside nested objects and lists of objects match too.
_VALUE = re.compile(r'"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d[\d.eE+-]*|true|false|null)')
_CALL = re.compile(r"<tool_call>.*?</tool_call>", re.S)


def decision_spans(text: str) -> list[tuple[int, int]]:
    """Character spans that decide each `<tool_call>` block of `text`: every value with the
    character after it, and the character after the block."""
    spans = []
    for block in _CALL.finditer(text):
        for m in _VALUE.finditer(block.group(0)):
            a, b = m.span(1)
            spans.append((block.start() + a, block.start() + b + 1))
        if block.end() < len(text):
            spans.append((block.end(), block.end() + 1))
    return spans


def token_weights(
    offsets: Sequence[tuple[int, int]], text: str, mask: Sequence[int], weight: float
) -> list[float]:
    """One weight per token of `text` (`offsets`: each token's character span): `weight` on the
    labelled tokens that decide (a turn's first token, tool-call values), 1 on the other labelled
    tokens, 0 on the rest."""
    spans = decision_spans(text)
    out = plain_weights(mask)
    for i, (a, b) in enumerate(offsets):
        if not mask[i]:
            continue
        first = i == 0 or not mask[i - 1]
        if first or any(a < e and s < b for s, e in spans):
            out[i] = weight
    return out


def plain_weights(mask: Sequence[int]) -> list[float]:
    """The plain SFT loss as weights: 1 on labelled tokens, 0 elsewhere."""
    return [1.0 if m else 0.0 for m in mask]


def row_weights(
    tokenizer: Any, text: str, ids: Sequence[int], mask: Sequence[int], weight: float
) -> list[float] | None:
    """`token_weights` for a rendered row; None when `text` does not tokenize back to `ids`
    (a template that adds tokens text cannot show), so the caller keeps the plain loss."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    if list(enc["input_ids"]) != list(ids):
        return None
    return token_weights(enc["offset_mapping"], text, mask, weight)
