"""Pre-training checks that refuse the silent failures of tool SFT.

1. The assistant mask (TRL #4879): without `{% generation %}` markers the mask is all zeros and
   training "works" while learning nothing. We require, on real rows, that every row has masked
   tokens, that each assistant turn is one masked span that decodes to exactly that turn (so
   the tool-call tokens are covered), and that each span ends on the end-of-turn token (or the
   model never learns to stop).
2. Template/parser parity (LLaMA-Factory #6744): render gold rows with the training template,
   cut out each assistant turn the way inference sees it (prompt with generation prompt, then
   the continuation) and parse it with `toolsft.chat.parse.parse_assistant`, the parser every
   eval engine uses. The calls must round-trip exactly, and the prompt's tokens must be a prefix
   of the full row's tokens (what the model generates is what it was trained on).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from toolsft.chat.parse import parse_assistant
from toolsft.errors import ToolsftError
from toolsft.train.data import Row
from toolsft.train.tokenize import Encoded, mask_spans
from toolsft.types import ToolCall

logger = logging.getLogger(__name__)

SAMPLE = 32
"""Rows whose spans are decoded and parsed (every row's mask is checked for emptiness)."""


class CheckError(ToolsftError, RuntimeError):
    """A pre-training check failed; training would have been silently wrong."""


def check_masks(tokenizer: Any, enc: Encoded, what: str, sample: int = SAMPLE) -> None:
    """Abort unless the assistant mask is non-empty and covers calls and end-of-turn."""
    if not enc.rows:
        raise CheckError(f"{what}: no rows left to train on (all dropped or none given)")
    empty = [r.source for r, m in zip(enc.rows, enc.assistant_masks, strict=True) if not any(m)]
    if empty:
        raise CheckError(
            f"{what}: the assistant mask is empty for {len(empty)}/{len(enc.rows)} rows "
            f"(first: {empty[0]}). The chat template has no {{% generation %}} ... "
            "{% endgeneration %} markers around assistant turns, so the loss would be zero "
            "(TRL #4879). Use --chat-template toolsft, or add the markers to the template."
        )
    stop_ids = _stop_ids(tokenizer)
    for row, ids, mask in list(zip(enc.rows, enc.input_ids, enc.assistant_masks, strict=True))[
        :sample
    ]:
        _check_spans(tokenizer, row, ids, mask, stop_ids)


def _stop_ids(tokenizer: Any) -> set[int]:
    ids = set(tokenizer.get_added_vocab().values())
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _check_spans(
    tokenizer: Any, row: Row, ids: list[int], mask: list[int], stop_ids: set[int]
) -> None:
    turns = [m for m in row.messages if m["role"] == "assistant"]
    spans = mask_spans(mask)
    if len(spans) != len(turns):
        raise CheckError(
            f"{row.source}: {len(turns)} assistant turns but {len(spans)} masked spans; the "
            "template's {% generation %} markers do not wrap each assistant turn exactly"
        )
    for turn, (a, b) in zip(turns, spans, strict=True):
        last = _last_non_space(tokenizer, ids[a:b])
        if last not in stop_ids:
            raise CheckError(
                f"{row.source}: the masked assistant span ends with {tokenizer.decode([last])!r}, "
                "not the end-of-turn token; the model would never learn to stop. Put the "
                "end-of-turn token inside {% generation %} ... {% endgeneration %}"
            )
        text = tokenizer.decode(ids[a:b])
        _require_round_trip(row, turn, text, "masked span")


def _last_non_space(tokenizer: Any, ids: list[int]) -> int:
    for tid in reversed(ids):
        if tokenizer.decode([tid]).strip():
            return tid
    return ids[-1]


def gold_calls(message: dict[str, Any]) -> tuple[ToolCall, ...]:
    return tuple(ToolCall.from_openai(c) for c in message.get("tool_calls") or [])


def _require_round_trip(row: Row, turn: dict[str, Any], text: str, what: str) -> None:
    parsed = parse_assistant(text)
    want = gold_calls(turn)
    got = parsed.calls
    same = len(got) == len(want) and all(
        g.name == w.name and dict(g.arguments) == dict(w.arguments)
        for g, w in zip(got, want, strict=True)
    )
    if parsed.errors or not same:
        raise CheckError(
            f"{row.source}: {what} does not parse back to the gold calls.\n"
            f"  text:   {text[:300]!r}\n  parsed: {[c.as_dict() for c in got]} {list(parsed.errors)}\n"
            f"  gold:   {[c.as_dict() for c in want]}\n"
            "The training template and toolsft.chat.parse disagree (LLaMA-Factory #6744)."
        )
    content = (turn.get("content") or "").strip()
    if content and parsed.content != content:
        raise CheckError(
            f"{row.source}: {what} content {parsed.content[:120]!r} != gold {content[:120]!r}"
        )


def check_parity(tokenizer: Any, rows: Sequence[Row], template: str, sample: int = SAMPLE) -> int:
    """Render each gold assistant turn as inference would, parse it, require exact calls.

    Returns the number of assistant turns checked. Rows with tool calls are checked first.
    """
    picked = sorted(rows, key=lambda r: not any(m.get("tool_calls") for m in r.messages))[:sample]
    checked = 0
    for row in picked:
        for i, msg in enumerate(row.messages):
            if msg["role"] == "assistant":
                _check_turn(tokenizer, row, i, template)
                checked += 1
    if checked and not any(m.get("tool_calls") for r in picked for m in r.messages):
        logger.warning("parity: no row with tool calls among %d rows checked", len(picked))
    return checked


def _check_turn(tokenizer: Any, row: Row, i: int, template: str) -> None:
    kw = {"tools": row.tools or None, "chat_template": template}
    prompt = tokenizer.apply_chat_template(
        row.messages[:i], add_generation_prompt=True, tokenize=False, **kw
    )
    full = tokenizer.apply_chat_template(row.messages[: i + 1], tokenize=False, **kw)
    if not full.startswith(prompt):
        raise CheckError(
            f"{row.source}: message {i}: the prompt rendered with add_generation_prompt is not "
            "a prefix of the rendered conversation, so inference sees a different text than "
            f"training.\n  prompt end: {prompt[-120:]!r}\n  full:       "
            f"{full[len(prompt) - 120 : len(prompt) + 40]!r}"
        )
    _require_round_trip(row, row.messages[i], full[len(prompt) :], f"message {i} as generated")
    p_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    f_ids = tokenizer(full, add_special_tokens=False)["input_ids"]
    if f_ids[: len(p_ids)] != p_ids:
        raise CheckError(
            f"{row.source}: message {i}: the prompt's tokens are not a prefix of the training "
            "row's tokens (a merge across the generation prompt boundary); the model would be "
            "trained on token sequences it never produces at inference"
        )
