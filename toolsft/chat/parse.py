"""Parse model output into tool calls. Total: any input is a result, garbage one with errors.

Used by training's template/parser parity check, by every eval engine (`strip_stop`) and by the
scorer, so a call that trains is exactly a call that scores, and the scorer reads a reply
exactly as the parser does: both walk the blocks of one `scan`.

Model output is treated as hostile. The scan is one left-to-right pass (linear time on any
input). Inside a `<tool_call>` block it follows JSON strings, so an end-of-turn token or a
`</tool_call>` written inside a string value is text, not structure. A call's JSON must be
I-JSON (RFC 7493), what a real API accepts: no duplicate keys, no lone surrogates, numbers
that fit a double, no NaN/Infinity; nesting is bounded so later recursive code never overflows
the stack. Lone surrogates in the raw text read as U+FFFD, as a UTF-8 decoder would read
invalid bytes, so the text stored with a result (`toolsft.eval.scoring.json_safe`) parses the same.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from toolsft.types import ToolCall

OPEN, CLOSE = "<tool_call>", "</tool_call>"
END_TOKENS = ("<|im_end|>", "<|endoftext|>", "</s>")
"""Markers that end an assistant turn wherever they stand outside a JSON string."""
MAX_BLOCKS = 64
"""Blocks read per reply; a reply with more gets one error for the rest (bounded records)."""
MAX_DEPTH = 64
"""Deepest JSON nesting a call may have (tool arguments need a handful of levels)."""
MAX_REASON = 300
"""Longest error string kept with a result: a 50 kB tool name must not make a 50 kB reason."""

_MAX_INT = int(sys.float_info.max)
_MAX_DIGITS = len(str(_MAX_INT))
_SURROGATE = re.compile("[\ud800-\udfff]")
_STRING = r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)'
"""A JSON string, escapes skipped, or an unterminated one up to the end of the text. It
matches at its first try wherever it starts, so scanning never backtracks."""


@dataclass(frozen=True)
class Block:
    """One `<tool_call>` block: the call it holds, or None, and why it failed (None: it did not)."""

    call: ToolCall | None
    error: str | None = None


@dataclass(frozen=True)
class Parsed:
    """What an assistant turn said: text content, calls, and why anything failed to parse."""

    content: str
    calls: tuple[ToolCall, ...]
    errors: tuple[str, ...] = ()
    blocks: tuple[Block, ...] = ()
    """Every block in order; `calls` are their calls, `errors` their errors (`call i: ...`)."""

    @property
    def ok(self) -> bool:
        return not self.errors


@dataclass(frozen=True)
class Span:
    """Where a block's body lies in the reply, and whether `</tool_call>` closed it."""

    start: int
    end: int
    closed: bool


def parse_assistant(text: Any) -> Parsed:
    """Split an assistant turn into free text and `<tool_call>` blocks. Never raises."""
    if not isinstance(text, str):
        return Parsed("", (), (f"output is not text: {type(text).__name__}",))
    text = replace_surrogates(text)
    spans, end = scan(text)
    if not spans:
        return Parsed(text[:end].strip(), (), ())
    content = text[: spans[0].start - len(OPEN)].strip()
    blocks = [_parse_block(text[s.start : s.end], s.closed) for s in spans[:MAX_BLOCKS]]
    if len(spans) > MAX_BLOCKS:
        blocks.append(Block(None, f"{len(spans) - MAX_BLOCKS} more blocks not read"))
    calls = tuple(b.call for b in blocks if b.call is not None)
    errors = tuple(f"call {i}: {b.error}" for i, b in enumerate(blocks) if b.error)
    return Parsed(content, calls, errors, tuple(blocks))


def cut_turn(text: str, ends: Sequence[str] = END_TOKENS) -> str:
    """The text up to the first end token outside a JSON string of a `<tool_call>` block."""
    return text[: scan(text, tuple(ends))[1]]


def scan(text: str, ends: tuple[str, ...] = END_TOKENS) -> tuple[list[Span], int]:
    """The bodies of the `<tool_call>` blocks and where the turn ends, in one linear pass.

    A block ends at `</tool_call>` (closed), or unclosed at the next `<tool_call>`, at an end
    token or at the end of the text; inside a block, JSON strings are skipped whole.
    """
    outside, inside = _patterns(ends)
    spans: list[Span] = []
    pos = 0
    while (m := outside.search(text, pos)) is not None:
        if m.group() != OPEN:
            return spans, m.start()
        span, pos, turn_over = _block(text, m.end(), inside)
        spans.append(span)
        if turn_over:
            return spans, pos
    return spans, len(text)


