"""Constrained decoding specs: every `<tool_call>` must be a valid call of a shown tool.

Pure (no vLLM import): builds an xgrammar structural tag that leaves free text free and, once
the model writes the `<tool_call>` trigger, forces the exact text the chat template renders
(`<tool_call>\\n{"name": "<tool>", "arguments": <JSON matching the tool's schema>}\\n</tool_call>`).
A no-call reply therefore stays possible (irrelevance, clarifying questions), and the forced
prefix matches training so constraining never pushes the model off its own distribution.

Whitespace is bounded inside the JSON (`max_whitespace_cnt`): the template writes `", "` and
`": "`, and an unbounded whitespace rule lets weak models loop on newlines until max_tokens.
For the same reason a free-text string (no enum, pattern, format, const or maxLength) is capped
at `MAX_FREE_STRING` characters: a weak model can otherwise repeat itself inside a string until
max_tokens cuts the call (seen in the CPU demo: 1 of 90 constrained calls). The cap is in
characters, and a rare CJK character costs up to 3 byte-level tokens: at 80 characters a
looping Chinese product name still ran past the default 192 tokens, so the cap is 48 (at most
~144 tokens). The longest free-text value in the shipped suites is 38 characters; a schema that
needs longer strings sets its own `maxLength`, which is kept.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from typing import Any

TRIGGER = "<tool_call>"
CALL_BEGIN = '<tool_call>\n{{"name": "{name}", "arguments": '
CALL_END = "}\n</tool_call>"
MAX_WHITESPACE = 1
MAX_FREE_STRING = 48
STRING_BOUNDS = ("enum", "const", "pattern", "format", "maxLength")


def closed_schema(schema: Mapping[str, Any]) -> dict[str, Any]:
    """A copy with `additionalProperties: false` on every object that does not set it, and
    free-text strings capped at `MAX_FREE_STRING` characters.

    BFCL-style scoring rejects parameters a tool does not declare, so the grammar must too.
    """
    out = copy.deepcopy(dict(schema))
    _close(out)
    return out


def _close(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        if node.get("type") == "string" and not any(k in node for k in STRING_BOUNDS):
            node["maxLength"] = MAX_FREE_STRING
        for value in node.values():
            _close(value)
    elif isinstance(node, list):
        for value in node:
            _close(value)


def tool_functions(tools: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The `function` objects of OpenAI tools (bare function objects pass through)."""
    return [t.get("function", t) for t in tools]


def structural_tag(
    tools: Sequence[Mapping[str, Any]], require_call: bool = False
) -> dict[str, Any]:
    """The xgrammar structural tag (vLLM `StructuredOutputsParams.structural_tag`) for `tools`.

    `require_call` (OpenAI's `tool_choice="required"`) makes the reply start with a call.
    """
    tags = [
        {
            "type": "tag",
            "begin": CALL_BEGIN.format(name=fn["name"]),
            "content": {
                "type": "json_schema",
                "json_schema": closed_schema(fn.get("parameters") or {"type": "object"}),
                "max_whitespace_cnt": MAX_WHITESPACE,
            },
            "end": CALL_END,
        }
        for fn in tool_functions(tools)
    ]
    return {
        "type": "structural_tag",
        "format": {
            "type": "triggered_tags",
            "triggers": [TRIGGER],
            "tags": tags,
            "at_least_one": require_call,
        },
    }


def structural_tag_json(tools: Sequence[Mapping[str, Any]], require_call: bool = False) -> str:
    """The structural tag as the JSON string vLLM and xgrammar accept (stable key order)."""
    return json.dumps(structural_tag(tools, require_call), ensure_ascii=False)
