"""Byte-identical, faster JSON for the generator's hot path, and rows with tools encoded once.

`json.dumps(obj, ensure_ascii=False, ...)` builds a new encoder on every call, which is half
of its cost on the small objects a row is made of. These encoders are built once; each is
checked against `json.dumps` at import and falls back to it if this Python's C encoder
differs, so the bytes never change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from toolsft.types import Example, ToolSpec

_PROBE = {"b": [1, 2.5, None, True], "a": {"ü": 'x\n"y'}, "c": -0.0}


def _encoder(sort_keys: bool) -> Callable[[Any], str]:
    slow = json.JSONEncoder(ensure_ascii=False, sort_keys=sort_keys)
    try:
        from json.encoder import c_make_encoder, encode_basestring

        enc = c_make_encoder(
            None, slow.default, encode_basestring, None, ": ", ", ", sort_keys, False, True
        )

        def fast(obj: Any) -> str:
            return "".join(enc(obj, 0))

        if fast(_PROBE) == json.dumps(_PROBE, ensure_ascii=False, sort_keys=sort_keys):
            return fast
    except (ImportError, TypeError):  # pragma: no cover - another Python's C encoder
        pass
    return slow.encode  # pragma: no cover


dumps: Callable[[Any], str] = _encoder(sort_keys=False)
"""`toolsft.types.dumps`, the row format's JSON (compact, unicode, insertion order)."""
canonical: Callable[[Any], str] = _encoder(sort_keys=True)
"""`json.dumps(obj, sort_keys=True, ensure_ascii=False)`: the executor's canonical call form."""

_TOOL_JSON: dict[int, tuple[ToolSpec, str]] = {}


def tool_json(tool: ToolSpec) -> str:
    """`dumps(tool.to_openai())`, encoded once per tool: a stage-1 row shows every tool, and
    re-encoding their schemas was the largest single cost of writing a row."""
    hit = _TOOL_JSON.get(id(tool))
    if hit is None or hit[0] is not tool:
        if len(_TOOL_JSON) > 4096:
            _TOOL_JSON.clear()
        hit = _TOOL_JSON[id(tool)] = (tool, dumps(tool.to_openai()))
    return hit[1]


def row_of(ex: Example) -> dict[str, Any]:
    """`ex.to_row()`, byte for byte, with each tool's JSON reused (a list of encoded items
    joined by ", " is exactly how `dumps` encodes the list)."""
    return {
        "messages": [dict(m) for m in ex.messages],
        "tools": "[" + ", ".join([tool_json(t) for t in ex.tools]) + "]",
        "meta": dumps(dict(ex.meta)),
    }
