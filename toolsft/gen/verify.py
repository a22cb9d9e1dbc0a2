"""Verify a drafted row before it is written. A row that fails is counted, never written.

Checks: the target calls survive the chat template and parser unchanged, name a tool the row
shows, validate against its schema, run on the suite executor with a result that matches the
result schema; answers state the result's facts; nothing breaks the compliance policy.
Every check runs on every row: none is skipped because the generator means to get it right.
"""

from __future__ import annotations

import re

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_calls
from toolsft.gen.plan import plan_for
from toolsft.gen.stages import Draft
from toolsft.schema.policy import Policy
from toolsft.schema.suite import Suite
from toolsft.schema.validate import call_errors, value_errors

_UNFILLED = re.compile(r"\{[A-Za-z_][\w.]*\}")


def verify(suite: Suite, draft: Draft) -> str | None:
    """The first reason this row is wrong, or None when it is right."""
    if _unfilled(draft):
        return "unfilled_slot"
    calls = list(draft.expected.calls)
    if calls:
        parsed = parse_assistant(render_calls(calls))
        if parsed.errors or list(parsed.calls) != calls:
            return "call_roundtrip"
    specs = plan_for(suite).specs
    shown = {n: specs[n] for n in draft.shown}
    prior = draft.messages[: draft.prompt_len]
    for call in calls:
        if call.name not in shown:
            return "call_tool_not_shown"
        if call_errors(shown, call):
            return "call_schema_invalid"
        result = suite.executor.run(call)
        if result.get("error") == "UNKNOWN_TOOL":
            return "call_not_executable"
        schema = suite.gen[call.name].result.get("schema")
        if schema and "error" not in result and value_errors(schema, result):
            return "result_schema_invalid"
        if suite.policy.call_violations(call, prior):
            return "policy_call"
    for msg in draft.messages[draft.prompt_len :]:
        if msg["role"] == "assistant" and _text_violates(suite.policy, str(msg.get("content", ""))):
            return "policy_answer"
    answer = draft.expected.answer
    if draft.stage == 3 and answer is not None:
        missing = [f for f in draft.expected.facts if f not in answer]
        if missing:
            return "answer_missing_fact"
    return None


_TEXT_VERDICTS: dict[int, tuple[Policy, dict[str, bool]]] = {}


def _text_violates(policy: Policy, text: str) -> bool:
    """`bool(policy.text_violations(text))`, remembered per text: a pure function, and most
    target turns repeat (the empty content of a call turn, no-tool replies, clarifying
    questions), so each distinct text is still checked, once."""
    hit = _TEXT_VERDICTS.get(id(policy))
    if hit is None or hit[0] is not policy:
        if len(_TEXT_VERDICTS) > 64:
            _TEXT_VERDICTS.clear()
        hit = _TEXT_VERDICTS[id(policy)] = (policy, {})
    seen = hit[1]
    verdict = seen.get(text)
    if verdict is None:
        if len(seen) > 4096:
            seen.clear()
        verdict = seen[text] = bool(policy.text_violations(text))
    return verdict


def _unfilled(draft: Draft) -> bool:
    """Whether a user or assistant turn still has a `{slot}` in it. One search over the turns
    joined by newlines: a newline cannot be part of a match, so none spans two turns."""
    text = "\n".join(
        [str(m.get("content", "")) for m in draft.messages if m["role"] in ("user", "assistant")]
    )
    return _UNFILLED.search(text) is not None
