"""Rows with each tool's JSON encoded once: the generator's hot path when writing rows."""

from __future__ import annotations

from typing import Any

from toolsft.types import Example, ToolSpec, dumps

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
