"""Scoring is pure and exact: gold scores 100%, each perturbation lowers exactly its metrics."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
from helpers import DEFAULT_SUITE, make_dataset, scripted_run

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_assistant
from toolsft.eval.metrics import METRICS
from toolsft.schema.suite import load_suite
from toolsft.types import Example, ToolCall

SUITE = load_suite(DEFAULT_SUITE)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_dataset(tmp_path_factory.mktemp("data"), per_stage=150)


@pytest.fixture(scope="module")
def gold(data: Path) -> dict[str, Any]:
    return scripted_run(data)


def values(results: dict[str, Any]) -> dict[str, float | None]:
    return {k: s["value"] for k, s in results["metrics"].items()}


def test_gold_scores_perfectly(gold: dict[str, Any]) -> None:
    v = values(gold)
    for name, metric in METRICS.items():
        assert name in v, f"{name} not computed on gold"
        assert v[name] == (0.0 if metric.reduce == "sum" else 1.0), name
    assert all(r["ok"] and not r["reasons"] for r in gold["rows"])
    kinds = {r["groups"]["kind"][0] for r in gold["rows"]}
    assert {
        "select",
        "multi",
        "no_tool",
        "fill",
        "clarify",
        "parallel",
        "result",
        "tool_error",
    } <= kinds
    assert set(gold["metrics"]["task_completion"]["by"]) == {"stage", "lang", "kind", "tool"}


# --- perturbations ---------------------------------------------------------------------------


class Edit:
    """A perturbation applied to matching rows' turns; counts how often it changed something."""

    def __init__(self, fn: Any) -> None:
        self.fn, self.hits = fn, 0

    def __call__(self, ex: Example, turn: int, text: str) -> str:
        new = self.fn(ex, turn, text)
        if new is not None and new != text:
            self.hits += 1
            return new
        return text


def _calls(text: str) -> list[ToolCall]:
    return list(parse_assistant(text).calls)


def _with_calls(calls: list[ToolCall]) -> str:
    return render_assistant("", calls)


def _one_turn(ex: Example) -> bool:
    return int(ex.meta["stage"]) in (1, 2)


def explicit_default(ex: Example, turn: int, text: str) -> str | None:
    if not _one_turn(ex) or not _calls(text):
        return None
    out = []
    for c in _calls(text):
        props = SUITE.tool(c.name).parameters.get("properties", {})
        extra = {
            k: p["default"] for k, p in props.items() if "default" in p and k not in c.arguments
        }
        out.append(ToolCall(c.name, {**c.arguments, **dict(list(extra.items())[:1])}))
    return _with_calls(out)


def _free_string(props: dict[str, Any], key: str, value: Any) -> bool:
    p = props.get(key, {})
    return (
        isinstance(value, str)
        and p.get("type") == "string"
        and not ({"enum", "pattern", "format"} & set(p))
    )


def punctuate(ex: Example, turn: int, text: str) -> str | None:
    """Add characters BFCL's string normalisation drops: exact match breaks, accuracy holds."""
    if not _one_turn(ex):
        return None
    out = []
    for c in _calls(text):
        props = SUITE.tool(c.name).parameters.get("properties", {})
        args = {k: (v + " ./" if _free_string(props, k, v) else v) for k, v in c.arguments.items()}
        out.append(ToolCall(c.name, args))
    return _with_calls(out) if out else None


def wrong_int(ex: Example, turn: int, text: str) -> str | None:
    if not _one_turn(ex):
        return None
    out, changed = [], False
    for c in _calls(text):
        props = SUITE.tool(c.name).parameters.get("properties", {})
        args = dict(c.arguments)
        for k, v in args.items():
            p = props.get(k, {})
            if p.get("type") == "integer" and not changed and isinstance(v, int):
                new = v + 1 if v + 1 <= p.get("maximum", math.inf) else v - 1
                if new >= p.get("minimum", -math.inf):
                    args[k], changed = new, True
        out.append(ToolCall(c.name, args))
    return _with_calls(out) if changed else None


