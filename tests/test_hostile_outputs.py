"""Hostile model outputs: each one fails its row with a short recorded reason, never the run.

Every case goes through the parser and the scorer; the verdict must be writable as UTF-8
JSON, keep its reasons short, and agree with the parser block for block. Parsing and scoring
must take linear time on adversarial text.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest

from toolsft.chat.parse import MAX_BLOCKS, MAX_DEPTH, cut_turn, parse_assistant
from toolsft.chat.template import render_call
from toolsft.engines.base import Generation, strip_stop
from toolsft.eval.episodes import Episode, Turn
from toolsft.eval.matching import values_match
from toolsft.eval.scoring import MAX_REASONS, Verdict, block_validity, json_safe, score_episode
from toolsft.schema.policy import Policy
from toolsft.types import Example, ToolCall, ToolSpec

TOOL = ToolSpec(
    "q",
    "",
    {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "s": {"type": "string", "maxLength": 100000}},
        "required": ["a"],
    },
)
SHOWN = {"q": TOOL}
GOLD = ToolCall("q", {"a": 1})


def example(gold: ToolCall | None = GOLD) -> Example:
    calls = [gold] if gold else []
    return Example(
        (
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "" if gold else "Hello.",
                "tool_calls": [c.to_openai("c") for c in calls],
            },
        ),
        (TOOL,),
        {
            "id": "r",
            "stage": 1,
            "lang": "en",
            "kind": "select" if gold else "no_tool",
            "prompt_len": 1,
            "expected": {"calls": [c.as_dict() for c in calls], "facts": [], "answer": None},
        },
    )


def score(text: object, ex: Example | None = None) -> Verdict:
    ex = ex or example()
    ep = Episode(ex, 0, ex.prompt_messages(), max_turns=1)
    ep.turns.append(Turn(1, text, parse_assistant(text), Generation(text=text)))  # type: ignore[arg-type]
    return score_episode(ep, Policy())


def call(args: str, name: str = '"q"') -> str:
    return f'<tool_call>\n{{"name": {name}, "arguments": {args}}}\n</tool_call>'


BIG = "9" * 309
# (case, reply, substring of the parse error, or None when the reply parses cleanly)
CASES: list[tuple[str, str, str | None]] = [
    ("surrogate escape", call('{"a": 1, "s": "\\ud800"}'), "lone surrogate \\ud800"),
    ("surrogate escape in key", call('{"\\udfff": 1}'), "lone surrogate"),
    ("surrogate escape in name", call("{}", '"q\\ud800"'), "lone surrogate"),
    ("309-digit integer", call(f'{{"a": {BIG}}}'), "number out of range"),
    ("5000-digit integer", call(f'{{"a": -{"1" * 5000}}}'), "number out of range"),
    ("1e999", call('{"a": 1e999}'), "number out of range"),
    ("-1e999", call('{"a": -1e999}'), "number out of range"),
    ("NaN", call('{"a": NaN}'), "NaN is not a JSON number"),
    ("Infinity", call('{"a": Infinity}'), "Infinity is not a JSON number"),
    ("-Infinity", call('{"a": -Infinity}'), "-Infinity is not a JSON number"),
    ("100k [", "<tool_call>" + "[" * 100_000, "nested deeper"),
    ("20k { in arguments", call('{"a": ' + '{"a": ' * 20_000), "nested deeper"),
    ("deep but valid JSON", call("[" * (MAX_DEPTH + 5) + "]" * (MAX_DEPTH + 5)), "nested deeper"),
    ("unterminated block", '<tool_call>\n{"name": "q", "arguments": {"a": 1}}', "missing"),
    ("unterminated string", call('{"a": 1, "s": "oops}'), "missing </tool_call>"),
    ("unclosed fence", "<tool_call>```json\n" + call('{"a": 1}')[11:], None),
    (
        "fenced call",
        "<tool_call>\n```json\n" + call('{"a": 1}')[12:-13] + "\n```\n</tool_call>",
        None,
    ),
    ("only a fence", "<tool_call>```</tool_call>", "invalid JSON"),
    ("raw NUL in a string", call('{"a": 1, "s": "x\x00y"}'), "Invalid control character"),
    ("NUL outside JSON", "\x00" + call('{"a": 1}') + "\x00", None),
    ("array call", "<tool_call>[1, 2]</tool_call>", "JSON array, not an object"),
    ("string call", '<tool_call>"q"</tool_call>', "JSON string, not an object"),
    ("null call", "<tool_call>null</tool_call>", "JSON null, not an object"),
    ("number call", "<tool_call>42</tool_call>", "JSON number, not an object"),
    ("arguments array", call("[1]"), "'arguments' is a JSON array"),
    ("arguments number", call("3"), "'arguments' is a JSON number"),
    ("arguments bad string", call('"{oops"'), "'arguments' is a string that is not JSON"),
    ("arguments NaN string", call('"{\\"a\\": NaN}"'), "NaN is not a JSON number"),
    (
        "duplicate name",
        '<tool_call>{"name": "q", "name": "x", "arguments": {}}</tool_call>',
        "duplicate key 'name'",
    ),
    ("duplicate argument", call('{"a": 1, "a": 2}'), "duplicate key 'a'"),
    ("nested duplicate", call('{"a": 1, "s": {"k": 1, "k": 1}}'), "duplicate key 'k'"),
    ("no name", '<tool_call>{"arguments": {}}</tool_call>', "missing or non-string 'name'"),
    ("empty name", call("{}", '""'), "missing or non-string 'name'"),
    ("numeric name", call("{}", "7"), "missing or non-string 'name'"),
    ("extra data", call('{"a": 1}}}'), "Extra data"),
    ("block inside block", "<tool_call>{" + call('{"a": 1}'), "missing </tool_call>"),
    ("empty block", "<tool_call></tool_call>", "invalid JSON"),
]


@pytest.mark.parametrize(("case", "text", "error"), CASES, ids=[c[0] for c in CASES])
def test_hostile_reply_is_a_failed_row_with_a_reason(
    case: str, text: str, error: str | None
) -> None:
    parsed = parse_assistant(text)
    if error is None:
        assert parsed.ok, parsed.errors
        assert parsed.calls == (ToolCall("q", {"a": 1}),)
    else:
        assert any(error in e for e in parsed.errors), parsed.errors
        assert all(len(e) <= 300 for e in parsed.errors)
    verdict = score(text)
    assert verdict.ok is (error is None), verdict.reasons
    if error is not None:
        assert any(error in r for r in verdict.reasons), verdict.reasons
    assert_storable(verdict)
    assert_agrees(text, parsed)


def assert_storable(verdict: Verdict) -> None:
    """The row writes as UTF-8 JSON, reads back equal, and its reasons are short and few."""
    row = verdict.to_json()
    encoded = json.dumps(row, ensure_ascii=False, allow_nan=False).encode("utf-8")
    assert json.loads(encoded) == row
    assert 0 < len(row["reasons"]) <= MAX_REASONS or row["ok"]
    assert all(len(r) <= 300 for r in row["reasons"])


def assert_agrees(text: str, parsed: object) -> None:
    """The scorer reads the reply block for block as the parser does, and the text stored
    with the row (surrogates repaired) and the text an engine keeps (cut at its stop strings)
    parse exactly as the raw reply."""
    blocks = block_validity(text, SHOWN)
    assert len(blocks) == len(parsed.blocks)  # type: ignore[attr-defined]
    for verdict_of_block, block in zip(blocks, parsed.blocks, strict=True):  # type: ignore[attr-defined]
        if block.error:
            assert verdict_of_block == block.error
    assert parse_assistant(json_safe(text)) == parsed
    assert parse_assistant(strip_stop(text)) == parsed
    assert parse_assistant(cut_turn(text)) == parsed


def test_raw_lone_surrogate_reads_as_replacement_character() -> None:
    text = call('{"a": 1, "s": "x\ud800"}')
    parsed = parse_assistant(text)
    assert parsed.calls == (ToolCall("q", {"a": 1, "s": "x\ufffd"}),)
    verdict = score("I think\udc00 so" + text)
    assert not verdict.ok  # the extra argument differs from gold
    row = verdict.to_json()
    assert "\ud800" not in json.dumps(row, ensure_ascii=False)
    assert row["turns"][0]["text"] == json_safe("I think\udc00 so" + text)
    json.dumps(row, ensure_ascii=False).encode("utf-8")


def test_surrogate_pair_escape_is_one_character() -> None:
    parsed = parse_assistant(call('{"a": 1, "s": "\\ud83d\\ude00"}'))
    assert parsed.ok and parsed.calls[0].arguments["s"] == "😀"


@pytest.mark.parametrize(
    "marker", ["</s>", "<|im_end|>", "<|endoftext|>", "</tool_call>", "<tool_call>", '\\"</s>']
)
def test_markers_inside_a_string_are_text(marker: str) -> None:
    """Parser, scorer and every engine's `strip_stop` read a marker in a JSON string as text."""
    value = json.loads(f'"see {marker} tag"')
    gold = ToolCall("q", {"a": 1, "s": value})
    text = render_call(gold) + "<|im_end|>junk"
    parsed = parse_assistant(text)
    assert parsed.ok and parsed.calls == (gold,)
    assert block_validity(text, SHOWN) == [None]
    assert strip_stop(text) == render_call(gold)
    verdict = score(text, example(gold))
    assert verdict.ok, verdict.reasons
    assert verdict.values["schema_validity"] == [1, 1]


