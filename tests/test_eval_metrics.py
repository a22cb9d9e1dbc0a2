"""Unit tests of the pure metric code: BFCL matching, BLEU/ROUGE-L, bootstrap, pass^k."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import sacrebleu

from toolsft.eval.matching import args_errors, calls_errors, calls_exact, names_match, values_match
from toolsft.eval.metrics import METRICS, aggregate, pass_hat_k, summarize
from toolsft.eval.text import bleu_from_stats, bleu_stats, rouge_l
from toolsft.schema.policy import Policy
from toolsft.types import ToolCall, ToolSpec

SCHEMA = {
    "type": "object",
    "properties": {
        "city": {"type": "string"},
        "price": {"type": "number"},
        "qty": {"type": "integer", "default": 1},
        "fast": {"type": "boolean", "default": False},
        "tags": {"type": "array", "items": {"type": "string"}},
        "addr": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
    "required": ["city"],
}
TOOLS = {"t": ToolSpec("t", "", SCHEMA), "u": ToolSpec("u", "", SCHEMA)}


@pytest.mark.parametrize(
    ("gold", "got", "ok"),
    [
        ("New York", "new york", True),
        ("New-York", "newyork", True),
        ("a,b.c/d-e_f*g^h", "abcdefgh", True),
        ("北京", "北京 ", True),
        ("北京", "上海", False),
        (1.0, 1, True),
        (2, 2.0, True),
        (True, 1, False),
        (1, True, False),
        (["a", "B"], ["A", "b"], True),
        (["a", "b"], ["b", "a"], False),
        ({"city": "X"}, {"city": "x"}, True),
    ],
)
def test_values_match_bfcl_rules(gold: object, got: object, ok: bool) -> None:
    assert values_match(gold, got) is ok


def test_integer_param_rejects_float() -> None:
    assert not values_match(3, 3.5, {"type": "integer"})
    assert not values_match(3, 3.0, {"type": "integer"})
    assert values_match(3.0, 3, {"type": "number"})


def test_optional_params_and_defaults() -> None:
    assert args_errors({"city": "a"}, {"city": "a", "qty": 1}, SCHEMA) == []
    assert args_errors({"city": "a", "fast": False}, {"city": "a"}, SCHEMA) == []
    assert args_errors({"city": "a"}, {"city": "a", "qty": 2}, SCHEMA) == [
        "qty: unexpected (got 2)"
    ]
    assert args_errors({"city": "a", "price": 3}, {"city": "a"}, SCHEMA) == [
        "price: missing (expected 3)"
    ]
    assert args_errors({"city": "a"}, {"city": "a", "bogus": 1}, SCHEMA) == [
        "bogus: not a parameter"
    ]


def test_parallel_any_order_but_ordered_when_required() -> None:
    a, b = ToolCall("t", {"city": "a"}), ToolCall("u", {"city": "b"})
    assert calls_errors([a, b], [b, a], TOOLS) == []
    assert calls_errors([a, b], [b, a], TOOLS, ordered=True)
    assert calls_errors([a, b], [a], TOOLS) == ["1 call(s) emitted, 2 expected"]
    assert calls_errors([a], [ToolCall("u", {"city": "a"})], TOOLS) == ["called u instead of t"]
    assert calls_exact([a, b], [b, a]) and not calls_exact([a, b], [b, a], ordered=True)
    assert not calls_exact([a], [ToolCall("t", {"city": "A"})])
    assert names_match([a, b], [b, a]) and not names_match([a, a], [a, b])


def test_many_parallel_calls_match_greedily() -> None:
    calls = [ToolCall("t", {"city": str(i)}) for i in range(9)]
    assert calls_errors(calls, calls[::-1], TOOLS) == []
    assert calls_errors(calls, calls[:-1] + [ToolCall("t", {"city": "x"})], TOOLS)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_bleu_equals_sacrebleu_corpus_bleu(lang: str) -> None:
    if lang == "en":
        hyps = ["The order DD1234 was shipped today.", "Your refund is on its way", "hello"]
        refs = ["Order DD1234 was shipped today.", "Your refund is being processed.", "hi there"]
    else:
        hyps = ["您的订单已发货，预计明天送达。", "退款已提交", "你好"]
        refs = ["订单已经发货，预计明天到。", "您的退款申请已提交。", "您好"]
    stats = np.sum([bleu_stats(h, r, lang) for h, r in zip(hyps, refs, strict=True)], axis=0)
    ours = bleu_from_stats(stats)
    ref = sacrebleu.corpus_bleu(hyps, [refs], tokenize="zh" if lang == "zh" else "13a").score / 100
    assert ours == pytest.approx(ref, abs=1e-9)
    assert 0 < ours < 1


def test_rouge_l() -> None:
    assert rouge_l("the cat sat", "the cat sat") == 1.0
    assert rouge_l("The cat, sat!", "the cat sat") == 1.0  # case and punctuation aside
    assert rouge_l("", "x") == 0.0 and rouge_l("x", "") == 0.0
    # LCS("a b c d", "a c d e") = 3 -> P = R = 3/4 -> F = 0.75
    assert rouge_l("a b c d", "a c d e") == pytest.approx(0.75)
    # one token per CJK character: LCS = 4 of 5 each way
    assert rouge_l("订单已发货", "订单发货了") == pytest.approx(2 * (4 / 5) * (4 / 5) / (8 / 5))


@pytest.mark.parametrize(
    "text",
    ["您的订单DD12345678已发货，预计明天送达。", "ご注文は発送されました", "주문이 발송되었습니다"],
)
def test_rouge_l_scores_cjk_text(text: str) -> None:
    """rouge-score's default tokenizer drops non-ASCII characters: every Chinese answer would
    score 0 (or 1 for identical ASCII remnants). Ours keeps them."""
    assert rouge_l(text, text) == 1.0
    half = text[: len(text) // 2]
    assert 0 < rouge_l(half, text) < 1
    assert rouge_l("完全不同的回答", text) < rouge_l(half, text)


def test_rouge_l_mixes_languages() -> None:
    """A Chinese answer with an order id and an English word: each CJK character a token, the
    id and the word one token each."""
    # hypothesis 订 单 dd12345678 ok (4) vs reference 订 单 dd12345678 已 发 货 (6): LCS 3
    assert rouge_l("订单 DD12345678 OK", "订单DD12345678已发货") == pytest.approx(
        2 * (3 / 4) * (3 / 6) / (3 / 4 + 3 / 6)
    )


def test_bootstrap_interval_is_seeded_and_brackets_the_value() -> None:
    rows = [[1, 1]] * 70 + [[0, 1]] * 30
    a = summarize(METRICS["task_completion"], rows, seed=3)
    b = summarize(METRICS["task_completion"], rows, seed=3)
    assert a == b
    assert a["value"] == pytest.approx(0.7)
    assert a["ci"][0] < 0.7 < a["ci"][1]
    assert a["ci"][0] > 0.55 and a["ci"][1] < 0.85
    assert summarize(METRICS["task_completion"], [], seed=0) is None


@dataclass
class V:
    id: str
    ok: bool
    values: dict = field(default_factory=dict)
    groups: dict = field(default_factory=dict)


def test_pass_hat_k_follows_tau_bench() -> None:
    # row a: 2 of 3 succeed -> pass^1 = 2/3, pass^2 = 1/3, pass^3 = 0; row b always succeeds.
    vs = [V("a", True), V("a", True), V("a", False), V("b", True), V("b", True), V("b", True)]
    res = pass_hat_k(vs, seed=0)
    assert res["pass^1"]["value"] == pytest.approx((2 / 3 + 1) / 2)
    assert res["pass^2"]["value"] == pytest.approx((1 / 3 + 1) / 2)
    assert res["pass^3"]["value"] == pytest.approx(0.5)


def test_aggregate_groups() -> None:
    vs = [
        V("a", True, {"task_completion": [1, 1]}, {"stage": ["1"], "tool": ["x", "y"]}),
        V("b", False, {"task_completion": [0, 1]}, {"stage": ["2"], "tool": ["x"]}),
    ]
    res = aggregate(vs, seed=0, n_boot=50, dims=("stage", "tool"))
    tc = res["task_completion"]
    assert tc["value"] == 0.5
    assert tc["by"]["stage"]["1"]["value"] == 1.0 and tc["by"]["stage"]["2"]["value"] == 0.0
    assert tc["by"]["tool"]["x"]["n"] == 2 and tc["by"]["tool"]["y"]["n"] == 1
    assert "bleu" not in res


def test_policy_flags_pii_in_arguments() -> None:
    policy = Policy(
        pii_patterns={"card": r"(?<!\d)\d{16}(?!\d)"}, confirm_required=frozenset({"pay"})
    )
    assert policy.call_violations(ToolCall("t", {"note": "6222020200112233"}), [])
    assert policy.call_violations(ToolCall("pay", {}), []) == [
        "pay called without explicit user confirmation"
    ]


def test_scoring_and_gate_never_import_heavy_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, toolsft.eval.runner, toolsft.eval.results, toolsft.eval.gate, "
        "toolsft.eval.html, toolsft.engines.replay, toolsft.cli.eval, toolsft.cli.gate; "
        "print(sorted(m for m in ('torch', 'transformers', 'vllm', 'xgrammar') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