def bad_pattern(ex: Example, turn: int, text: str) -> str | None:
    if not _one_turn(ex):
        return None
    out = [
        ToolCall(c.name, {**c.arguments, "order_id": "DD123"}) if "order_id" in c.arguments else c
        for c in _calls(text)
    ]
    return _with_calls(out) if out else None


def extra_param(ex: Example, turn: int, text: str) -> str | None:
    if not _one_turn(ex) or not _calls(text):
        return None
    return _with_calls([ToolCall(c.name, {**c.arguments, "note": "x"}) for c in _calls(text)])


def no_call(ex: Example, turn: int, text: str) -> str | None:
    return "Sorry, I cannot help with that." if ex.meta["kind"] == "select" else None


def garbage(ex: Example, turn: int, text: str) -> str | None:
    return (
        '<tool_call>\n{"name": "query_order", "arguments": {'
        if ex.meta["kind"] == "select"
        else None
    )


def call_on_irrelevant(ex: Example, turn: int, text: str) -> str | None:
    if ex.meta["kind"] != "no_tool":
        return None
    return _with_calls([ToolCall("query_order", {"order_id": "DD12345678"})])


def drop_facts(ex: Example, turn: int, text: str) -> str | None:
    return "Done." if ex.meta["kind"] in ("result", "tool_error") and turn == 1 else None


def answer_without_call(ex: Example, turn: int, text: str) -> str | None:
    """An answer where a tool result was needed: it has no facts to state, so it states none."""
    return "All done, it is on its way." if ex.meta["kind"] == "result" and turn == 0 else None


def forbidden_phrase(ex: Example, turn: int, text: str) -> str | None:
    phrase = SUITE.policy.forbidden_phrases[0]
    return f"{text} {phrase}" if ex.meta["kind"] == "no_tool" else None


def pii_reply(ex: Example, turn: int, text: str) -> str | None:
    return f"{text} 6222020200112233" if ex.meta["kind"] == "no_tool" else None


def swap_parallel(ex: Example, turn: int, text: str) -> str | None:
    calls = _calls(text)
    return (
        _with_calls(calls[::-1])
        if ex.meta["kind"] in ("parallel", "multi") and len(calls) > 1
        else None
    )