def test_end_token_outside_strings_ends_the_turn() -> None:
    assert parse_assistant("hello</s><tool_call>").calls == ()
    assert parse_assistant("hello</s><tool_call>").content == "hello"
    parsed = parse_assistant('<tool_call>{"name": "q", "arguments": {"a": 1}}<|im_end|>junk')
    assert parsed.calls == (ToolCall("q", {"a": 1}),)
    assert parsed.errors == ("call 0: missing </tool_call>",)
    assert strip_stop("a<|endoftext|>b<|im_end|>c") == "a"


def test_large_values_stay_exact_and_short_in_reasons() -> None:
    text = call('{"a": 1, "s": "' + "x" * 50_000 + '"}')
    verdict = score(text)
    assert not verdict.ok and all(len(r) <= 300 for r in verdict.reasons)
    assert verdict.to_json()["turns"][0]["calls"][0]["arguments"]["s"] == "x" * 50_000
    huge = "1" + "0" * 300
    parsed = parse_assistant(call(f'{{"a": {huge}}}'))
    assert parsed.calls[0].arguments["a"] == 10**300
    assert any("expected 1, got 1000" in r for r in score(call(f'{{"a": {huge}}}')).reasons)
    assert_storable(score(call(f'{{"a": {huge}}}')))


def test_huge_name_and_many_keys_give_bounded_reasons() -> None:
    name = json.dumps("n" * 50_000)
    verdict = score(call("{}", name))
    assert any("instead of q" in r for r in verdict.reasons)
    assert all(len(r) <= 300 for r in verdict.reasons)
    keys = ", ".join(f'"k{i}": {i}' for i in range(5000))
    verdict = score(call("{" + keys + "}"))
    assert not verdict.ok and len(verdict.reasons) <= MAX_REASONS
    assert_storable(verdict)


