"""Score one episode: a verdict with per-metric values and the reasons for every failure.

Pure (no model, no torch): the same function scores vLLM, transformers, server and replayed
outputs. Each metric value is a small vector summed over rows (see `toolsft.eval.metrics`):
a rate is `[hits, n]`, BLEU its sufficient statistics. A metric that does not apply to a row
is absent from the row's values (e.g. argument accuracy on an irrelevant request).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolsft.chat.parse import parse_assistant
from toolsft.engines.base import TOO_LONG
from toolsft.eval.episodes import Episode
from toolsft.eval.matching import calls_errors, calls_exact, canonical, names_match
from toolsft.eval.text import bleu_stats, rouge_l
from toolsft.eval.validity import call_validity
from toolsft.schema.policy import Policy
from toolsft.schema.suite import Suite
from toolsft.types import ToolCall, ToolSpec

_OPEN = "<tool_call>"
_END = ("<|im_end|>", "<|endoftext|>", "</s>")
ANSWER_KINDS_STAGE = 3
"""Rows of this stage are scored on answer quality (BLEU/ROUGE-L), as the seeds ask."""


@dataclass
class Verdict:
    """Everything results.json keeps about one episode."""

    id: str
    sample: int
    groups: dict[str, list[str]]
    """Group memberships: stage, lang, kind, tool (a two-tool row is in both tools' groups)."""
    ok: bool
    reasons: list[str]
    values: dict[str, list[float]]
    detail: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "sample": self.sample,
            "ok": self.ok,
            "reasons": self.reasons,
            "groups": self.groups,
            "values": self.values,
            **self.detail,
        }


def groups_of(meta: Mapping[str, Any], gold: Sequence[ToolCall]) -> dict[str, list[str]]:
    tools = sorted({c.name for c in gold} or set(meta.get("tools") or []) or {"(none)"})
    return {
        "stage": [str(meta.get("stage", "?"))],
        "lang": [str(meta.get("lang", "?"))],
        "kind": [str(meta.get("kind", "?"))],
        "tool": tools,
    }


def block_validity(text: str, shown: Mapping[str, ToolSpec]) -> list[str | None]:
    """Per `<tool_call>` block in a reply: None when it parses and validates, else why not."""
    for end in _END:
        text = text.split(end, 1)[0]
    out: list[str | None] = []
    for chunk in text.split(_OPEN)[1:]:
        parsed = parse_assistant(_OPEN + chunk)
        if parsed.errors or len(parsed.calls) != 1:
            out.append("; ".join(parsed.errors) or "no call in block")
            continue
        errs = call_validity(shown, parsed.calls[0])
        out.append("; ".join(errs) if errs else None)
    return out


def contains_fact(answer: str, fact: str) -> bool:
    """Case- and space-insensitive containment (facts are rendered result values)."""

    def norm(s: str) -> str:
        return "".join(str(s).lower().split())

    return norm(fact) in norm(answer)


def episode_facts(ep: Episode, suite: Suite | None) -> tuple[str, ...]:
    """The facts the answer must state, from the results this episode actually got.

    When the model's calls equal the gold calls the row's own facts apply; an equivalent but
    differently written call (e.g. an explicit default) gets other mock results, so its facts
    are recomputed from those results with the generator's own rendering.
    """
    gold = ep.example.expected
    if sorted(map(canonical, ep.calls)) == sorted(map(canonical, gold.calls)) or suite is None:
        return gold.facts
    from toolsft.gen.answers import facts_of

    lang = str(ep.example.meta.get("lang", "en"))
    calls = [c for t in ep.turns for c in t.parsed.calls if t.results]
    results = [r for t in ep.turns for r in t.results]
    facts: list[str] = []
    for call, result in zip(calls, results, strict=False):
        if call.name in suite.gen:
            facts.extend(facts_of(suite, call.name, result, lang))
    return tuple(facts)


