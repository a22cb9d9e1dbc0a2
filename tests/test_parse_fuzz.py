"""Fuzzing the parser and the scorer: garbage never raises, it scores as a failure with a reason."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_assistant
from toolsft.engines.base import Generation
from toolsft.eval.episodes import Episode, step
from toolsft.eval.scoring import block_validity, score_episode
from toolsft.schema.executor import Executor
from toolsft.schema.policy import Policy
from toolsft.types import Example, ToolCall, ToolSpec

PIECES = [
    "<tool_call>",
    "</tool_call>",
    "<|im_end|>",
    "{",
    "}",
    '"name"',
    '"arguments"',
    ":",
    ",",
    '"q"',
    "[",
    "]",
    "null",
    "1e999",
    "\n",
    "```json",
    "```",
    '"\\ud800"',
    " ",
    "x",
]
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)
TOOL = ToolSpec(
    "q", "", {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
)
EXAMPLE = Example(
    (
        {"role": "user", "content": "hi"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [ToolCall("q", {"a": 1}).to_openai("c")],
        },
    ),
    (TOOL,),
    {
        "id": "r",
        "stage": 1,
        "lang": "en",
        "kind": "select",
        "prompt_len": 1,
        "expected": {"calls": [{"name": "q", "arguments": {"a": 1}}], "facts": [], "answer": None},
    },
)


def _check(parsed: object) -> None:
    assert isinstance(parsed.content, str)
    for c in parsed.calls:
        assert isinstance(c, ToolCall) and isinstance(c.name, str) and isinstance(c.arguments, dict)
    assert all(isinstance(e, str) for e in parsed.errors)


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_any_text_parses_without_raising(text: str) -> None:
    _check(parse_assistant(text))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=4), max_size=30).map("".join))
def test_tool_call_shaped_garbage_parses_without_raising(text: str) -> None:
    _check(parse_assistant(text))
    assert all(v is None or isinstance(v, str) for v in block_validity(text, {"q": TOOL}))


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text())))
def test_non_text_is_an_error_not_a_crash(obj: object) -> None:
    parsed = parse_assistant(obj)
    assert parsed.errors and not parsed.calls


def _no_markers(s: str) -> bool:
    return not any(m in s for m in ("<tool_call>", "<|", "</s>"))


SAFE_JSON = JSON.filter(lambda v: _no_markers(json.dumps(v)))


@settings(max_examples=300, deadline=None)
@given(
    st.text(max_size=20).filter(_no_markers),
    st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
            st.dictionaries(st.text(max_size=5).filter(_no_markers), SAFE_JSON, max_size=3),
        ),
        max_size=3,
    ),
)
def test_rendered_calls_round_trip(content: str, calls: list) -> None:
    tcs = [ToolCall(n, a) for n, a in calls]
    parsed = parse_assistant(render_assistant(content, tcs))
    assert parsed.ok
    assert [(c.name, json.dumps(c.arguments)) for c in parsed.calls] == [
        (c.name, json.dumps(c.arguments)) for c in tcs
    ]
    if not tcs:
        assert parsed.content == content.strip()


def test_end_token_inside_a_string_argument() -> None:
    # Found by the round-trip fuzz: an end token inside an argument does not end the turn.
    text = render_assistant("", [ToolCall("q", {"note": "see </s> tag"})])
    parsed = parse_assistant(text + "<|im_end|>ignored")
    assert parsed.ok and parsed.calls[0].arguments == {"note": "see </s> tag"}
    assert parse_assistant("hello</s><tool_call>").calls == ()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(PIECES) | st.text(max_size=6), max_size=25).map("".join))
def test_scoring_any_reply_never_raises(text: str) -> None:
    ep = Episode(EXAMPLE, 0, EXAMPLE.prompt_messages(), max_turns=2)
    step(ep, Generation(text=text), Executor({"q": {"mock": {"ok": {"const": True}}}}))
    verdict = score_episode(ep, Policy())
    assert verdict.ok or verdict.reasons
    json.dumps(verdict.to_json())
