"""A tool-aware ChatML template (Hermes / Qwen2.5 style) with `{% generation %}` markers.

SmolLM2's own template ignores `tools`. This one opens the system turn with the tools and puts
the system text (which carries the date and the language) after them, so every prompt that
shows the same tools in the same order shares the tool list token for token: vLLM's prefix
cache computes it once and shared-prefix training packs hold it once (on an AVX2-only CPU its
prefill had been most of an eval's time). Calls render as
`<tool_call>{"name": ..., "arguments": ...}</tool_call>`, results inside `<tool_response>`.
The `{% generation %}` markers let TRL's `assistant_only_loss` compute the loss mask (TRL
#4879: without them the mask is silently all zeros).

Tests with `{% if message.tool_calls %}` (truthiness) rather than `is defined`, because Arrow
fills keys a message never had with nulls.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from toolsft.types import ToolCall

TOOLS_PREAMBLE = "# Tools\nParameters marked * are required."
TOOLS_POSTAMBLE = (
    '\n\nTo call a tool, reply with <tool_call>\n{"name": <tool name>, "arguments": '
    "<JSON object>}\n</tool_call>, one block per call.\n\n"
)
DEFAULT_SYSTEM = "You are a helpful assistant."

# Tools are rendered as compact signatures, not schema JSON: a commerce tool costs ~40 tokens
# instead of ~150 (measured with SmolLM2's tokenizer), and the tool list is most of every prompt.
# Shown: type, enum, format, pattern, bounds, item counts, default, description and nested
# object fields; constrained decoding still enforces the whole schema. The macro recurses into
# object properties and array items. `s['items']` because `s.items` is the dict method.
_PARAM_MACRO = (
    "{%- macro tsft_param(name, s, req, pad) -%}"
    "{{- '\\n' + pad + '- ' + name + ('*' if req else '') + ': ' -}}"
    "{%- if s.enum is defined and s.enum -%}"
    "{{- s.enum | map('tojson') | join('|') -}}"
    "{%- elif s.type is defined and s.type -%}"
    "{{- s.type if s.type is string else s.type | join('|') -}}"
    "{%- else -%}{{- 'any' -}}{%- endif -%}"
    "{%- set it = s['items'] if s['items'] is defined and s['items'] is mapping else none -%}"
    "{%- if it is not none and it.properties is not defined -%}"
    "{{- ' of ' + (it.enum | map('tojson') | join('|') if it.enum is defined and it.enum "
    "else it.type | string if it.type is defined else 'any') -}}"
    "{%- endif -%}"
    "{%- if s.format is defined and s.format -%}{{- ' ' + s.format -}}{%- endif -%}"
    "{%- if s.pattern is defined and s.pattern -%}{{- ' ' + s.pattern -}}{%- endif -%}"
    "{%- for key, op in [('minimum', '>='), ('exclusiveMinimum', '>'), ('maximum', '<='), "
    "('exclusiveMaximum', '<'), ('minItems', 'items>='), ('maxItems', 'items<=')] -%}"
    "{%- if s[key] is defined and s[key] is not none -%}"
    "{{- ' ' + op + (s[key] | tojson) -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- if s.default is defined -%}{{- ' =' + (s.default | tojson) -}}{%- endif -%}"
    "{%- if s.description is defined and s.description -%}"
    "{{- ' - ' + s.description -}}{%- endif -%}"
    "{%- set obj = it if it is not none and it.properties is defined else s -%}"
    "{%- if obj.properties is defined and obj.properties -%}"
    "{%- set need = obj.required if obj.required is defined and obj.required else [] -%}"
    "{%- for k, v in obj.properties.items() -%}"
    "{{- tsft_param(k, v, k in need, pad + '  ') -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endmacro -%}"
)
_TOOL_BLOCK = (
    "{%- for tool in tools -%}"
    "{%- set fn = tool.function if tool.function is defined and tool.function else tool -%}"
    "{{- '\\n## ' + fn.name -}}"
    "{%- if fn.description is defined and fn.description -%}"
    "{{- ': ' + fn.description -}}{%- endif -%}"
    "{%- set p = fn.parameters if fn.parameters is defined and fn.parameters else {} -%}"
    "{%- set need = p.required if p.required is defined and p.required else [] -%}"
    "{%- if p.properties is defined and p.properties -%}"
    "{%- for k, v in p.properties.items() -%}{{- tsft_param(k, v, k in need, '') -}}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{%- endfor -%}"
)

CHAT_TEMPLATE = (
    _PARAM_MACRO + "{%- set default_system = '" + DEFAULT_SYSTEM + "' -%}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content -%}{%- set loop_messages = messages[1:] -%}"
    "{%- else -%}{%- set system = default_system -%}{%- set loop_messages = messages -%}"
    "{%- endif -%}"
    "{{- '<|im_start|>system\\n' -}}"
    "{%- if tools -%}"
    "{{- "
    + json.dumps(TOOLS_PREAMBLE)
    + " -}}"
    + _TOOL_BLOCK
    + "{{- "
    + json.dumps(TOOLS_POSTAMBLE)
    + " -}}"
    "{%- endif -%}"
    "{{- system + '<|im_end|>\\n' -}}"
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

        def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
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