def score_episode(ep: Episode, policy: Policy, suite: Suite | None = None) -> Verdict:
    """The verdict on one episode (see evals/README.md for every metric's definition)."""
    ex, exp = ep.example, ep.example.expected
    shown = {t.name: t for t in ex.tools}
    v: dict[str, list[float]] = {}
    reasons: list[str] = []
    blocks = [b for t in ep.turns for b in block_validity(t.text, shown)]
    calls = ep.calls
    first_blocks = block_validity(ep.turns[0].text, shown) if ep.turns else []
    if blocks:
        bad = [b for b in blocks if b is not None]
        v["schema_validity"] = [len(blocks) - len(bad), len(blocks)]
        reasons += [f"invalid call: {b}" for b in bad]
    _score_calls(exp.calls, exp.ordered, calls, blocks, shown, v, reasons)
    if ep.turns and not first_blocks:  # the model abstained: was abstaining right?
        v["irrelevance_precision"] = [float(not exp.calls), 1]
    _score_answer(ep, suite, v, reasons)
    violations = compliance_violations(ep, policy)
    v["compliance"] = [float(not violations), 1]
    v["compliance_violations"] = [float(len(violations)), 1]
    reasons += [f"compliance: {x}" for x in violations]
    if ep.turns and ep.turns[-1].gen.finish_reason == "length":
        reasons.append("reply cut at max_tokens")
    if ep.turns and ep.turns[-1].gen.finish_reason == "missing":
        reasons.append("no prediction for this turn")
    if ep.turns and ep.turns[-1].gen.finish_reason == TOO_LONG:
        reasons.append("prompt longer than the engine's context (raise --max-model-len)")
    ok = not reasons
    v["task_completion"] = [float(ok), 1]
    return Verdict(ep.row_id, ep.sample, groups_of(ex.meta, exp.calls), ok, reasons, v, _detail(ep))


def _score_calls(
    gold: Sequence[ToolCall],
    ordered: bool,
    calls: list[ToolCall],
    blocks: list[str | None],
    shown: Mapping[str, ToolSpec],
    v: dict[str, list[float]],
    reasons: list[str],
) -> None:
    if not gold:
        v["irrelevance_recall"] = [float(not blocks), 1]
        if blocks:
            reasons.append(
                f"called {', '.join(c.name for c in calls) or 'a tool'} where no call was expected"
            )
        return
    v["tool_selection"] = [float(names_match(gold, calls)), 1]
    errs = calls_errors(gold, calls, shown, ordered)
    v["arg_accuracy"] = [float(not errs), 1]
    v["arg_exact"] = [float(calls_exact(gold, calls, ordered)), 1]
    if not calls and not blocks:
        reasons.append(f"no call (expected {', '.join(c.name for c in gold)})")
    else:
        reasons += [f"calls: {e}" for e in errs]


def _score_answer(
    ep: Episode, suite: Suite | None, v: dict[str, list[float]], reasons: list[str]
) -> None:
    ex, exp = ep.example, ep.example.expected
    wants_answer = bool(exp.calls) and ep.max_turns > 1
    if not exp.calls:  # a reply row: irrelevant request, clarifying or confirmation question
        if not ep.answer.strip() and not ep.calls:
            reasons.append("empty reply")
        return
    if not wants_answer:
        return
    answer = ep.answer
    facts = episode_facts(ep, suite)
    missing = [f for f in facts if not contains_fact(answer, f)]
    v["answer_facts"] = [float(bool(answer.strip()) and not missing), 1]
    if not answer.strip():
        reasons.append("no answer after the tool results")
    elif missing:
        reasons.append("answer misses " + ", ".join(repr(f) for f in missing))
    if exp.answer and int(ex.meta.get("stage", 0)) == ANSWER_KINDS_STAGE:
        lang = str(ex.meta.get("lang", "en"))
        v["bleu"] = [float(x) for x in bleu_stats(answer, exp.answer, lang)]
        v["rouge_l"] = [rouge_l(answer, exp.answer, lang), 1]


def compliance_violations(ep: Episode, policy: Policy) -> list[str]:
    """Forbidden phrases/PII in anything the model wrote; unconfirmed confirm-required calls."""
    found: list[str] = []
    for turn in ep.turns:
        found += [f"{x} in reply" for x in policy.text_violations(turn.parsed.content)]
        prior = ep.messages[: turn.prior]
        for call in turn.parsed.calls:
            found += policy.call_violations(call, prior)
    return found


def _detail(ep: Episode) -> dict[str, Any]:
    return {
        "turns": [
            {
                "text": t.text,
                "calls": [c.as_dict() for c in t.parsed.calls],
                "parse_errors": list(t.parsed.errors),
                "results": t.results,
                "prompt_tokens": t.gen.prompt_tokens,
                "output_tokens": t.gen.output_tokens,
                "ttft_s": t.gen.ttft_s,
                "latency_s": t.gen.latency_s,
                "finish_reason": t.gen.finish_reason,
            }
            for t in ep.turns
        ],
        "answer": ep.answer,
    }
