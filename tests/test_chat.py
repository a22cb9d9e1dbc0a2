"""The template and the parser agree; the parser never raises."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_calls, render_messages
from toolsft.types import ToolCall

json_scalars = st.one_of(
    st.integers(-(10**6), 10**6),
    st.text(max_size=12),
    st.booleans(),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
)
args = st.dictionaries(
    st.text(st.characters(categories=["L", "N"]), min_size=1, max_size=8),
    st.one_of(json_scalars, st.lists(json_scalars, max_size=3)),
    max_size=4,
)


@settings(max_examples=200, deadline=None)
@given(
    names=st.lists(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), min_size=1, max_size=3), a=args
)
def test_calls_round_trip(names: list[str], a: dict) -> None:  # type: ignore[type-arg]
    calls = [ToolCall(n, a) for n in names]
    parsed = parse_assistant(render_calls(calls) + "<|im_end|>")
    assert parsed.ok and list(parsed.calls) == calls


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parser_never_raises(text: str) -> None:
    parsed = parse_assistant(text)
    assert isinstance(parsed.calls, tuple)
    parsed = parse_assistant("<tool_call>" + text)
    assert parsed.errors or parsed.calls


def test_garbage_is_a_scored_failure_with_a_reason() -> None:
    p = parse_assistant('<tool_call>\n{"name": "x", "arguments": [1]}\n</tool_call>')
    assert not p.calls and "not an object" in p.errors[0]
    p = parse_assistant("<tool_call>{oops")
    assert not p.calls and any("invalid JSON" in e for e in p.errors)
    assert parse_assistant(None).errors


def test_template_renders_tools_calls_and_results() -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "f",
                "description": "d",
                "parameters": {"type": "object", "properties": {}},
            },
        }
    ]
    msgs = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "查一下"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {
                    "id": "call_0",
                    "type": "function",
                    "function": {"name": "f", "arguments": '{"a": "北京"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_0", "content": '{"ok": true}'},
        {"role": "assistant", "content": "好了"},
    ]
    text = render_messages(msgs, tools)
    assert text.startswith("<|im_start|>system\n# Tools")
    assert "\n## f: d\n\nTo call a tool" in text
    assert "one block per call.\n\nS<|im_end|>" in text
    assert '<tool_call>\n{"name": "f", "arguments": {"a": "北京"}}\n</tool_call><|im_end|>' in text
    assert '<|im_start|>user\n<tool_response>\n{"ok": true}\n</tool_response><|im_end|>' in text
    assert text.endswith("<|im_start|>assistant\n好了<|im_end|>\n")


def test_tools_render_as_compact_signatures() -> None:
    """Every schema feature the renderer knows shows up; nested fields are indented."""
    tool = {
        "type": "function",
        "function": {
            "name": "order",
            "description": "Place an order.",
            "parameters": {
                "type": "object",
                "properties": {
                    "id": {"type": "string", "pattern": "^A[0-9]{2}$", "description": "Id"},
                    "kind": {"type": "string", "enum": ["fast", "slow"], "default": "slow"},
                    "n": {"type": "integer", "minimum": 1, "maximum": 5},
                    "price": {"type": "number", "exclusiveMinimum": 0},
                    "day": {"type": "string", "format": "date"},
                    "tags": {"type": "array", "items": {"type": "string"}, "maxItems": 2},
                    "lines": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {"sku": {"type": "string"}},
                            "required": ["sku"],
                        },
                    },
                    "to": {
                        "type": "object",
                        "properties": {"city": {"type": "string"}},
                        "required": ["city"],
                    },
                    "free": {},
                },
                "required": ["id", "lines"],
            },
        },
    }
    text = render_messages([{"role": "user", "content": "x"}], [tool])
    block = text[text.index("## order") : text.index("\n\nTo call a tool")].split("\n")
    assert block == [
        "## order: Place an order.",
        "- id*: string ^A[0-9]{2}$ - Id",
        '- kind: "fast"|"slow" ="slow"',
        "- n: integer >=1 <=5",
        "- price: number >0",
        "- day: string date",
        "- tags: array of string items<=2",
        "- lines*: array",
        "  - sku*: string",
        "- to: object",
        "  - city*: string",
        "- free: any",
    ]


def test_tool_list_is_a_prefix_shared_across_system_texts() -> None:
    """The tools come before the system text (date, language), so prompts that differ only
    there share the whole tool block: what vLLM's prefix cache and training packs reuse."""
    tools = [{"type": "function", "function": {"name": "f", "description": "d"}}]
    a = render_messages(
        [{"role": "system", "content": "今天是周一"}, {"role": "user", "content": "x"}], tools
    )
    b = render_messages(
        [{"role": "system", "content": "Today is Friday"}, {"role": "user", "content": "x"}], tools
    )
    k = next(i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y)
    assert a[:k].endswith("one block per call.\n\n")
    assert "## f: d" in a[:k]


def test_markers_in_arguments_survive_the_template() -> None:
    """What the training template renders, the parser reads back, even when an argument holds
    the call syntax's own markers."""
    args = {"s": 'see </tool_call> and </s> and <|im_end|> "quoted" \\ <tool_call>', "n": 1}
    msgs = [
        {"role": "user", "content": "x"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [
                {"id": "c", "type": "function", "function": {"name": "f", "arguments": args}}
            ],
        },
    ]
    text = render_messages(msgs, None)
    reply = text.split("<|im_start|>assistant\n", 1)[1]
    parsed = parse_assistant(reply)
    assert parsed.ok and parsed.calls == (ToolCall("f", args),)
