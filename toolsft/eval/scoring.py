"""Score one episode: a verdict with per-metric values and the reasons for every failure.

Pure (no model, no torch): the same function scores vLLM, transformers, server and replayed
outputs. Each metric value is a small vector summed over rows (see `toolsft.eval.metrics`):
a rate is `[hits, n]`, BLEU its sufficient statistics. A metric that does not apply to a row
is absent from the row's values (e.g. argument accuracy on an irrelevant request).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from toolsft.chat.parse import Parsed, clip, parse_assistant, replace_surrogates
from toolsft.engines.base import TOO_LONG
from toolsft.eval.episodes import Episode
from toolsft.eval.matching import calls_errors, calls_exact, canonical, names_match
from toolsft.eval.text import bleu_stats, rouge_l
from toolsft.eval.validity import call_validity
from toolsft.schema.policy import Policy
from toolsft.schema.suite import Suite
from toolsft.types import ToolCall, ToolSpec

MAX_REASONS = 20
"""Reasons kept per row: a reply with thousands of bad keys still gets a short verdict."""
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
        """The row as stored: always JSON-serializable, even from hostile model output."""
        return json_safe(
            {
                "id": self.id,
                "sample": self.sample,
                "ok": self.ok,
                "reasons": self.reasons,
                "groups": self.groups,
                "values": self.values,
                **self.detail,
            }
        )


_MAX_STORED_DEPTH = 100
_MAX_INT_BITS = 10_000
"""Python refuses to print ints over 4300 digits (about 14,000 bits)."""


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` as something `json.dumps(..., ensure_ascii=False)` writes as valid UTF-8 JSON.

    Lone surrogates become U+FFFD (as the parser reads them), non-finite floats null, ints
    too long to print and unknown objects a short description, nesting is cut.
    """
    if isinstance(value, str):
        return replace_surrogates(value)
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return (
            value if value.bit_length() <= _MAX_INT_BITS else f"<int of {value.bit_length()} bits>"
        )
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth >= _MAX_STORED_DEPTH:
        return "<nested too deeply>"
    if isinstance(value, Mapping):
        return {_key(k): json_safe(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value]
    return clip(replace_surrogates(repr(value)))


def _key(key: Any) -> str:
    return replace_surrogates(key) if isinstance(key, str) else clip(str(json_safe(key)))


def groups_of(meta: Mapping[str, Any], gold: Sequence[ToolCall]) -> dict[str, list[str]]:
    tools = sorted({c.name for c in gold} or set(meta.get("tools") or []) or {"(none)"})
    return {
        "stage": [str(meta.get("stage", "?"))],
        "lang": [str(meta.get("lang", "?"))],
        "kind": [str(meta.get("kind", "?"))],
        "tool": tools,
    }


def block_validity(text: Any, shown: Mapping[str, ToolSpec]) -> list[str | None]:
    """Per `<tool_call>` block in a reply: None when it parses and validates, else why not."""
    return blocks_validity(parse_assistant(text), shown)


def blocks_validity(parsed: Parsed, shown: Mapping[str, ToolSpec]) -> list[str | None]:
    """`block_validity` of a parsed reply: the parser's own blocks, so the two always agree."""
    out: list[str | None] = []
    for block in parsed.blocks:
        if block.error or block.call is None:
            out.append(block.error or "no call in block")
            continue
        errs = call_validity(shown, block.call)
        out.append(clip("; ".join(errs)) if errs else None)
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
    are recomputed from those results with the generator's own rendering. An episode that got
    no result at all (no call, or none executed) must still state the row's facts: otherwise
    an answer with nothing to ground it would pass on an empty list of facts.
    """
    gold = ep.example.expected
    same = sorted(map(canonical, ep.calls)) == sorted(map(canonical, gold.calls))
    if same or suite is None or not any(t.results for t in ep.turns):
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
    blocks = [b for t in ep.turns for b in blocks_validity(t.parsed, shown)]
    calls = ep.calls
    first_blocks = ep.turns[0].parsed.blocks if ep.turns else ()
    # Errors outside any block: the reply was not text at all.
    reasons += [
        f"unreadable reply: {e}" for t in ep.turns for e in t.parsed.errors if not t.parsed.blocks
    ]
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
    if len(reasons) > MAX_REASONS:
        reasons = [*reasons[: MAX_REASONS - 1], f"... and {len(reasons) - MAX_REASONS + 1} more"]
    reasons = [clip(r) for r in reasons]
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
            names = ", ".join(clip(c.name, 40) for c in calls[:8]) or "a tool"
            reasons.append(f"called {names} where no call was expected")
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
        v["rouge_l"] = [rouge_l(answer, exp.answer), 1]


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
