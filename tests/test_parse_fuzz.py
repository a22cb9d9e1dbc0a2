"""Fuzzing the parser and the scorer (hypothesis), in two tiers.

Properties: nothing raises on any text; whatever is recorded writes as UTF-8 JSON; parser
and scorer agree block for block (and with every engine's `strip_stop`); a valid call
round-trips through the template; repeated input parses in linear time. The fast tier runs by
default (a few seconds); the slow tier runs each property on >= 10,000 examples.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolsft.chat.parse import Parsed, cut_turn, parse_assistant
from toolsft.chat.template import render_assistant, render_call
from toolsft.engines.base import Generation, strip_stop
from toolsft.eval.episodes import Episode, Turn
from toolsft.eval.scoring import block_validity, json_safe, score_episode
from toolsft.eval.validity import call_validity
from toolsft.schema.policy import Policy
from toolsft.types import Example, ToolCall, ToolSpec

FAST, SLOW = 200, 10_000
FAST_COMPOSITE = 120
"""Examples of the costlier generated structures in the fast tier (drawing dominates)."""
MARKERS = ("<tool_call>", "</tool_call>", "<|im_end|>", "<|endoftext|>", "</s>")
PIECES = [
    *MARKERS,
    "{",
    "}",
    "[",
    "]",
    '"name"',
    '"arguments"',
    '"parameters"',
    ": ",
    ", ",
    '"q"',
    '"a"',
    '"s"',
    "null",
    "true",
    "1",
    "-0.5",
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    "-Infinity",
    "9" * 309,
    "\n",
    " ",
    "```json",
    "```",
    '"\\ud800"',
    '"\\ud83d\\ude00"',
    "\\",
    '\\"',
    '"',
    "\ud800",
    "\udfff",
    "\x00",
    '"\\u0000"',
    "x",
    "北京",
]
# Any code point, lone surrogates included (hypothesis leaves them out by default).
CHARS = st.characters() | st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
ANY_TEXT = st.text(CHARS, max_size=60)
GARBAGE = st.lists(st.sampled_from(PIECES) | st.text(CHARS, max_size=4), max_size=40).map("".join)

TOOL = ToolSpec(
    "q",
    "",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "s": {"type": "string"}},
        "required": ["a"],
    },
)
SHOWN = {"q": TOOL}
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


def both_tiers(*strategies: Any, fast: int = FAST, slow: int = SLOW) -> Callable[..., Any]:
    """The property as two tests: `fast` examples by default, `slow` in the slow tier."""

    def wrap(prop: Callable[..., None]) -> tuple[Any, Any]:
        def tier(n: int) -> Any:
            return settings(
                max_examples=n,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )(given(*strategies)(prop))

        return tier(fast), pytest.mark.slow(tier(slow))

    return wrap


# --- hostile JSON wrapped in the call syntax ----------------------------------------------

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([10**308, -(10**309), 2**64])
    | st.floats()
    | st.text(CHARS, max_size=8)
    | st.sampled_from([f'"see {m} tag"' for m in MARKERS]).map(json.loads)
)
HOSTILE_JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(CHARS, max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


def _encode(value: Any, ascii_only: bool) -> str:
    """JSON text as a careless model writes it: NaN, Infinity, lone surrogates and all."""
    return json.dumps(value, ensure_ascii=ascii_only)


@st.composite
def wrapped_calls(draw: st.DrawFn) -> str:
    ascii_only = draw(st.booleans())
    name = draw(st.sampled_from(["q", "x", ""]) | HOSTILE_JSON)
    args = draw(HOSTILE_JSON | st.dictionaries(st.sampled_from(["a", "s"]), HOSTILE_JSON))
    body = f'{{"name": {_encode(name, ascii_only)}, "arguments": {_encode(args, ascii_only)}}}'
    if draw(st.booleans()):
        body = "```json\n" + body + "\n```"
    close = draw(st.sampled_from(["\n</tool_call>", "", "<|im_end|>", "\n</tool_call>\n"]))
    return draw(ANY_TEXT) + "<tool_call>\n" + body + close + draw(GARBAGE)


# --- valid calls and their mutations -----------------------------------------------------

VALID_CHARS = st.characters(exclude_categories=["Cs"])
VALID_TEXT = st.text(VALID_CHARS, max_size=12) | st.sampled_from(
    [f"see {m} tag" for m in MARKERS] + ['a "quoted" \\ path', "\x00", "😀"]
)
VALID_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | VALID_TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(VALID_TEXT, inner, max_size=3),
    max_leaves=6,
)
VALID_CALLS = st.lists(
    st.builds(
        ToolCall,
        st.from_regex(r"[A-Za-z_][A-Za-z0-9_.]{0,15}", fullmatch=True),
        st.dictionaries(VALID_TEXT, VALID_JSON, max_size=3),
    ),
    max_size=3,
)
CONTENT = st.text(VALID_CHARS, max_size=30).filter(lambda s: not any(m in s for m in MARKERS))


@st.composite
def mutated_calls(draw: st.DrawFn) -> str:
    """A valid reply with a few characters deleted, inserted or replaced."""
    text = render_assistant(draw(CONTENT), draw(VALID_CALLS))
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["delete", "insert", "replace"]))
        piece = draw(st.sampled_from(PIECES) | st.text(CHARS, min_size=1, max_size=2))
        if op == "delete":
            text = text[:i] + text[i + draw(st.integers(1, 8)) :]
        elif op == "insert":
            text = text[:i] + piece + text[i:]
        else:
            text = text[:i] + piece + text[i + 1 :]
    return text


# --- the properties ----------------------------------------------------------------------


def _score(text: Any) -> dict[str, Any]:
    ep = Episode(EXAMPLE, 0, EXAMPLE.prompt_messages(), max_turns=1)
    ep.turns.append(Turn(1, text, parse_assistant(text), Generation(text=text)))
    return score_episode(ep, Policy()).to_json()


def check_total(text: Any) -> None:
    """Never raises; the parse is well formed and clean; scorer and engines agree with it;
    the verdict writes as UTF-8 JSON."""
    parsed = parse_assistant(text)
    assert isinstance(parsed, Parsed) and isinstance(parsed.content, str)
    assert parsed.calls == tuple(b.call for b in parsed.blocks if b.call is not None)
    assert len(parsed.errors) == sum(1 for b in parsed.blocks if b.error) or not parsed.blocks
    for c in parsed.calls:
        assert isinstance(c.name, str) and c.name and isinstance(c.arguments, dict)
        # What the parser accepts is I-JSON: finite numbers, no lone surrogates.
        json.dumps(c.as_dict(), ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert all(isinstance(e, str) and len(e) <= 300 for e in parsed.errors)
    check_agreement(text, parsed)
    row = _score(text)
    encoded = json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert json.loads(encoded) == row
    assert row["ok"] or row["reasons"]
    if parsed.errors:
        assert not row["ok"]
    assert [c for t in row["turns"] for c in t["calls"]] == [c.as_dict() for c in parsed.calls]
    blocks = row["values"].get("schema_validity")
    assert blocks is None or blocks[1] == len(parsed.blocks)


def check_agreement(text: Any, parsed: Parsed) -> None:
    """The scorer's per-block verdicts are the parser's blocks, validated; the text an engine
    keeps and the text a result stores parse exactly as the raw reply."""
    verdicts = block_validity(text, SHOWN)
    assert len(verdicts) == len(parsed.blocks)
    for verdict, block in zip(verdicts, parsed.blocks, strict=True):
        valid = block.error is None and block.call is not None
        assert (verdict is None) == (valid and not call_validity(SHOWN, block.call))  # type: ignore[arg-type]
    if isinstance(text, str):
        assert parse_assistant(strip_stop(text)) == parsed
        assert parse_assistant(cut_turn(text)) == parsed
        assert parse_assistant(json_safe(text)) == parsed


@both_tiers(st.text(CHARS))
def prop_any_text(text: str) -> None:
    check_total(text)


@both_tiers(GARBAGE)
def prop_tool_call_shaped_garbage(text: str) -> None:
    check_total(text)


@both_tiers(wrapped_calls(), fast=FAST_COMPOSITE)
def prop_hostile_json_in_call_syntax(text: str) -> None:
    check_total(text)


@both_tiers(mutated_calls(), fast=FAST_COMPOSITE)
def prop_mutated_valid_calls(text: str) -> None:
    check_total(text)


@both_tiers(st.none() | st.integers() | st.binary() | st.lists(st.text()), fast=50, slow=SLOW)
def prop_non_text(obj: object) -> None:
    parsed = parse_assistant(obj)
    assert parsed.errors and not parsed.calls
    check_total(obj)


@both_tiers(
    CONTENT,
    VALID_CALLS,
    st.sampled_from(["", "<|im_end|>", "</s>junk", "<|endoftext|>"]),
    fast=FAST_COMPOSITE,
)
def prop_valid_calls_round_trip(content: str, calls: list[ToolCall], end: str) -> None:
    text = render_assistant(content, calls) + end
    parsed = parse_assistant(text)
    assert parsed.ok, parsed.errors
    assert [(c.name, json.dumps(c.arguments)) for c in parsed.calls] == [
        (c.name, json.dumps(c.arguments)) for c in calls
    ]
    assert parsed.content == content.strip()
    assert block_validity(text, {}) == [
        f"unknown tool {c.name!r} (shown: )" for c in calls
    ]  # the scorer saw exactly these calls
    assert strip_stop(text) in (text, text[: len(text) - len(end)])


def _best_time(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(3):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


@both_tiers(GARBAGE.filter(bool), fast=8, slow=300)
def prop_linear_time(unit: str) -> None:
    """4x the input takes at most ~8x the CPU time (quadratic would take 16x), plus slack;
    CPU time, so other processes on a loaded machine do not make it flaky."""
    small = (unit * (50_000 // len(unit) + 1))[:50_000]
    large = (unit * (200_000 // len(unit) + 1))[:200_000]
    for fn in (parse_assistant, _score):
        t_small = _best_time(lambda: fn(small))  # noqa: B023
        t_large = _best_time(lambda: fn(large))  # noqa: B023
        assert t_large < 8 * t_small + 0.05, (unit, t_small, t_large)
        assert t_large < 1.0, (unit, t_large)


test_any_text_never_raises, test_any_text_never_raises_slow = prop_any_text
test_garbage_never_raises, test_garbage_never_raises_slow = prop_tool_call_shaped_garbage
test_hostile_json_never_raises, test_hostile_json_never_raises_slow = (
    prop_hostile_json_in_call_syntax
)
test_mutated_calls_never_raise, test_mutated_calls_never_raise_slow = prop_mutated_valid_calls
test_non_text_is_an_error, test_non_text_is_an_error_slow = prop_non_text
test_valid_calls_round_trip, test_valid_calls_round_trip_slow = prop_valid_calls_round_trip
test_parsing_is_linear, test_parsing_is_linear_slow = prop_linear_time


def test_end_token_inside_a_string_argument() -> None:
    # Found by the round-trip fuzz: an end token inside an argument does not end the turn,
    # for the parser and the scorer alike (they once disagreed on "</s>").
    text = render_call(ToolCall("q", {"a": 1, "s": "see </s> tag"})) + "<|im_end|>ignored"
    parsed = parse_assistant(text)
    assert parsed.ok and parsed.calls[0].arguments == {"a": 1, "s": "see </s> tag"}
    assert block_validity(text, SHOWN) == [None]
    assert parse_assistant("hello</s><tool_call>").calls == ()
