"""A tool-aware ChatML template (Hermes / Qwen2.5 style) with `{% generation %}` markers.

SmolLM2's own template ignores `tools`. This one puts the tools in the system turn inside
`<tools>`, renders calls as `<tool_call>{"name": ..., "arguments": ...}</tool_call>` and results
inside `<tool_response>`. The `{% generation %}` markers let TRL's `assistant_only_loss`
compute the loss mask (TRL #4879: without them the mask is silently all zeros).

Tests with `{% if message.tool_calls %}` (truthiness) rather than `is defined`, because Arrow
fills keys a message never had with nulls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from toolsft.types import ToolCall

TOOLS_PREAMBLE = (
    "# Tools\n\nYou may call one or more functions to assist with the user query.\n\n"
    "You are provided with function signatures within <tools></tools> XML tags:\n<tools>"
)
TOOLS_POSTAMBLE = (
    "\n</tools>\n\nFor each function call, return a json object with function name and "
    "arguments within <tool_call></tool_call> XML tags:\n<tool_call>\n"
    '{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
)
DEFAULT_SYSTEM = "You are a helpful assistant."

CHAT_TEMPLATE = (
    "{%- set default_system = '" + DEFAULT_SYSTEM + "' -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = default_system -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n' + " + json.dumps(TOOLS_PREAMBLE) + " -}}"
    "{%- for tool in tools -%}{{- '\\n' -}}{{- tool | tojson -}}{%- endfor -%}"
    "{{- " + json.dumps(TOOLS_POSTAMBLE) + " -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for message in loop_messages -%}"
    "{%- if message.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant\\n' -}}"
    "{%- generation -%}"
    "{%- if message.content -%}{{- message.content -}}{%- endif -%}"
    "{%- if message.tool_calls -%}"
    "{%- for tc in message.tool_calls -%}"
    "{%- set fn = tc.function if tc.function else tc -%}"
    "{%- if loop.first and message.content -%}{{- '\\n' -}}{%- endif -%}"
    "{%- if not loop.first -%}{{- '\\n' -}}{%- endif -%}"
    '{{- \'<tool_call>\\n{"name": "\' + fn.name + \'", "arguments": \' -}}'
    "{%- if fn.arguments is string -%}{{- fn.arguments -}}"
    "{%- else -%}{{- fn.arguments | tojson -}}{%- endif -%}"
    "{{- '}\\n</tool_call>' -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>' -}}"
    "{%- endgeneration -%}"
    "{{- '\\n' -}}"
    "{%- elif message.role == 'tool' -%}"
    "{%- if loop.first or loop_messages[loop.index0 - 1].role != 'tool' -%}"
    "{{- '<|im_start|>user' -}}"
    "{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + message.content + '\\n</tool_response>' -}}"
    "{%- if loop.last or loop_messages[loop.index0 + 1].role != 'tool' -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)


def render_call(call: ToolCall) -> str:
    """The exact text the template emits for one call (arguments in canonical JSON)."""
    from toolsft.types import dumps

    return f'<tool_call>\n{{"name": "{call.name}", "arguments": {dumps(dict(call.arguments))}}}\n</tool_call>'


def render_calls(calls: Iterable[ToolCall]) -> str:
    return "\n".join(render_call(c) for c in calls)


def render_assistant(content: str, calls: Iterable[ToolCall]) -> str:
    """The assistant turn body (without `<|im_start|>assistant\\n` and `<|im_end|>`)."""
    body = render_calls(calls)
    if content and body:
        return content + "\n" + body
    return content or body


def render_messages(
    messages: list[dict[str, Any]],
    tools: list[dict[str, Any]] | None,
    *,
    add_generation_prompt: bool = False,
) -> str:
    """Render with jinja2 directly (no tokenizer needed): used by tests and the replay engine."""
    import jinja2
    from jinja2.ext import Extension

    class _Generation(Extension):
        # HF registers `{% generation %}` itself; plain jinja2 needs a no-op version.
        tags = {"generation"}

        def parse(self, parser):  # type: ignore[no-untyped-def]
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body, lineno=lineno)

    env = jinja2.Environment(
        extensions=[_Generation, "jinja2.ext.loopcontrols"], trim_blocks=True, lstrip_blocks=True
    )
    env.filters["tojson"] = lambda x: json.dumps(x, ensure_ascii=False)
    return env.from_string(CHAT_TEMPLATE).render(
        messages=messages, tools=tools, add_generation_prompt=add_generation_prompt
    )
