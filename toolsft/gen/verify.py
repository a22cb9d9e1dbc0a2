"""Verify a drafted row before it is written. A row that fails is counted, never written.

Checks: the target calls survive the chat template and parser unchanged, name a tool the row
shows, validate against its schema, run on the suite executor with a result that matches the
result schema; answers state the result's facts; nothing breaks the compliance policy.
"""

from __future__ import annotations

import re

from toolsft.chat.parse import parse_assistant
from toolsft.chat.template import render_calls
from toolsft.gen.stages import Draft
from toolsft.schema.suite import Suite
from toolsft.schema.validate import call_errors, value_errors

_UNFILLED = re.compile(r"\{[A-Za-z_][\w.]*\}")


def verify(suite: Suite, draft: Draft) -> str | None:
    """The first reason this row is wrong, or None when it is right."""
    shown = {n: suite.tool(n) for n in draft.shown}
    prior = draft.messages[: draft.prompt_len]
    for msg in draft.messages:
        if msg["role"] in ("user", "assistant") and _UNFILLED.search(str(msg.get("content", ""))):
            return "unfilled_slot"
    calls = list(draft.expected.calls)
    if calls:
        parsed = parse_assistant(render_calls(calls))
        if parsed.errors or list(parsed.calls) != calls:
            return "call_roundtrip"
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
        if msg["role"] == "assistant" and suite.policy.text_violations(str(msg.get("content", ""))):
            return "policy_answer"
    answer = draft.expected.answer
    if draft.stage == 3 and answer is not None:
        missing = [f for f in draft.expected.facts if f not in answer]
        if missing:
            return "answer_missing_fact"
    return None