ALWAYS = {"task_completion"}
CASES = {
    "explicit_default": (explicit_default, {"arg_exact"}, set()),
    "punctuate": (punctuate, {"arg_exact"}, set()),
    "wrong_int": (wrong_int, ALWAYS | {"arg_accuracy", "arg_exact"}, set()),
    "bad_pattern": (bad_pattern, ALWAYS | {"schema_validity", "arg_accuracy", "arg_exact"}, set()),
    "extra_param": (extra_param, ALWAYS | {"schema_validity", "arg_accuracy", "arg_exact"}, set()),
    "no_call": (
        no_call,
        ALWAYS | {"tool_selection", "arg_accuracy", "arg_exact", "irrelevance_precision"},
        set(),
    ),
    "garbage": (
        garbage,
        ALWAYS | {"schema_validity", "tool_selection", "arg_accuracy", "arg_exact"},
        set(),
    ),
    "call_on_irrelevant": (call_on_irrelevant, ALWAYS | {"irrelevance_recall"}, set()),
    "drop_facts": (drop_facts, ALWAYS | {"answer_facts", "bleu", "rouge_l"}, set()),
    "answer_without_call": (
        answer_without_call,
        ALWAYS | {"tool_selection", "answer_facts"},
        {"arg_accuracy", "arg_exact", "irrelevance_precision", "bleu", "rouge_l"},
    ),
    "forbidden_phrase": (forbidden_phrase, ALWAYS | {"compliance", "compliance_violations"}, set()),
    "pii_reply": (pii_reply, ALWAYS | {"compliance", "compliance_violations"}, set()),
    "swap_parallel": (swap_parallel, set(), set()),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_perturbation_lowers_exactly_its_metrics(
    case: str, data: Path, gold: dict[str, Any]
) -> None:
    fn, drops, maybe = CASES[case]
    edit = Edit(fn)
    run = scripted_run(data, edit)
    assert edit.hits > 0, f"{case} changed no row"
    before, after = values(gold), values(run)
    for name, metric in METRICS.items():
        b, a = before.get(name), after.get(name)
        worse = (a < b) if metric.higher_is_better else (a > b)
        if name in drops:
            assert worse, f"{case}: {name} should get worse ({b} -> {a})"
        elif name not in maybe:
            assert a == pytest.approx(b), f"{case}: {name} should not change ({b} -> {a})"


def test_failures_have_reasons(data: Path) -> None:
    run = scripted_run(data, Edit(drop_facts))
    bad = [r for r in run["rows"] if not r["ok"]]
    assert bad and all(r["reasons"] for r in bad)
    assert any("answer misses" in x for r in bad for x in r["reasons"])


def test_missing_predictions_are_failures_with_reason(data: Path) -> None:
    from toolsft.engines.replay import ReplayEngine
    from toolsft.eval.runner import EvalConfig, evaluate

    res = evaluate(ReplayEngine({}), EvalConfig(DEFAULT_SUITE, data, stages=(1,)))
    assert res["metrics"]["task_completion"]["value"] == 0.0
    assert all("no prediction for this turn" in r["reasons"] for r in res["rows"])


def test_results_are_deterministic(data: Path, gold: dict[str, Any]) -> None:
    a = scripted_run(data, Edit(wrong_int))
    b = scripted_run(data, Edit(wrong_int))
    assert json.dumps(a["metrics"], sort_keys=True) == json.dumps(b["metrics"], sort_keys=True)


HOSTILE_REPLIES = [
    '<tool_call>\n{"name": "query_order", "arguments": {"order_id": "\\ud800"}}\n</tool_call>',
    '<tool_call>\n{"name": "query_order", "arguments": {"order_id": '
    + "9" * 309
    + "}}\n</tool_call>",
    '<tool_call>\n{"name": "query_order", "arguments": {"order_id": 1e999}}\n</tool_call>',
    '<tool_call>\n{"name": "query_order", "arguments": {"order_id": NaN}}\n</tool_call>',
    "<tool_call>" + "[" * 100_000,
    "<tool_call>```json\n" + " " * 50_000 + "x",
    '<tool_call>\n{"name": "query_order", "arguments": {"order_id": "DD1</s>',
    '<tool_call>\n{"name": "query_order", "name": "x", "arguments": {}}\n</tool_call>',
    '<tool_call>\n{"name": "query_order", "arguments": [1]}\n</tool_call>',
    "word " * 10_000 + "\x00\ud800",
]


def test_hostile_replies_fail_their_rows_and_the_run_goes_on(
    data: Path, gold: dict[str, Any]
) -> None:
    """Every `select` row gets a hostile reply: those rows fail with the parser's reason, every
    other row scores as gold, and results.json is writable."""
    cycle = iter(HOSTILE_REPLIES * 1000)
    run = scripted_run(
        data, Edit(lambda ex, turn, text: next(cycle) if ex.meta["kind"] == "select" else None)
    )
    json.dumps(run, ensure_ascii=False, allow_nan=False).encode("utf-8")
    gold_ok = {(r["id"], r["sample"]): r["ok"] for r in gold["rows"]}
    hostile = [r for r in run["rows"] if r["groups"]["kind"] == ["select"]]
    assert len(hostile) >= len(HOSTILE_REPLIES)
    for row in run["rows"]:
        if row["groups"]["kind"] == ["select"]:
            assert not row["ok"] and row["reasons"], row["id"]
            assert not any(
                r.startswith(("scoring failed", "result not writable")) for r in row["reasons"]
            )
            assert all(len(r) <= 300 for r in row["reasons"])
        else:
            assert row["ok"] == gold_ok[(row["id"], row["sample"])], row["reasons"]
