"""What `train` refuses to learn from: rows whose labels do not validate against the suite.

A label is an assistant turn. It must render and parse back exactly (what trains is what
scores), its calls must validate against the tools the row shows, and with the suite's tools
recorded in the dataset's manifest, the tools shown must be the suite's own.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_assistant
from toolsft.io import DataError
from toolsft.schema.validate import call_errors
from toolsft.types import ToolCall, ToolSpec


def suite_tools(manifest: Mapping[str, Any], file: Path) -> dict[str, Any] | None:
    """name -> parameters of the suite's tools that `gen` recorded (None: not recorded)."""
    tools = manifest.get("suite_tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise DataError("must be a list of tools", file=file, where="$.suite_tools", value=tools)
    out: dict[str, Any] = {}
    for i, tool in enumerate(tools):
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else None
        if not isinstance(fn, Mapping) or not isinstance(fn.get("name"), str):
            raise DataError(
                "not an OpenAI tool", file=file, where=f"$.suite_tools[{i}]", value=tool
            )
        out[fn["name"]] = fn.get("parameters", {})
    return out


def check_labels(
    source: str,
    messages: Sequence[Mapping[str, Any]],
    tools: Sequence[Any],
    suite: Mapping[str, Any] | None,
) -> None:
    """Refuse a row whose labels (assistant turns) would teach something wrong: a call that does
    not validate against the tools the row shows, a shown tool that is not the suite's (with
    `suite`, name -> parameters), or a turn that does not render and parse back unchanged.
    `source` is the row's `<file>:<line>`; messages are cleaned (`toolsft.train.data`)."""
    shown = _shown_tools(source, tools, suite)
    for i, msg in enumerate(messages):
        if msg["role"] != "assistant":
            continue
        field = f"{source}: messages[{i}]"
        content = msg["content"]
        if not isinstance(content, str):
            raise DataError(f"{field}.content: not a string", value=content)
        calls = [
            ToolCall(c["function"]["name"], c["function"]["arguments"])
            for c in msg.get("tool_calls", [])
        ]
        for j, call in enumerate(calls):
            errors = call_errors(shown, call)
            if errors:
                raise DataError(f"{field}.tool_calls[{j}]: {errors[0]:.200}", value=call.as_dict())
        parsed = parse_assistant(render_assistant(content, calls))
        if parsed.errors or list(parsed.calls) != calls or parsed.content != content.strip():
            why = parsed.errors[0] if parsed.errors else "it reads back differently"
            raise DataError(
                f"{field}: the label does not parse back as written: {why:.120}", value=content
            )


def _shown_tools(
    source: str, tools: Sequence[Any], suite: Mapping[str, Any] | None
) -> dict[str, ToolSpec]:
    """The row's tools by name; with `suite` (name -> parameters), each must be the suite's."""
    shown: dict[str, ToolSpec] = {}
    for i, tool in enumerate(tools):
        fn = tool.get("function", tool) if isinstance(tool, Mapping) else None
        name = fn.get("name") if isinstance(fn, Mapping) else None
        params = fn.get("parameters", {}) if isinstance(fn, Mapping) else None
        if not isinstance(name, str) or not isinstance(params, Mapping):
            raise DataError(
                f"{source}: tools[{i}]: not an OpenAI tool with a name and parameters",
                value=tool,
            )
        if suite is not None and suite.get(name) != params:
            what = "not a tool of the suite" if name not in suite else "differs from the suite's"
            raise DataError(f"{source}: tools[{i}]: {what}", value=name)
        shown[name] = ToolSpec(name, "", params)
    return shown