def _block(text: str, start: int, inside: re.Pattern[str]) -> tuple[Span, int, bool]:
    """The block opened at `start`: its span, where scanning goes on, whether the turn ended."""
    pos = start
    while (m := inside.search(text, pos)) is not None:
        if text[m.start()] == '"':  # a whole JSON string, markers inside it included
            pos = m.end()
            continue
        if m.group() == CLOSE:
            return Span(start, m.start(), True), m.end(), False
        # Unclosed: a new `<tool_call>` starts the next block, an end token ends the turn.
        return Span(start, m.start(), False), m.start(), m.group() != OPEN
    return Span(start, len(text), False), len(text), True


@lru_cache(maxsize=8)
def _patterns(ends: tuple[str, ...]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    outside = re.compile("|".join(re.escape(t) for t in (OPEN, *ends)))
    inside = re.compile("|".join([_STRING, *(re.escape(t) for t in (OPEN, CLOSE, *ends))]), re.S)
    return outside, inside


def _parse_block(body: str, closed: bool) -> Block:
    call, err = _parse_call_body(body)
    errs = ([] if closed else [f"missing {CLOSE}"]) + ([err] if err else [])
    return Block(call, clip("; ".join(errs)) if errs else None)


def _parse_call_body(body: str) -> tuple[ToolCall | None, str | None]:
    obj, err = loads_strict(_unfence(body))
    if err:
        return None, err
    if not isinstance(obj, dict):
        return None, f"call is a JSON {_json_type(obj)}, not an object"
    name = obj.get("name")
    if not isinstance(name, str) or not name:
        return None, "missing or non-string 'name'"
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args, err = loads_strict(args) if args.strip() else ({}, None)
        if err:
            return None, f"'arguments' is a string that is not JSON: {err}"
    if not isinstance(args, dict):
        return None, f"'arguments' is a JSON {_json_type(args)}, not an object"
    return ToolCall(name, args), None


def _unfence(body: str) -> str:
    """The body without a Markdown code fence around it (```json ... ```)."""
    body = body.strip()
    if body.startswith("```"):
        body = body[3:]
        body = body[4:] if body.startswith("json") else body
        body = body.lstrip()
    if body.endswith("```"):
        body = body[:-3].rstrip()
    return body


class _Rejected(ValueError):
    """Valid JSON syntax that is not I-JSON (or nests too deeply)."""


def loads_strict(text: str) -> tuple[Any, str | None]:
    """Decode I-JSON (see module doc): the value and None, or None and why not. Never raises."""
    try:
        obj = json.loads(
            text,
            parse_constant=_constant,
            parse_float=_float,
            parse_int=_int,
            object_pairs_hook=_object,
        )
    except json.JSONDecodeError as exc:
        return None, f"invalid JSON ({exc.msg}: char {exc.pos})"
    except _Rejected as exc:
        return None, f"invalid JSON ({exc})"
    except RecursionError:
        return None, f"invalid JSON (nested deeper than {MAX_DEPTH} levels)"
    except ValueError as exc:  # a number literal Python itself refuses to convert
        return None, clip(f"invalid JSON ({exc})")
    err = _check_tree(obj)
    return (None, err) if err else (obj, None)


def _constant(name: str) -> Any:
    raise _Rejected(f"{name} is not a JSON number")


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Rejected(f"number out of range: {clip(text, 40)}")
    return value


def _int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_DIGITS or abs(value := int(text)) > _MAX_INT:
        raise _Rejected(f"number out of range: {clip(text, 40)}")
    return value


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _Rejected(f"duplicate key {clip(key, 40)!r}")
            seen.add(key)
    return obj


def _check_tree(obj: Any) -> str | None:
    """Why a decoded value is not acceptable (nesting, lone surrogates), iteratively."""
    stack = [(obj, 0)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"invalid JSON (nested deeper than {MAX_DEPTH} levels)"
        if isinstance(value, dict):
            stack += [(k, depth) for k in value]
            stack += [(v, depth + 1) for v in value.values()]
        elif isinstance(value, list):
            stack += [(v, depth + 1) for v in value]
        elif isinstance(value, str) and (m := _SURROGATE.search(value)):
            return f"invalid JSON (lone surrogate \\u{ord(m.group()):04x} in a string)"
    return None


def _json_type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number"}
    return "null" if value is None else names.get(type(value), "number")


def replace_surrogates(text: str) -> str:
    """`text` with every lone surrogate (invalid Unicode) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def clip(text: str, limit: int = MAX_REASON) -> str:
    """`text` cut to `limit` characters (with an ellipsis), for messages stored with a row."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