def test_many_blocks_are_bounded() -> None:
    text = call('{"a": 1}') * 5000
    parsed = parse_assistant(text)
    assert len(parsed.blocks) == MAX_BLOCKS + 1
    assert parsed.errors[-1].endswith(f"{5000 - MAX_BLOCKS} more blocks not read")
    verdict = score(text)
    assert not verdict.ok and len(verdict.reasons) <= MAX_REASONS
    assert verdict.values["schema_validity"] == [MAX_BLOCKS, MAX_BLOCKS + 1]


def test_non_text_reply_is_a_failed_row() -> None:
    for reply in (None, 3, b"<tool_call>", ["x"]):
        verdict = score(reply)
        assert not verdict.ok
        assert any("unreadable reply: output is not text" in r for r in verdict.reasons)
        assert_storable(verdict)
    verdict = score(None, example(None))
    assert not verdict.ok and any("output is not text" in r for r in verdict.reasons)


def test_values_match_never_overflows() -> None:
    assert not values_match(10**400, 1.5)
    assert not values_match(1.5, 10**400)
    assert values_match(10**400, 10**400)
    assert not values_match(10**400, 10**400 + 1)


def test_json_safe_makes_anything_writable() -> None:
    value = {
        "s": "a\ud800b",
        "\udfffk": [float("inf"), float("nan"), -0.5, 10**20000, (1, "\udc00")],
        3: {None: object()},
    }
    safe = json_safe(value)
    text = json.dumps(safe, ensure_ascii=False, allow_nan=False)
    text.encode("utf-8")
    assert safe["s"] == "a\ufffdb"
    assert safe["\ufffdk"][:3] == [None, None, -0.5]
    assert safe["\ufffdk"][3].startswith("<int of ")
    assert safe["\ufffdk"][4] == [1, "\ufffd"]
    assert list(safe["3"]) == ["None"]
    deep: list[object] = []
    for _ in range(10_000):
        deep = [deep]
    json.dumps(json_safe(deep))


# --- linear time ------------------------------------------------------------------------------

ADVERSARIAL: dict[str, Callable[[int], str]] = {
    # The old fence regex backtracked over every run of whitespace: seconds on 50 kB.
    "whitespace in a fenced block": lambda n: "<tool_call>```json a" + " " * n + "b",
    "end tokens in an open block": lambda n: '<tool_call>{"s": "' + "</s>" * (n // 4),
    "end tokens after text": lambda n: "x" * (n // 2) + "</s>" * (n // 8),
    "backslashes in a string": lambda n: '<tool_call>"' + "\\" * n,
    "quotes in a block": lambda n: "<tool_call>" + '"' * n,
    "open tags": lambda n: "<tool_call>" * (n // 11),
    "closed blocks": lambda n: "<tool_call>{}</tool_call>" * (n // 24),
    "deep objects": lambda n: '<tool_call>{"name": "q", "arguments": ' + '{"a": ' * (n // 6),
    "deep arrays": lambda n: "<tool_call>" + "[" * n,
    "long string argument": lambda n: call('{"a": 1, "s": "' + "y " * (n // 2) + '"}'),
    "plain text": lambda n: "word " * (n // 5),
}


def _best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best


@pytest.mark.parametrize("family", sorted(ADVERSARIAL))
def test_parsing_and_scoring_take_linear_time(family: str) -> None:
    """4x the text may take at most ~8x the CPU time (a quadratic pass takes 16x) plus slack
    for timer noise, and 200 kB stays well under a second. CPU time, not wall time, so other
    processes on a loaded machine do not make it flaky."""
    make = ADVERSARIAL[family]
    small, large = make(50_000), make(200_000)
    for fn in (parse_assistant, lambda t: score(t)):
        t_small = _best_time(lambda: fn(small))  # noqa: B023
        t_large = _best_time(lambda: fn(large))  # noqa: B023
        assert t_large < 8 * t_small + 0.05, (family, t_small, t_large)
        assert t_large < 1.0, (family, t_large)
