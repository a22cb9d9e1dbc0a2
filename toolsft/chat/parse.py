"""Parse model output into tool calls. Never raises: garbage is a result with errors.

Used by training's template/parser parity check and by every eval engine, so a call that
trains is exactly a call that scores.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from toolsft.types import ToolCall

_OPEN, _CLOSE = "<tool_call>", "</tool_call>"
_END_TOKENS = ("<|im_end|>", "<|endoftext|>", "</s>")
_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$")


@dataclass(frozen=True)
class Parsed:
    """What an assistant turn said: text content, calls, and why anything failed to parse."""

    content: str
    calls: tuple[ToolCall, ...]
    errors: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors


def parse_assistant(text: Any) -> Parsed:
    """Split an assistant turn into free text and `<tool_call>` blocks."""
    if not isinstance(text, str):
        return Parsed("", (), (f"output is not text: {type(text).__name__}",))
    text = _cut_at_end_token(text)
    if _OPEN not in text:
        return Parsed(text.strip(), (), ())
    content = text.split(_OPEN, 1)[0].strip()
    calls: list[ToolCall] = []
    errors: list[str] = []
    for i, chunk in enumerate(text.split(_OPEN)[1:]):
        if _CLOSE in chunk:
            body = chunk.split(_CLOSE, 1)[0]
        else:
            body = chunk
            errors.append(f"call {i}: missing {_CLOSE}")
        call, err = _parse_call_body(body)
        if err:
            errors.append(f"call {i}: {err}")
        if call is not None:
            calls.append(call)
    return Parsed(content, tuple(calls), tuple(errors))


def _cut_at_end_token(text: str) -> str:
    """Cut at the first end-of-turn token that is not inside a `<tool_call>` block.

    An argument may legitimately contain "</s>" ("see </s> tag"); only a token outside every
    open call ends the turn.
    """
    start = 0
    while True:
        hits = [(i, tok) for tok in _END_TOKENS if (i := text.find(tok, start)) >= 0]
        if not hits:
            return text
        i, tok = min(hits)
        before = text[:i]
        if before.count(_OPEN) <= before.count(_CLOSE):
            return before
        start = i + len(tok)


def _parse_call_body(body: str) -> tuple[ToolCall | None, str | None]:
    body = body.strip()
    body = _FENCE.sub("", body)
    try:
        obj = json.loads(body)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        return None, f"invalid JSON ({exc.__class__.__name__}: {str(exc)[:80]})"
    if not isinstance(obj, dict):
        return None, f"call is a JSON {type(obj).__name__}, not an object"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "missing or non-string 'name'"
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except (json.JSONDecodeError, RecursionError, ValueError):
            return None, "'arguments' is a string that is not JSON"
    if not isinstance(args, dict):
        return None, f"'arguments' is a JSON {type(args).__name__}, not an object"
    return ToolCall(name, args), None
